"""bench/gpu_smoke.sh on a machine without a CUDA GPU: it says so and exits 0 (CI runs it so)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the script trains; run it by hand")
def test_the_gpu_smoke_script_skips_cleanly_without_a_gpu(tmp_path: Path) -> None:
    env = {**os.environ, "PY": sys.executable, "SMOKE_OUT": str(tmp_path / "out")}
    result = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_smoke.sh")], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "no CUDA GPU here" in result.stdout and "skipped" in result.stdout
    assert not (tmp_path / "out").exists(), "nothing is written when it skips"
