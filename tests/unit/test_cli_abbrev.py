"""``reft`` refuses an abbreviated option (``--trainer.max_epoch`` was read as ``max_epochs``): a
misspelt key must fail naming it, not set another key silently.

Fails until ``reft_lightning/cli.py`` passes ``allow_abbrev=False`` in ``parser_kwargs``.
"""

from __future__ import annotations

import pytest

from reft_lightning.cli import main
from tests.conftest import REPO

CONFIG = REPO / "configs" / "demo" / "sft_synthetic.yaml"


@pytest.mark.parametrize("option", [["--trainer.max_epoch=1"], ["--trainer.max_epoch", "1"]])
def test_an_abbreviated_option_is_refused(option: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # --print_config: parse only, so an accepted abbreviation prints and exits 0 instead of training
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", f"--config={CONFIG}", *option, "--print_config"])
    assert exit_info.value.code != 0
    assert "unrecognized arguments: --trainer.max_epoch" in capsys.readouterr().err


def test_the_full_option_is_still_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", f"--config={CONFIG}", "--trainer.max_epochs=3", "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "max_epochs: 3" in capsys.readouterr().out
