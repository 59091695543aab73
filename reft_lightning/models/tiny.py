"""Offline tiny models: random weights from a config, and a tokenizer trained on local text.

``create_tiny_model`` writes a directory that ``models/loading.py`` loads like any hub model, so
tests, the demo and benchmarks need no network. ``python -m reft_lightning.tiny`` builds one with a
tokenizer trained on task text (that command reads data; this module does not).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

SIZES: dict[str, dict[str, int]] = {
    "nano": {"n_layer": 2, "n_embd": 64, "n_head": 2},
    "micro": {"n_layer": 4, "n_embd": 128, "n_head": 4},
    "mini": {"n_layer": 6, "n_embd": 256, "n_head": 8},
}
"""Named model sizes (GPT-2 architecture). ``micro`` is about 1M parameters plus embeddings."""

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts``; EOS and pad are special tokens.

    Byte-level BPE encodes any string (no unknown tokens), so a tiny model can read real datasets.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN)


def create_tiny_model(
    out_dir: str | Path,
    texts: Iterable[str],
    size: str = "micro",
    vocab_size: int = 2048,
    max_positions: int = 1024,
    seed: int = 0,
) -> Path:
    """Write a randomly initialised GPT-2 of ``size`` and a tokenizer trained on ``texts`` to ``out_dir``.

    Dropout is 0: tiny models here underfit, and it keeps resumed runs bit-identical.
    Returns the directory, loadable with ``load_causal_lm`` / ``load_tokenizer``.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    import torch

    tokenizer = train_tokenizer(texts, vocab_size)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=max_positions,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        **SIZES[size],
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
