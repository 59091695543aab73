"""``reft export CKPT OUT``: a stage checkpoint as a Hugging Face model directory.

A run's ``HFExport`` callback writes ``hf/final`` only when fitting ends; a run stopped early, or a
checkpoint chosen later, has only its Lightning checkpoint (a ``.ckpt`` file, or under FSDP2 a
sharded ``last.ckpt/`` directory). This command turns either into a directory that plain
``transformers`` loads (``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer``), so it can be
evaluated, shared or used as a later stage's ``model``. Only the policy is exported (the weights
under ``model.``); a ReFT checkpoint's frozen reference and value model are left out.

The architecture is built from the model's config alone (no weights are downloaded), the
checkpoint's weights are loaded into it with every key matching, and nothing holding ``nan`` or
``inf`` is written. ``--model``, ``--tokenizer`` and ``--dtype`` default to the stage's own
``model.init_args`` saved in the checkpoint.

    reft export runs/sft/checkpoints/last.ckpt runs/sft/hf/last
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from reft_lightning.checkpoints.finite import NonFiniteStateError, require_finite
from reft_lightning.models.loading import (
    DTYPES,
    load_tokenizer,
    read_lightning_checkpoint,
    require_local_model,
    resolve_dtype,
    weights_under,
)

DESCRIPTION = (
    "Write the policy of a reft_lightning stage checkpoint (a .ckpt file, or a sharded checkpoint "
    "directory such as FSDP2's last.ckpt/) and its tokenizer as a Hugging Face model directory that "
    "transformers' from_pretrained loads. --model, --tokenizer and --dtype default to the stage's own, "
    "saved in the checkpoint."
)
"""What ``reft export --help`` says the command does."""
PREFIX = "model."
"""Where a stage keeps its policy's weights in ``state_dict`` (``self.model``)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of ``reft export``."""
    parser = argparse.ArgumentParser(
        prog="reft export",
        description=DESCRIPTION,
    )
    parser.add_argument("ckpt", metavar="CKPT", help="a stage's .ckpt file or sharded checkpoint directory")
    parser.add_argument("out", metavar="OUT", help="directory to write (config, weights, tokenizer)")
    parser.add_argument("--model", help="hub name or path giving the architecture (default: the stage's)")
    parser.add_argument("--tokenizer", help="hub name or path of the tokenizer (default: the stage's)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), help="weight dtype (default: the stage's)")
    parser.add_argument("--overwrite", action="store_true", help="write into OUT even if it is not empty")
    return parser.parse_args(argv)


def tie_weights(
    model: PreTrainedModel, weights: dict[str, torch.Tensor], ckpt: str
) -> dict[str, torch.Tensor]:
    """``weights`` with each weight that ``model`` ties to another (``lm_head.weight`` to the input
    embeddings) filled in from it when the checkpoint left it out, so that every key matches.

    A checkpoint that holds a tied weight must hold the same tensor as its source; a different one
    would silently replace the embeddings too, so it is refused naming ``ckpt``.
    """
    weights = dict(weights)
    for tied, source in (getattr(model, "all_tied_weights_keys", None) or {}).items():
        if source not in weights:
            continue
        if tied not in weights:
            weights[tied] = weights[source]
        elif not torch.equal(weights[tied], weights[source]):
            raise ValueError(
                f"{ckpt}: {PREFIX}{tied} differs from {PREFIX}{source}, but the model config ties "
                "them; give --model with a config that does not tie them (tie_word_embeddings: false)"
            )
    return weights


def _stage_defaults(checkpoint: Mapping[str, Any]) -> Mapping[str, Any]:
    """The stage's saved ``__init__`` arguments (empty when the checkpoint has none)."""
    hparams = checkpoint.get("hyper_parameters")
    return hparams if isinstance(hparams, Mapping) else {}


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that is a file, or a non-empty directory unless ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: exists and is not empty; pass --overwrite to write into it")


def export(
    ckpt: str,
    out: str,
    model: str | None = None,
    tokenizer: str | None = None,
    dtype: str | None = None,
    overwrite: bool = False,
) -> tuple[Path, int, str]:
    """Write the policy of the stage checkpoint ``ckpt`` and its tokenizer to ``out`` with
    ``save_pretrained``. ``model``, ``tokenizer`` and ``dtype`` override the stage's own.

    Returns the directory written, the parameter count and the dtype name. Raises
    ``FileNotFoundError`` / ``FileExistsError`` / ``ValueError`` / ``NonFiniteStateError`` with
    messages naming the path at fault; nothing is written before every check has passed.
    """
    path, target = Path(ckpt), Path(out)
    if not path.exists():
        raise FileNotFoundError(f"{path.absolute()}: checkpoint not found")
    _check_out(target, overwrite)
    checkpoint = read_lightning_checkpoint(path)
    weights = weights_under(checkpoint, PREFIX, path)
    stage = _stage_defaults(checkpoint)
    model_key = "--model" if model else "the checkpoint's hyper_parameters.model"
    model = model or stage.get("model")
    if not model:
        raise ValueError(f"{path}: its hyper_parameters name no model; give --model NAME_OR_PATH")
    tokenizer_key = "--tokenizer" if tokenizer else "the checkpoint's hyper_parameters.tokenizer"
    tokenizer = tokenizer or stage.get("tokenizer") or model
    dtype = dtype or stage.get("dtype") or "float32"
    require_local_model(model, model_key)
    policy = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model), dtype=resolve_dtype(dtype))
    try:
        policy.load_state_dict(tie_weights(policy, weights, ckpt), strict=True)
    except RuntimeError as error:
        raise ValueError(f"{path}: its weights do not fit the architecture of {model!r}: {error}") from error
    require_finite(policy.state_dict(), f"the export {target}")
    tokens = load_tokenizer(tokenizer, tokenizer_key)
    policy.save_pretrained(target)
    tokens.save_pretrained(target)
    return target, sum(parameter.numel() for parameter in policy.parameters()), dtype


def main(argv: list[str] | None = None) -> None:
    """``reft export``: export, then print one line saying what was written; an error ends the
    command with its message alone (exit status 1)."""
    args = parse_args(argv)
    try:
        out, count, dtype = export(
            args.ckpt, args.out, args.model, args.tokenizer, args.dtype, args.overwrite
        )
    except (OSError, ValueError, NonFiniteStateError) as error:
        raise SystemExit(f"reft export: {error}") from error
    print(f"exported {args.ckpt} to {out} (model and tokenizer): {count:,} parameters, {dtype}")


if __name__ == "__main__":
    main()
