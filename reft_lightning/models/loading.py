"""Load any causal LM and its tokenizer by hub name or local path.

The one loading path for every model: a 7B hub checkpoint and an offline tiny model saved by
``models/tiny.py`` go through the same calls. A name that is a local path (see
:func:`looks_like_local_path`) and does not exist is refused naming the path and its config key,
instead of transformers' message about hub repository ids.
"""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint.format_utils import dcp_to_torch_save
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""Names accepted for ``dtype`` in configs."""


def resolve_dtype(name: str) -> torch.dtype:
    """Map a config dtype name to a torch dtype, with an error listing the accepted names."""
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {name!r}") from None


def looks_like_local_path(name_or_path: str) -> bool:
    """Whether ``name_or_path`` names a local directory rather than a hub id (``org/name`` or ``name``).

    The rule: it exists locally; or it starts with ``/``, ``.`` or ``~``, or ends with ``/``; or it has
    more than one ``/`` or any ``\\`` (a hub id has at most one ``/``); or its first component is an
    existing local directory (``runs/best`` where ``runs/`` exists). Anything else, such as
    ``Qwen/Qwen2.5-0.5B`` or ``gpt2``, is a hub id.
    """
    if Path(name_or_path).expanduser().exists():
        return True
    if name_or_path.startswith(("/", ".", "~")) or name_or_path.endswith("/"):
        return True
    if name_or_path.count("/") > 1 or "\\" in name_or_path:
        return True
    first, slash, _ = name_or_path.partition("/")
    return bool(slash) and Path(first).is_dir()


def require_local_model(name_or_path: str, key: str) -> None:
    """Raise ``FileNotFoundError`` naming ``key`` and the path when ``name_or_path`` is a local path
    (:func:`looks_like_local_path`) that does not exist; hub ids pass unchecked."""
    path = Path(name_or_path).expanduser()
    if looks_like_local_path(name_or_path) and not path.exists():
        raise FileNotFoundError(
            f"{key}: model path not found: {path.absolute()} (from config value {name_or_path!r}). Give "
            f"an existing directory holding config.json and the weights (an SFT run's hf/best or "
            f"hf/final export, or a saved tiny model), or a hub id such as 'Qwen/Qwen2.5-0.5B'"
        )


def load_tokenizer(name_or_path: str, key: str = "tokenizer") -> PreTrainedTokenizerBase:
    """Load a tokenizer and make it usable for batching: it must have EOS, and gets a pad token.

    ``key`` names the config field the value came from, for the error a missing local path raises
    (:func:`require_local_model`). Padding side is irrelevant here: the collators pad explicitly
    (right for training, left for generation). A tokenizer without a pad token reuses EOS as pad;
    attention masks keep them apart.
    """
    require_local_model(name_or_path, key)
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    if tokenizer.eos_token_id is None:
        raise ValueError(f"tokenizer {name_or_path!r} has no EOS token; targets must end with EOS")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    name_or_path: str, dtype: str = "float32", *, key: str = "model", **kwargs: object
) -> PreTrainedModel:
    """Load a causal LM with weights in ``dtype`` (``float32``, ``bfloat16`` or ``float16``).

    ``key`` names the config field the value came from, for the error a missing local path raises
    (:func:`require_local_model`).
    """
    require_local_model(name_or_path, key)
    return AutoModelForCausalLM.from_pretrained(name_or_path, dtype=resolve_dtype(dtype), **kwargs)


def load_sequence_classifier(
    name_or_path: str, pad_token_id: int, dtype: str = "float32", *, key: str = "model", num_labels: int = 2
) -> PreTrainedModel:
    """Load a sequence classifier (transformers' ``AutoModelForSequenceClassification``): the backbone of
    ``name_or_path`` (a causal LM export: its LM head is dropped, a new ``num_labels`` head is added) or
    a saved classifier. It scores each row from the hidden state of its last token that is not
    ``pad_token_id``, which is set in the model's config (right-padded rows then read their own end).
    """
    require_local_model(name_or_path, key)
    model = AutoModelForSequenceClassification.from_pretrained(
        name_or_path, dtype=resolve_dtype(dtype), num_labels=num_labels
    )
    model.config.pad_token_id = pad_token_id
    return model


def weights_from_lightning_checkpoint(path: str, prefix: str = "model.") -> dict[str, torch.Tensor]:
    """The weights stored under ``prefix`` in a Lightning checkpoint (a stage's ``self.model``).

    Raises ``ValueError`` naming the file when the checkpoint holds no such weights.
    """
    return weights_under(read_lightning_checkpoint(path), prefix, path)


def weights_under(checkpoint: dict[str, Any], prefix: str, path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of ``checkpoint["state_dict"]`` (read from ``path``) under ``prefix``, the prefix
    removed; ``ValueError`` naming ``path`` when there are none."""
    state = checkpoint["state_dict"]
    weights = {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
    if not weights:
        raise ValueError(f"{path}: no weights under {prefix!r}; is it a reft_lightning stage checkpoint?")
    return weights


def read_lightning_checkpoint(path: str | Path) -> dict[str, Any]:
    """The whole Lightning checkpoint (``state_dict``, ``hyper_parameters``, ...) in a file, or in a
    sharded checkpoint directory (FSDP2's, gathered into one temporary file in this process, with the
    non-tensor state Lightning writes beside the shards in ``meta.pt``).

    Raises ``ValueError`` naming ``path`` when it is not a Lightning checkpoint: a file torch cannot
    read, a directory that is not a ``torch.distributed.checkpoint`` one, or no ``state_dict``.
    """
    path = Path(path)
    if path.is_dir() and not (path / ".metadata").is_file():
        raise ValueError(
            f"{path}: a directory without .metadata is not a sharded (torch.distributed.checkpoint) "
            "Lightning checkpoint"
        )
    try:
        if path.is_dir():
            with tempfile.TemporaryDirectory() as folder:
                whole = Path(folder) / "checkpoint.pt"
                dcp_to_torch_save(path, whole)
                checkpoint = torch.load(whole, map_location="cpu", weights_only=True)
            meta = path / "meta.pt"  # Lightning keeps the rest (hyper_parameters, loops) beside the shards
            if meta.is_file():
                checkpoint = {**torch.load(meta, map_location="cpu", weights_only=True), **checkpoint}
        else:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        reason = type(error).__name__  # torch's message suggests weights_only=False: not wanted here
        raise ValueError(
            f"{path}: torch.load cannot read it ({reason}); not a Lightning checkpoint"
        ) from error
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise ValueError(f"{path}: holds no state_dict, so it is not a Lightning checkpoint")
    return checkpoint
