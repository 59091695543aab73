"""What the training forward and backward cost under each option torch and transformers offer, on this
machine: attention kernel (eager / SDPA), AdamW implementation (for-loop / foreach / fused) and
``torch.compile``. One PPO optimise step's work on the policy: a forward over prompt + response with
grad, a masked mean log-prob loss on the response tokens, backward, AdamW step.

Shapes are those of ``bench/ppo_vs_trl.py`` (``--batch`` rollouts of ``--prompt`` + ``--response``
tokens, micro GPT-2 by default, fp32, ``--threads`` threads). Each option is timed for ``--steps``
steps after ``--warmup`` steps (compilation, first allocations: reported apart as ``first steps``),
in one process, the options interleaved ``--repeats`` times; the table gives medians of ms per step.

    python bench/train_step_options.py --out docs/results/train_step_options.md
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from reft_lightning.models.builder import compile_blocks
from reft_lightning.models.forward import response_forward
from reft_lightning.models.loading import load_causal_lm
from reft_lightning.rl.logprobs import token_logprobs

from runs import micro_model, publish_table, timing_row


@dataclass(frozen=True)
class Option:
    """One combination of the measured choices."""

    attention: str
    """transformers' ``attn_implementation``: ``eager`` or ``sdpa``."""
    adamw: str
    """``default`` (torch's choice: a for-loop on CPU, ``foreach`` on CUDA), ``foreach`` or ``fused``."""
    compiled: str = ""
    """``""``: eager; ``model``: the whole model compiled (``nn.Module.compile``: inductor, default
    mode); ``blocks``: each transformer block compiled (what ``model.init_args.compile_blocks`` does)."""

    @property
    def name(self) -> str:
        return f"{self.attention}, AdamW {self.adamw}{f', compiled {self.compiled}' if self.compiled else ''}"


OPTIONS = (
    Option("sdpa", "default"),
    Option("eager", "default"),
    Option("sdpa", "foreach"),
    Option("sdpa", "fused"),
    Option("sdpa", "default", "model"),
    Option("sdpa", "default", "blocks"),
)
"""The first is what ReFTModule uses today (transformers' default attention, torch's default AdamW)."""


class Step:
    """The model, optimizer and a fixed batch of one option: ``run()`` is one training step."""

    def __init__(self, model_dir: Path, option: Option, args: argparse.Namespace) -> None:
        torch.manual_seed(0)
        self.model = load_causal_lm(str(model_dir), attn_implementation=option.attention).train()
        flags = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-5, **flags[option.adamw])
        if option.compiled == "model":
            self.model.compile()  # in place: the module keeps its class (and logits_to_keep)
        elif option.compiled == "blocks":
            compile_blocks(self.model)
        length = args.prompt + args.response
        self.sequences = torch.randint(2, self.model.config.vocab_size, (args.batch, length))
        self.attention = torch.ones_like(self.sequences)
        self.attention[: args.batch // 2, : args.prompt // 4] = 0  # left padding on half the rows
        self.response = self.sequences[:, -args.response :]

    def run(self) -> None:
        logits, _ = response_forward(self.model, self.sequences, self.attention, self.response.shape[1])
        loss = -token_logprobs(logits, self.response).mean()
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="a causal LM directory (default: a new micro GPT-2)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--prompt", type=int, default=48, help="prompt tokens per row")
    parser.add_argument("--response", type=int, default=64, help="response tokens per row")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per option and repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", type=Path, default=Path("runs/train_step_options"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/train_step_options.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = micro_model(args.model or args.runs / "model")

    steps, first, timings = {}, {}, {option: [] for option in OPTIONS}
    for option in OPTIONS:
        steps[option] = Step(model, option, args)
        started = time.perf_counter()
        for _ in range(args.warmup):
            steps[option].run()
        first[option] = time.perf_counter() - started
    for _ in range(args.repeats):
        for option in OPTIONS:
            for _ in range(args.steps):
                started = time.perf_counter()
                steps[option].run()
                timings[option].append(1000 * (time.perf_counter() - started))
    baseline = statistics.median(timings[OPTIONS[0]])
    lines = [
        f"One training step of the policy (forward with grad, loss, backward, AdamW): {args.batch} rows x "
        f"({args.prompt} prompt + {args.response} response) tokens, `{model}`, fp32, {args.threads} "
        f"thread(s), torch {torch.__version__}; {args.repeats} interleaved rounds of {args.steps} steps.",
        "",
        "| option | ms / step, median (range) | time vs the first row | first steps (s) |",
        "| --- | --- | --- | --- |",
    ]
    lines += [timing_row(option.name, timings[option], baseline, first[option]) for option in OPTIONS]
    publish_table(lines, args.out)


if __name__ == "__main__":
    main()
