"""`python -m reft_lightning.tiny` (the demo's stage 0): a loadable model whose tokenizer reads the task."""

from __future__ import annotations

from pathlib import Path

from reft_lightning.data.synthetic import generate_problems
from reft_lightning.models.loading import load_causal_lm, load_tokenizer
from reft_lightning.tiny import main


def test_tiny_command_writes_a_model_whose_tokenizer_reads_the_task(tmp_path: Path) -> None:
    main(["--out", str(tmp_path / "init"), "--size", "micro"])
    model = load_causal_lm(str(tmp_path / "init"), "float32")
    tokenizer = load_tokenizer(str(tmp_path / "init"))
    assert model.config.vocab_size == len(tokenizer) <= 2048
    assert model.config.n_layer == 4 and model.config.n_embd == 128
    question = generate_problems(1, seed=123)[0].question
    ids = tokenizer(question).input_ids
    assert tokenizer.decode(ids) == question
    assert len(ids) < len(question) / 2, "trained on task text, the tokenizer merges common words"
