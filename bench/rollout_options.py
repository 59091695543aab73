"""Rollout throughput on this machine of ``model.generate`` under the options transformers and torch
offer (the KV cache's kind, dynamic by default or static; ``torch.compile`` of each transformer block,
as ``model.init_args.compile_blocks`` does, or of the whole model) and of this project's static-cache
engine (``model.init_args.engine.name: static``), eager and with its decode step compiled.

The work of one ReFT rollout at the bench's shape: ``--batch`` of the demo's synthetic questions
(N-CoT prompts, left-padded), ``--tokens`` new tokens sampled at temperature 0.7, on ``--model``
(default: the micro GPT-2 of ``bench/ppo_vs_trl.py``; a random model seldom emits EOS, so nearly
every row runs to ``--tokens``). Each option gets its own copy of the model, ``--warmup`` calls
(compilation: reported as ``first calls``), then ``--repeats`` interleaved timed calls; the table gives
generated tokens per second (medians) and the ratio to plain ``generate``. ``--device`` and
``--dtype`` choose where and in what precision (each call ends by bringing its token count to the
host, so on CUDA its clock stops after the device has finished; ``bench/gpu_smoke.sh`` runs it there
in bf16).

    python bench/rollout_options.py --out docs/results/rollout_options.md
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from reft_lightning.data.formats import CotFormat, prompt_text
from reft_lightning.data.synthetic import generate_problems
from reft_lightning.generation import SamplingArgs, StaticCacheEngine
from reft_lightning.generation.engine import response_mask
from reft_lightning.models.builder import compile_blocks
from reft_lightning.models.loading import load_causal_lm, load_tokenizer

from runs import micro_model, publish_table, timing_row

GENERATE_OPTIONS = ("plain", "static cache", "compiled blocks", "compiled model, static cache")
"""Options of ``model.generate``; ``plain`` is what the HF engine (``engine.name: hf``) runs."""
ENGINE_OPTIONS = ("static-cache engine, eager", "static-cache engine, compiled")
"""This project's decode loop (``engine.name: static``), with ``engine.compile`` false and true."""


def build(model_dir: Path, option: str, device: torch.device, dtype: str) -> torch.nn.Module:
    model = load_causal_lm(str(model_dir), dtype).to(device).eval()
    if option == "compiled blocks":
        compile_blocks(model)
    elif option == "compiled model, static cache":
        model.compile()
    return model


def device_name(device: torch.device) -> str:
    """``cpu``, or the CUDA device's name (``NVIDIA H200``)."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("runs/ppo_vs_trl/model"))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("docs/results/rollout_options.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    micro_model(args.model)
    tokenizer = load_tokenizer(str(args.model))
    rows = [
        tokenizer(prompt_text(e, CotFormat.NCOT, True), add_special_tokens=False)["input_ids"]
        for e in generate_problems(args.batch, seed=0)
    ]
    width = max(map(len, rows))
    device = torch.device(args.device)
    ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(r)) + r for r in rows], device=device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
    settings = {"input_ids": ids, "attention_mask": mask, "max_new_tokens": args.tokens, "do_sample": True,
                "temperature": 0.7, "top_k": 0, "top_p": 1.0, "eos_token_id": tokenizer.eos_token_id,
                "pad_token_id": tokenizer.pad_token_id}  # fmt: skip
    sampling = SamplingArgs(max_new_tokens=args.tokens, temperature=0.7)

    def rollout(option: str) -> Callable[[], int]:
        """A call generating the batch with ``option``, returning the number of tokens generated
        (up to and including each row's EOS)."""
        model = build(args.model, option, device, args.dtype)
        if option in ENGINE_OPTIONS:
            engine = StaticCacheEngine(model, tokenizer, compile=option.endswith("compiled"))
            return lambda: int(engine.generate(ids, mask, sampling).response_mask.sum())
        cache = {"cache_implementation": "static"} if "static" in option else {}
        return lambda: int(response_mask(model.generate(**settings, **cache)[:, width:], eos_id).sum())

    def timed(call: Callable[[], int]) -> tuple[float, int]:
        torch.manual_seed(0)
        started = time.perf_counter()
        with torch.no_grad():
            tokens = call()
        return time.perf_counter() - started, tokens

    eos_id, options = tokenizer.eos_token_id, GENERATE_OPTIONS + ENGINE_OPTIONS
    calls, first, rates = {}, {}, {option: [] for option in options}
    for option in options:
        calls[option] = rollout(option)
        started = time.perf_counter()
        for _ in range(args.warmup):
            timed(calls[option])
        first[option] = time.perf_counter() - started
    for _ in range(args.repeats):
        for option in options:
            seconds, tokens = timed(calls[option])
            rates[option].append(tokens / seconds)
    plain = statistics.median(rates["plain"])
    lines = [
        f"Rollouts of {args.batch} prompts x {args.tokens} new tokens (temperature 0.7), `{args.model}`, "
        f"{args.dtype} on {device_name(device)}, {args.threads} thread(s), torch {torch.__version__}; "
        f"{args.repeats} interleaved calls per "
        f"option after {args.warmup} warm-up calls.",
        "",
        "| option | generated tokens / s, median (range) | vs plain | first calls (s) |",
        "| --- | --- | --- | --- |",
    ]
    lines += [timing_row(option, rates[option], plain, first[option]) for option in options]
    publish_table(lines, args.out)


if __name__ == "__main__":
    main()
