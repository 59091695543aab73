"""TRL side of the PPO control: TRL 1.12.0's PPOTrainer on exported questions, one seed.

Runs inside ``.venv-trl`` (torch 2.13.0 CPU, trl 1.12.0; ``bench/requirements-trl.txt``) and
imports nothing from ``reft_lightning``: this is the independent implementation. Normally started
by ``bench/trl_control.py``; by hand:

    .venv-trl/bin/python bench/trl_control_worker.py --checkpoint runs/demo/sft/hf/best \
        --questions runs/bench_trl_control/questions.jsonl --seed 0 --iterations 100 \
        --out runs/bench_trl_control/seed0

Writes ``<out>/iterations.csv`` (one row per PPO iteration, with its wall-clock ``seconds`` and
``response_tokens``) and ``<out>/policy`` (the final policy and tokenizer, ``save_pretrained``,
loadable by ``reft validate|test``; not with ``--no-save``). ``--batch-size`` and
``--response-length`` change the workload (``bench/ppo_vs_trl.py`` times it); ``--micro-batch-size``
splits each training forward and backward into micro-batches (TRL's ``per_device_train_batch_size``,
with ``gradient_accumulation_steps`` making up the batch: the same optimizer steps).

The reward model trick. TRL scores a rollout with ``get_reward(model, query_responses, pad_id,
context_length)``: it calls ``getattr(model, model.base_model_prefix)(input_ids=..., attention_mask=...,
...)`` (pad positions of ``input_ids`` replaced by 0), then ``model.score(output.hidden_states[-1])``,
and reads ``[B, T, 1]`` at the last non-pad response token. :class:`AnswerRewardModel`'s backbone
(:class:`TokenPassThrough`) returns the token ids themselves as the "hidden state" (``-1`` where the
attention mask is 0, since the EOS id may equal the 0 written over pads), and its ``score``
(:class:`AnswerScore`) strips the ``-1`` entries, finds the question by its prompt-token prefix, decodes
the rest (the response), checks the N-CoT answer and writes the score at every position, so
whichever position TRL reads holds it. Each call's scores are kept for the per-iteration CSV.

Settings (those of ``configs/demo/reft_synthetic.yaml``): 16 questions x 1 sample per iteration, 2 PPO
epochs on one minibatch of 16, AdamW lr 3e-5 (``--lr``) constant (no warm-up, weight decay 0, betas
0.9/0.999, eps 1e-8), beta 0.05 with the k1 estimator, ratio clip 0.2, value clip 0.2, vf_coef 5, gamma
1, lambda 1, temperature 1 (``--temperature``), top-k 0, top-p 1, 160 new tokens, stop at EOS, no
missing-EOS penalty, no reward whitening, advantages whitened, gradient norm clipped to 1.0, fp32,
dropout 0, CPU, 2 threads. The value model is a copy of the checkpoint as
``AutoModelForSequenceClassification`` (``num_labels=1``) with its score head zeroed (ours:
``value_init: zeros``); ``--value shared`` instead puts that head on the policy's own transformer (our
configs' default: value head on the shared backbone). See ``bench/trl_control.py`` for every remaining
difference from our PPO.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from torch import Tensor, nn
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedTokenizerBase,
    TrainerCallback,
    set_seed,
)
from transformers.modeling_outputs import BaseModelOutput
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from trl.experimental.ppo import PPOConfig, PPOTrainer

TRIGGER = "Therefore, the answer is:"
TOLERANCE = 1e-2
MAX_PROMPT_TOKENS = 300
LOGGED = {
    "objective/kl": "kl",
    "objective/entropy": "entropy",
    "objective/non_score_reward": "non_score_reward",
    "loss/policy_avg": "policy_loss",
    "loss/value_avg": "value_loss",
    "policy/clipfrac_avg": "clip_fraction",
    "policy/approxkl_avg": "approx_kl",
    "val/clipfrac_avg": "value_clip_fraction",
    "val/ratio": "ratio",
    "val/num_eos_tokens": "num_eos",
    "lr": "lr",
}


def answer_score(completion: str, gold: float) -> float:
    """N-CoT terminal score: 1.0 correct, 0.1 a number that is wrong, 0.0 no number.

    The answer is the text after the last ``TRIGGER``, stripped, commas removed, parsed as a finite
    float; correct when within ``TOLERANCE`` of ``gold``.
    """
    position = completion.rfind(TRIGGER)
    if position < 0:
        return 0.0
    text = completion[position + len(TRIGGER) :].replace(",", "").strip()
    try:
        predicted = float(text)
    except ValueError:
        return 0.0
    if not math.isfinite(predicted):
        return 0.0
    return 1.0 if abs(predicted - gold) <= TOLERANCE else 0.1


class TokenPassThrough(nn.Module):
    """A "backbone" whose last hidden state is the token ids, ``[B, T, 1]`` float, -1 off the mask."""

    def forward(self, input_ids: Tensor, attention_mask: Tensor, **_: Any) -> BaseModelOutput:
        """Token ids where ``attention_mask`` is set, -1 elsewhere (other TRL keyword arguments ignored)."""
        ids = torch.where(attention_mask.bool(), input_ids, -1).unsqueeze(-1).float()
        return BaseModelOutput(last_hidden_state=ids, hidden_states=(ids,))


class AnswerScore(nn.Module):
    """``[B, T, 1]`` token ids -> ``[B, T, 1]`` answer scores (each row's score on every position)."""

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, gold_by_prompt: dict[tuple[int, ...], float]
    ) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.gold_by_prompt = gold_by_prompt
        self.prompt_lengths = sorted({len(p) for p in gold_by_prompt}, reverse=True)
        self.history: list[Tensor] = []
        self.response_tokens: list[int] = []
        """Response tokens (EOS included) of each scored batch."""

    def row_score(self, ids: list[int]) -> float:
        """Score of one unpadded prompt + response row, its question found by its prompt prefix."""
        for length in self.prompt_lengths:
            gold = self.gold_by_prompt.get(tuple(ids[:length]))
            if gold is not None:
                self.response_tokens[-1] += len(ids) - length
                response = self.tokenizer.decode(ids[length:], skip_special_tokens=True)
                return answer_score(response, gold)
        raise KeyError("a rollout's prompt is not one of the exported questions")

    def forward(self, hidden: Tensor) -> Tensor:
        """Scores broadcast over the sequence; the batch's scores are appended to ``history``."""
        rows = [[int(t) for t in row if t >= 0] for row in hidden.squeeze(-1).tolist()]
        self.response_tokens.append(0)
        scores = torch.tensor([self.row_score(row) for row in rows], dtype=torch.float32)
        self.history.append(scores)
        return scores.view(-1, 1, 1).expand(hidden.shape[0], hidden.shape[1], 1).contiguous()


