"""Load any causal LM and its tokenizer by hub name or local path.

The one loading path for every model: a 7B hub checkpoint and an offline tiny model saved by
``models/tiny.py`` go through the same calls.
"""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""Names accepted for ``dtype`` in configs."""


def resolve_dtype(name: str) -> torch.dtype:
    """Map a config dtype name to a torch dtype, with an error listing the accepted names."""
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {name!r}") from None


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """Load a tokenizer and make it usable for batching: it must have EOS, and gets a pad token.

    Padding side is irrelevant here: the collators pad explicitly (right for training, left for
    generation). A tokenizer without a pad token reuses EOS as pad; attention masks keep them apart.
    """
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    if tokenizer.eos_token_id is None:
        raise ValueError(f"tokenizer {name_or_path!r} has no EOS token; targets must end with EOS")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(name_or_path: str, dtype: str = "float32", **kwargs: object) -> PreTrainedModel:
    """Load a causal LM with weights in ``dtype`` (``float32``, ``bfloat16`` or ``float16``)."""
    return AutoModelForCausalLM.from_pretrained(name_or_path, dtype=resolve_dtype(dtype), **kwargs)


def weights_from_lightning_checkpoint(path: str, prefix: str = "model.") -> dict[str, torch.Tensor]:
    """The weights stored under ``prefix`` in a Lightning checkpoint (a stage's ``self.model``).

    Raises ``ValueError`` naming the file when the checkpoint holds no such weights.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    weights = {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
    if not weights:
        raise ValueError(f"{path}: no weights under {prefix!r}; is it a reft_lightning stage checkpoint?")
    return weights


def load_lightning_weights(model: PreTrainedModel, path: str, prefix: str = "model.") -> None:
    """Overwrite ``model``'s weights with those of a Lightning checkpoint; every key must match."""
    model.load_state_dict(weights_from_lightning_checkpoint(path, prefix), strict=True)
