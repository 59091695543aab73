"""The data module tokenises with the tokenizer its config names; the ``reft`` CLI names the model's."""

from __future__ import annotations

import pytest
from jsonargparse import Namespace

from reft_lightning.cli import _share_tokenizer
from reft_lightning.data.datasets import SyntheticDataModule


def _configs(model: str, tokenizer: str | None, data_tokenizer: str | None) -> tuple[Namespace, Namespace]:
    model_config = Namespace(init_args=Namespace(model=model, tokenizer=tokenizer))
    return model_config, Namespace(init_args=Namespace(tokenizer=data_tokenizer))


@pytest.mark.parametrize(
    ("tokenizer", "data_tokenizer", "expected"),
    [(None, None, "runs/sft/hf/best"), ("tok", None, "tok"), ("tok", "own", "own"), (None, "own", "own")],
)
def test_cli_gives_the_data_module_the_models_tokenizer(
    tokenizer: str | None, data_tokenizer: str | None, expected: str
) -> None:
    model, data = _configs("runs/sft/hf/best", tokenizer, data_tokenizer)
    _share_tokenizer(model, data)
    assert data.init_args.tokenizer == expected


def test_data_module_without_a_tokenizer_names_the_key() -> None:
    data = SyntheticDataModule(num_train=4, num_val=2, num_test=2)
    with pytest.raises(ValueError, match=r"data\.init_args\.tokenizer is not set"):
        data.setup("fit")