class AnswerRewardModel(nn.Module):
    """Reward "model" for TRL's ``get_reward``: ``backbone`` passes ids through, ``score`` checks answers."""

    base_model_prefix = "backbone"

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, gold_by_prompt: dict[tuple[int, ...], float]
    ) -> None:
        super().__init__()
        self.backbone = TokenPassThrough()
        self.score = AnswerScore(tokenizer, gold_by_prompt)


class ClippedAdamW(torch.optim.AdamW):
    """AdamW that clips the global gradient norm of its parameters before every step.

    TRL 1.12.0's PPO loop calls ``optimizer.step()`` right after ``backward`` and never applies
    ``max_grad_norm``; clipping here gives the same update as ours (norm over policy and value
    parameters together, then AdamW).
    """

    def __init__(self, params: list[nn.Parameter], max_grad_norm: float, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.max_grad_norm = max_grad_norm
        self.grad_norms: list[float] = []

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """Clip, record the pre-clip norm, then the AdamW step."""
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        self.grad_norms.append(float(torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)))
        return super().step(closure)


class IterationRecorder(TrainerCallback):
    """Collects one record per PPO iteration from TRL's logged metrics and the reward model's scores."""

    def __init__(self, score: AnswerScore, optimizer: ClippedAdamW) -> None:
        self.score = score
        self.optimizer = optimizer
        self.rows: list[dict[str, float]] = []
        self.clock = time.perf_counter()

    def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        """Start the clock of the first iteration."""
        self.clock = time.perf_counter()

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **_: Any
    ) -> None:
        """Append a row: sampled accuracy and score of the rollout batch, TRL's metrics, grad norm."""
        if not logs or "objective/scores" not in logs:
            return
        scores = self.score.history[-1]
        now = time.perf_counter()
        row = {"iteration": len(self.rows) + 1, "seconds": now - self.clock}
        row["response_tokens"] = self.score.response_tokens[-1]
        row["accuracy"] = float((scores == 1.0).float().mean())
        self.clock = now
        row["score"] = float(scores.mean())
        row["trl_score"] = logs["objective/scores"]
        row.update({name: logs[key] for key, name in LOGGED.items() if key in logs})
        row["grad_norm"] = self.optimizer.grad_norms[-1] if self.optimizer.grad_norms else float("nan")
        self.rows.append(row)
        print(json.dumps(row), flush=True)


