"""Tokenise examples once into the id lists the collators pad: prompt, full sequence and labels."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
from transformers import PreTrainedTokenizerBase

from reft_lightning.data.collate import IGNORE_INDEX
from reft_lightning.data.example import MathExample
from reft_lightning.data.formats import CotFormat, prompt_text, target_text


def _fingerprint(
    rows: dict[str, list[Any]], tokenizer: PreTrainedTokenizerBase, settings: dict[str, Any]
) -> str:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(json.dumps(tokenizer.get_vocab(), sort_keys=True).encode())
    for key in sorted(rows):
        digest.update(json.dumps(rows[key]).encode())
    return digest.hexdigest()[:24]


def tokenize_examples(
    examples: Sequence[MathExample],
    tokenizer: PreTrainedTokenizerBase,
    cot_format: CotFormat,
    max_length: int,
    max_prompt_length: int,
    cache_dir: str | Path | None = None,
) -> datasets.Dataset:
    """Tokenise with ``datasets.map``; cached on disk under ``cache_dir`` when given.

    Columns: ``index`` (position in ``examples``), ``prompt_ids`` (the generation prompt, keeping
    its LAST ``max_prompt_length`` tokens so the answer cue survives), ``input_ids`` (training
    prompt + target + EOS, first ``max_length`` tokens; empty when the example has no gold chain)
    and ``labels`` (``IGNORE_INDEX`` on prompt positions).
    """
    rows = {
        "index": list(range(len(examples))),
        "prompt": [prompt_text(e, cot_format, for_generation=False) for e in examples],
        "generation_prompt": [prompt_text(e, cot_format, for_generation=True) for e in examples],
        "target": [target_text(e, cot_format) if e.cot is not None else "" for e in examples],
    }
    eos = tokenizer.eos_token_id

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[list[int]]]:
        encode_texts = lambda texts: tokenizer(texts, add_special_tokens=False)["input_ids"]  # noqa: E731
        prompts, generation_prompts = encode_texts(batch["prompt"]), encode_texts(batch["generation_prompt"])
        targets = encode_texts(batch["target"])
        out: dict[str, list[list[int]]] = {"prompt_ids": [], "input_ids": [], "labels": []}
        for prompt, generation_prompt, target, text in zip(
            prompts, generation_prompts, targets, batch["target"]
        ):
            out["prompt_ids"].append(generation_prompt[-max_prompt_length:])
            if not text:
                out["input_ids"].append([])
                out["labels"].append([])
                continue
            full = (prompt + target + [eos])[:max_length]
            out["input_ids"].append(full)
            out["labels"].append(([IGNORE_INDEX] * len(prompt) + target + [eos])[:max_length])
        return out

    dataset = datasets.Dataset.from_dict(rows)
    cache_file = None
    if cache_dir is not None:
        settings = {
            "format": CotFormat(cot_format).value,
            "max_length": max_length,
            "prompt": max_prompt_length,
        }
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        cache_file = str(Path(cache_dir) / f"tokens-{_fingerprint(rows, tokenizer, settings)}.arrow")
    return dataset.map(
        encode,
        batched=True,
        remove_columns=["prompt", "generation_prompt", "target"],
        cache_file_name=cache_file,
        load_from_cache_file=cache_file is not None,
        desc="tokenising",
    )
