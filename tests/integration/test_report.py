"""``reft report`` on a real run: a tiny ``reft fit`` of ReFT (two PPO iterations, one validation),
then the page and the PNG written from its CSV log, through the ``reft`` entry point."""

from __future__ import annotations

from pathlib import Path

from reft_lightning.cli import main
from reft_lightning.report.page import MISSING
from tests.conftest import REPO
from tests.integration.test_cli import CPU_OVERRIDES, _metrics


def test_report_of_a_tiny_reft_fit(tiny_model_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "reft_tiny"
    main(
        [
            "fit",
            f"--config={REPO / 'configs' / 'demo' / 'reft_synthetic.yaml'}",
            *CPU_OVERRIDES,
            f"--trainer.default_root_dir={run}",
            "--trainer.max_steps=4",  # optimizer steps: two PPO epochs of one minibatch per iteration
            "--trainer.val_check_interval=2",
            "--trainer.num_sanity_val_steps=0",
            f"--model.init_args.model={tiny_model_dir}",
            "--model.init_args.rollout.max_new_tokens=8",
            "--model.init_args.eval_generation.max_new_tokens=8",
            "--data.init_args.num_train=8",
            "--data.init_args.num_val=4",
            "--data.init_args.num_test=4",
            "--data.init_args.batch_size=2",
            "--data.init_args.eval_batch_size=4",
        ]
    )
    rows = _metrics(run)
    iterations = [int(float(r["train/iteration"])) for r in rows if r.get("train/iteration")]
    (val,) = [float(r["val/accuracy"]) for r in rows if r.get("val/accuracy")]
    assert iterations == [1, 2] and any(key.startswith("time/") for key in rows[0])

    main(["report", str(run)])

    page = (run / "report.md").read_text()
    table = [line for line in page.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| Run | Steps | Best val accuracy | Best at step | Final val accuracy |")
    assert table[-1] == f"| reft_tiny | 2 | {100 * val:.1f}% | 2 | {100 * val:.1f}% | {MISSING} |"
    assert "![Curves](report.png)" in page and "no timing" not in page
    assert (run / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
