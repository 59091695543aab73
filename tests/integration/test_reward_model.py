"""The reward model on a tiny offline model: it learns to separate labelled samples, its rerank
metrics equal a recomputation from its own probabilities, and it serves as a ReFT reward."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest

from reft_lightning.cli import main
from reft_lightning.data.example import MathExample
from reft_lightning.data.predictions import read_predictions
from reft_lightning.data.reward_model import RewardModelDataModule
from reft_lightning.evaluation.estimators import rerank_index
from reft_lightning.rewards.correctness import AnswerReward
from reft_lightning.rewards.reward_model import RewardModelReward
from tests.conftest import REPO
from tests.integration.test_cli import CPU_OVERRIDES, _metrics


def _samples(rng: random.Random, gold: int, count: int) -> list[dict[str, Any]]:
    """``count`` samples, each correct with probability 1/2: a correct one works the sum and ends
    with the gold answer; a wrong one ends with a different number after a telltale word."""
    out = []
    for _ in range(count):
        if rng.random() < 0.5:
            text = f"{gold - 2} + 2 = {gold}\nTherefore, the answer is: {gold}"
            out.append({"text": text, "answer": float(gold), "score": 1.0, "correct": True})
        else:
            wrong = gold + rng.randint(1, 9)
            text = f"maybe {wrong} or so\nTherefore, the answer is: {wrong}"
            out.append({"text": text, "answer": float(wrong), "score": 0.1, "correct": False})
    return out


def _prediction_file(path: Path, split: str, questions: int, seed: int, varying: bool = False) -> Path:
    rng = random.Random(seed)
    lines = []
    for i in range(questions):
        gold = rng.randint(5, 60)
        count = rng.randint(2, 6) if varying else 4
        greedy = {"text": "", "answer": None, "score": 0.0, "correct": False}
        record = {"id": f"q{i}", "split": split, "question": f"Sam has {gold - 2} and gets 2. How many?",
                  "gold": str(gold), "greedy": greedy, "samples": _samples(rng, gold, count)}  # fmt: skip
        lines.append(json.dumps(record))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A reward model trained through `reft fit` on 48 questions x 4 samples; its run dir and files."""
    root = tmp_path_factory.mktemp("reward_model")
    train = _prediction_file(root / "train.jsonl", "train", 48, seed=0)
    val = _prediction_file(root / "val.jsonl", "val", 10, seed=1, varying=True)
    run = root / "run"
    main(
        [
            "fit",
            f"--config={REPO / 'configs' / 'demo' / 'reward_model_synthetic.yaml'}",
            *CPU_OVERRIDES,
            f"--trainer.default_root_dir={run}",
            f"--model.init_args.model={tiny_model_dir}",
            "--model.init_args.optimizer={lr: 3.0e-3, warmup_ratio: 0.0}",
            "--trainer.max_epochs=4",
            "--trainer.log_every_n_steps=1",
            f"--data.init_args.train_predictions={train}",
            f"--data.init_args.val_predictions={val}",
            "--data.init_args.batch_size=16",
            "--data.init_args.eval_batch_size=3",  # several questions per batch, of different sizes
        ]
    )
    return run, train, val


def test_the_trained_reward_model_separates_correct_from_wrong_training_samples(
    trained: tuple[Path, Path, Path],
) -> None:
    run, train, _ = trained
    reward = RewardModelReward(model=str(run / "hf" / "best"))
    records = read_predictions(train)
    examples, texts, labels = [], [], []

    for record in records:
        for sample in record.samples:
            examples.append(MathExample(record.id, record.question, record.gold))
            texts.append(sample.text)
            labels.append(sample.correct)
    output = reward(texts, examples)
    right = [p for p, y in zip(output.scores, labels) if y]
    wrong = [p for p, y in zip(output.scores, labels) if not y]
    assert right and wrong
    # the fraction of (correct, wrong) pairs ranked the right way round (the AUC)
    auc = sum(r > w for r in right for w in wrong) / (len(right) * len(wrong))
    assert auc > 0.9, auc
    assert output.correct == AnswerReward()(texts, examples).correct  # logs keep the true outcome
    assert all(0.0 <= p <= 1.0 and math.isfinite(p) for p in output.scores)


def test_rerank_metrics_equal_a_recomputation_from_the_models_probabilities(
    trained: tuple[Path, Path, Path], tiny_model_dir: Path
) -> None:
    run, _, val = trained
    main(
        [
            "validate",
            f"--config={REPO / 'configs' / 'demo' / 'reward_model_synthetic.yaml'}",
            *CPU_OVERRIDES,
            f"--trainer.default_root_dir={run / 'validate'}",
            f"--model.init_args.model={run / 'hf' / 'best'}",
            f"--data.init_args.train_predictions={val}",
            f"--data.init_args.val_predictions={val}",
            "--data.init_args.eval_batch_size=3",
        ]
    )
    (logged,) = [row for row in _metrics(run / "validate") if row.get("val/rerank")]
    reward = RewardModelReward(model=str(run / "hf" / "best"))

    picked: dict[str, list[float]] = {"rerank": [], "rerank@1": [], "rerank@4": [], "oracle": []}
    for record in read_predictions(val):
        example = MathExample(record.id, record.question, record.gold)
        scores = reward.probabilities([s.text for s in record.samples], [example] * len(record.samples))
        correct = [s.correct for s in record.samples]
        picked["rerank"].append(float(correct[rerank_index(scores)]))
        picked["rerank@1"].append(float(correct[0]))
        picked["rerank@4"].append(float(correct[rerank_index(scores, 4)]))
        picked["oracle"].append(float(any(correct)))
    for name, values in picked.items():
        assert abs(float(logged[f"val/{name}"]) - sum(values) / len(values)) < 1e-6, name
    assert float(logged["val/rerank"]) > float(logged["val/rerank@1"]), (
        "reranking should beat the first sample"
    )


def test_rerank_index_takes_the_highest_score_and_the_earliest_of_ties() -> None:
    assert rerank_index([0.2, 0.9, 0.9, 0.1]) == 1
    assert rerank_index([0.2, 0.9, 0.95], k=2) == 1
    assert rerank_index([0.5], k=10) == 0
    with pytest.raises(ValueError, match="at least one sample"):
        rerank_index([])


def test_a_prediction_file_without_samples_is_refused_naming_the_key(
    tiny_model_dir: Path, tmp_path: Path
) -> None:

    path = tmp_path / "greedy_only.jsonl"
    greedy = {"text": "x", "answer": None, "score": 0.0, "correct": False}
    path.write_text(
        json.dumps({"id": "a", "split": "train", "question": "q", "gold": "1", "greedy": greedy}) + "\n"
    )
    data = RewardModelDataModule(train_predictions=str(path), tokenizer=str(tiny_model_dir))
    with pytest.raises(ValueError, match=r"data\.init_args\.train_predictions: question 'a' has no samples"):
        data.setup("fit")


def test_a_trained_reward_model_scores_reft_rollouts(
    trained: tuple[Path, Path, Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    run, _, _ = trained
    root = tmp_path / "reft"
    main(
        [
            "fit",
            f"--config={REPO / 'configs' / 'demo' / 'reft_synthetic.yaml'}",
            *CPU_OVERRIDES,
            f"--trainer.default_root_dir={root}",
            f"--model.init_args.model={tiny_model_dir}",
            "--model.init_args.reward.class_path=reft_lightning.rewards.reward_model.RewardModelReward",
            f"--model.init_args.reward.init_args.model={run / 'hf' / 'best'}",
            "--model.init_args.rollout.max_new_tokens=8",
            "--model.init_args.eval_generation.max_new_tokens=8",
            "--trainer.max_steps=4",
            "--trainer.val_check_interval=2",
            "--data.init_args.num_train=8",
            "--data.init_args.num_val=4",
            "--data.init_args.num_test=4",
            "--data.init_args.batch_size=4",
            "--data.init_args.eval_batch_size=4",
        ]
    )
    rows = [row for row in _metrics(root) if row.get("train/score")]
    assert len(rows) == 2
    for row in rows:  # answer checking would have scored accuracy + 0.1 * (extracted - accuracy)
        accuracy, extracted = float(row["train/accuracy"]), float(row["train/extracted"])
        assert abs(float(row["train/score"]) - (accuracy + 0.1 * (extracted - accuracy))) > 1e-3
        assert 0.0 < float(row["train/score"]) < 1.0


def test_each_stage_reads_only_its_own_prediction_files(tiny_model_dir: Path, tmp_path: Path) -> None:
    test_file = _prediction_file(tmp_path / "test.jsonl", "test", 3, seed=4)
    absent = str(tmp_path / "absent.jsonl")
    data = RewardModelDataModule(train_predictions=absent, val_predictions=absent,
                                 test_predictions=str(test_file), tokenizer=str(tiny_model_dir))  # fmt: skip
    data.setup("test")  # the train and val files are not needed, so not opened
    assert len(data.test_dataloader().dataset) == 3
    with pytest.raises(FileNotFoundError, match=r"absent\.jsonl"):
        data.setup("fit")
