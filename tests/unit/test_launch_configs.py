"""Launch files agree with each other: every ModelParallelStrategy config shards over exactly its
processes (explicit sizes, never Lightning's "auto"), the scripts parse in bash, start as many
processes as the multi-node config expects, and name files that exist."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

LAUNCH = REPO / "configs" / "launch"
CONFIGS = sorted([*LAUNCH.glob("*.yaml"), *(REPO / "configs").glob("*.yaml")])
SCRIPTS = sorted([*LAUNCH.glob("*.sh"), *LAUNCH.glob("*.sbatch")])
MULTINODE = LAUNCH / "fsdp2_multinode.yaml"


def _model_parallel(path: Path) -> dict | None:
    trainer = yaml.safe_load(path.read_text()).get("trainer", {})
    strategy = trainer.get("strategy")
    if isinstance(strategy, dict) and strategy.get("class_path", "").endswith("ModelParallelStrategy"):
        return trainer
    return None


def _processes(trainer: dict) -> int:
    return int(trainer.get("num_nodes", 1)) * int(trainer["devices"])


@pytest.mark.parametrize("path", [p for p in CONFIGS if _model_parallel(p)], ids=lambda p: p.name)
def test_model_parallel_configs_shard_over_exactly_their_processes(path: Path) -> None:
    trainer = _model_parallel(path)
    sizes = trainer["strategy"]["init_args"]
    dp, tp = sizes["data_parallel_size"], sizes["tensor_parallel_size"]
    assert isinstance(dp, int) and isinstance(tp, int), "explicit sizes: 'auto' means TP inside a node"
    assert tp == 1, "the stages shard data-parallel only"
    assert dp * tp == _processes(trainer)


def test_there_are_model_parallel_configs_to_check() -> None:
    assert {p.name for p in CONFIGS if _model_parallel(p)} >= {"fsdp2_8gpu.yaml", MULTINODE.name}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse_and_name_files_that_exist(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    named = set(re.findall(r"configs/[\w/.-]+\.yaml", text))
    assert str(MULTINODE.relative_to(REPO)) in named
    for name in named:
        assert (REPO / name).is_file(), f"{script.name} names {name}, which does not exist"


def _option(text: str, pattern: str) -> int:
    match = re.search(pattern, text)
    assert match, f"no {pattern!r}"
    return int(match.group(1))


def test_the_launchers_start_the_processes_the_multinode_config_expects() -> None:
    trainer = yaml.safe_load(MULTINODE.read_text())["trainer"]
    sbatch = (LAUNCH / "slurm_fsdp2.sbatch").read_text()
    nodes, tasks = (
        _option(sbatch, r"#SBATCH --nodes=(\d+)"),
        _option(sbatch, r"#SBATCH --ntasks-per-node=(\d+)"),
    )
    assert (nodes, tasks) == (trainer["num_nodes"], trainer["devices"])
    assert _option(sbatch, r"#SBATCH --gres=gpu:(\d+)") == trainer["devices"]
    torchrun = (LAUNCH / "torchrun_fsdp2.sh").read_text()
    nnodes, per_node = _option(torchrun, r"--nnodes (\d+)"), _option(torchrun, r"--nproc-per-node (\d+)")
    assert (nnodes, per_node) == (trainer["num_nodes"], trainer["devices"])


def test_the_torchrun_script_refuses_to_start_without_its_rendezvous() -> None:
    result = subprocess.run(
        ["bash", str(LAUNCH / "torchrun_fsdp2.sh")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0 and "NODE_RANK" in result.stderr
