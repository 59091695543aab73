"""rl/ must stay pure tensor math (rule of the house): import it in a clean interpreter and look."""

from __future__ import annotations

import subprocess
import sys


def test_rl_package_imports_no_lightning_and_no_transformers() -> None:
    code = (
        "import sys, reft_lightning.rl\n"
        "banned = ('lightning', 'pytorch_lightning', 'lightning_fabric', 'transformers')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in banned]\n"
        "print(bad)\n"
        "assert 'reft_lightning.rl.gae' in sys.modules and not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout
