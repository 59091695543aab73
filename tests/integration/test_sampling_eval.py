"""Sampled evaluation through the CLI: validate's pass@k / voting@k equal the mean of the
per-question estimates that ``reft predict`` streams to JSONL, recomputed here from each sample."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch

from reft_lightning.cli import main
from reft_lightning.data.example import MathExample
from reft_lightning.evaluation import SamplingEvalArgs, majority_vote_index
from reft_lightning.evaluation.sampling import sample_and_score
from reft_lightning.generation import HFGenerationEngine
from reft_lightning.models.loading import load_causal_lm, load_tokenizer
from reft_lightning.rewards.base import Reward, RewardOutput
from tests.conftest import REPO
from tests.integration.test_cli import CPU_OVERRIDES, _metrics


class LengthReward(Reward):
    """A deterministic stand-in for answer checking on an untrained model: the answer is the
    completion length mod 3, correct when it is 0. Gives mixed, non-trivial pass@k and votes."""

    def __call__(self, completions: Sequence[str], examples: Sequence[MathExample]) -> RewardOutput:
        answers = [float(len(text) % 3) for text in completions]
        correct = [a == 0.0 for a in answers]
        return RewardOutput(scores=[float(c) for c in correct], answers=answers, correct=correct)


SAMPLING = "{num_samples: 4, pass_k: [1, 2, 4], vote_k: [3], seed: 5}"


def _run(subcommand: str, model: Path, root: Path) -> None:
    main(
        [
            subcommand,
            f"--config={REPO / 'configs' / 'demo' / 'sft_synthetic.yaml'}",
            *CPU_OVERRIDES,
            f"--trainer.default_root_dir={root}",
            f"--model.init_args.model={model}",
            "--model.init_args.eval_generation.max_new_tokens=6",
            f"--model.init_args.sampling_eval={SAMPLING}",
            "--model.init_args.reward.class_path=tests.integration.test_sampling_eval.LengthReward",
            "--data.init_args.num_train=20",
            "--data.init_args.num_val=6",
            "--data.init_args.num_test=6",
            "--data.init_args.eval_batch_size=4",  # two batches: two sampling streams
            *(["--data.init_args.predict_split=val"] if subcommand == "predict" else []),
        ]
    )


def test_validate_metrics_are_the_means_of_the_streamed_predictions(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    _run("validate", tiny_model_dir, tmp_path / "validate")
    _run("predict", tiny_model_dir, tmp_path / "predict")
    (logged,) = [row for row in _metrics(tmp_path / "validate") if row.get("val/pass@1")]
    lines = (tmp_path / "predict" / "predictions.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]

    assert len(records) == 6 and len({r["id"] for r in records}) == 6
    assert all(r["split"] == "val" and len(r["samples"]) == 4 for r in records)
    for record in records:
        correct = [s["correct"] for s in record["samples"]]
        n, c = len(correct), sum(correct)
        for k in (1, 2, 4):
            assert abs(record[f"pass@{k}"] - (1 - math.comb(n - c, k) / math.comb(n, k))) < 1e-12
        winner = majority_vote_index([s["answer"] for s in record["samples"][:3]])
        assert record["voting@3"] == float(correct[winner])
    for name in ("pass@1", "pass@2", "pass@4", "voting@3"):
        mean = sum(r[name] for r in records) / len(records)
        assert abs(float(logged[f"val/{name}"]) - mean) < 1e-6, name
    greedy = sum(r["greedy"]["correct"] for r in records) / len(records)
    assert abs(float(logged["val/accuracy"]) - greedy) < 1e-6
    assert 0 < float(logged["val/pass@1"]) < float(logged["val/pass@4"]), "the check needs mixed outcomes"


def test_sampling_uses_its_own_stream(tiny_model_dir: Path) -> None:
    model, tokenizer = load_causal_lm(str(tiny_model_dir)).eval(), load_tokenizer(str(tiny_model_dir))
    engine = HFGenerationEngine(model, tokenizer)
    ids = torch.tensor([[5, 6, 7], [0, 8, 9]])
    mask = torch.tensor([[1, 1, 1], [0, 1, 1]])
    examples = [MathExample(id=str(i), question="q", answer="1") for i in range(2)]
    args = SamplingEvalArgs(num_samples=3, max_sequences=4)  # 4 sequences a call: one question at a time

    def texts(stream: int) -> list[list[str]]:
        return [
            q.texts for q in sample_and_score(engine, ids, mask, examples, LengthReward(), args, 5, stream)
        ]

    torch.manual_seed(0)
    before = torch.get_rng_state()
    first = texts(stream=0)
    assert torch.equal(torch.get_rng_state(), before), "sampled evaluation must not move the global generator"
    torch.manual_seed(123)
    assert texts(stream=0) == first, "samples depend on (seed, stream) only"
    assert texts(stream=1) != first