def load_questions(
    path: Path, tokenizer: PreTrainedTokenizerBase
) -> tuple[Dataset, dict[tuple[int, ...], float]]:
    """The prompt dataset (``input_ids`` only) and gold answers by prompt ids.

    Prompts are tokenised here without special tokens, keeping the last ``MAX_PROMPT_TOKENS``
    tokens, and checked against the ids exported from our data pipeline.
    """
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    prompts = [r["prompt"] for r in records]
    ids = [p[-MAX_PROMPT_TOKENS:] for p in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    mismatched = sum(mine != r["prompt_ids"] for mine, r in zip(ids, records))
    if mismatched:
        raise SystemExit(f"{mismatched} prompts tokenise differently from the exported ids")
    gold = {tuple(p): float(r["answer"].replace(",", "")) for p, r in zip(ids, records)}
    return Dataset.from_dict({"input_ids": ids}), gold


def build_models(checkpoint: str, value: str) -> tuple[nn.Module, nn.Module, nn.Module]:
    """Policy, frozen reference and value model (zero-init score head; on the policy's body if shared)."""
    policy = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    reference = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    value_model = AutoModelForSequenceClassification.from_pretrained(
        checkpoint, num_labels=1, dtype=torch.float32
    )
    nn.init.zeros_(value_model.score.weight)
    if value == "shared":
        setattr(value_model, value_model.base_model_prefix, getattr(policy, policy.base_model_prefix))
    return policy, reference, value_model


def ppo_config(args: argparse.Namespace) -> PPOConfig:
    """TRL's config with the demo's settings (see the module docstring)."""
    micro = args.micro_batch_size or args.batch_size
    if args.batch_size % micro:
        raise SystemExit(f"--micro-batch-size {micro} must divide --batch-size {args.batch_size}")
    return PPOConfig(
        output_dir=str(args.out / "trl"), seed=args.seed, use_cpu=True, bf16=False, fp16=False,
        per_device_train_batch_size=micro, gradient_accumulation_steps=args.batch_size // micro,
        num_mini_batches=1,
        total_episodes=args.batch_size * args.iterations, num_ppo_epochs=2, learning_rate=args.lr,
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
        kl_coef=args.kl_coef, kl_estimator="k1", cliprange=0.2, cliprange_value=0.2, vf_coef=5.0,
        gamma=1.0, lam=args.lam, temperature=args.temperature, response_length=args.response_length,
        stop_token="eos", missing_eos_penalty=None, whiten_rewards=False,
        local_rollout_forward_batch_size=args.batch_size,
        num_sample_generations=0, gradient_checkpointing=False, logging_steps=1, save_strategy="no",
        report_to="none", disable_tqdm=True, dataloader_num_workers=0,
    )  # fmt: skip


def unique_parameters(*modules: nn.Module) -> list[nn.Parameter]:
    """Trainable parameters of ``modules``, each once (tied or shared weights appear in several)."""
    seen: dict[int, nn.Parameter] = {}
    for module in modules:
        for p in module.parameters():
            if p.requires_grad:
                seen.setdefault(id(p), p)
    return list(seen.values())


def write_csv(rows: list[dict[str, float]], path: Path) -> None:
    """Rows as CSV, columns in first-row order."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    """Train one seed and write ``iterations.csv`` and ``policy/``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--questions", type=Path, required=True, help="JSONL: prompt, prompt_ids, answer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--temperature", type=float, default=1.0, help="rollout sampling temperature")
    parser.add_argument("--kl-coef", type=float, default=0.05)
    parser.add_argument("--lam", type=float, default=1.0)
    parser.add_argument("--value", choices=["separate", "shared"], default="separate")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--batch-size", type=int, default=16, help="questions per iteration (one sample each)"
    )
    parser.add_argument(
        "--micro-batch-size", type=int, help="rows per training forward/backward (default: --batch-size)"
    )
    parser.add_argument("--response-length", type=int, default=160, help="most new tokens per rollout")
    parser.add_argument("--no-save", action="store_true", help="skip writing the final policy")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    set_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint, padding_side="left")
    dataset, gold = load_questions(args.questions, tokenizer)
    policy, reference, value_model = build_models(args.checkpoint, args.value)
    reward_model = AnswerRewardModel(tokenizer, gold)
    optimizer = ClippedAdamW(
        unique_parameters(policy, value_model), max_grad_norm=1.0, lr=args.lr, betas=(0.9, 0.999), eps=1e-8,
        weight_decay=0.0,
    )  # fmt: skip
    trainer = PPOTrainer(
        args=ppo_config(args), processing_class=tokenizer, model=policy, ref_model=reference,
        reward_model=reward_model, train_dataset=dataset, value_model=value_model,
        eval_dataset=dataset.select(range(16)), optimizers=(optimizer, None),
    )  # fmt: skip
    recorder = IterationRecorder(reward_model.score, optimizer)
    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)
    trainer.add_callback(recorder)
    trainer.train()

    write_csv(recorder.rows, args.out / "iterations.csv")
    if args.no_save:
        return
    trained = trainer.accelerator.unwrap_model(trainer.model).policy
    trained.save_pretrained(args.out / "policy")
    tokenizer.save_pretrained(args.out / "policy")


if __name__ == "__main__":
    main()
