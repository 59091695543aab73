"""Fixtures shared across test folders: repository paths and an offline tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

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


@pytest.fixture(scope="session")
def tiny_llama_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-layer Llama (untied head, rotary buffers, grouped KV heads) with random weights and the
    tiny model's tokenizer, saved split over several safetensors files (with an index)."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny") / "llama"
    LlamaForCausalLM(config).save_pretrained(out, max_shard_size="40KB")
    tokenizer.save_pretrained(out)
    return out
