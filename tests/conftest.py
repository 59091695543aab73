"""Fixtures shared across test folders: repository paths and an offline tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

from reft_lightning.data.formats import CotFormat, prompt_text, target_text
from reft_lightning.data.synthetic import arithmetic_chain_corpus, generate_problems
from reft_lightning.models.tiny import create_tiny_model

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``nano`` GPT-2 with random weights and a tokenizer trained on synthetic text (offline)."""
    problems = generate_problems(300, seed=0)
    texts = [prompt_text(e, CotFormat.NCOT, False) + target_text(e, CotFormat.NCOT) for e in problems]
    texts += arithmetic_chain_corpus(300, seed=0)
    return create_tiny_model(tmp_path_factory.mktemp("tiny") / "nano", texts, size="nano", vocab_size=600)


@pytest.fixture(scope="session")
def gsm8k_dir() -> Path:
    """``../shared/data/gsm8k``; fails (never skips) when missing."""
    path = SHARED_DATA / "gsm8k"
    assert (path / "train.jsonl").is_file(), f"shared data missing at {path}"
    return path
