"""A trained reward model as a ReFT reward: the score of a completion is the classifier's P(correct).

The classifier is an export of ``RewardModelModule`` (``{run}/hf/best``). Answers and correctness,
which the trainer logs (``train/accuracy``), still come from answer checking (``checker``), so a run
shows how far the learned score and the true outcome part. Name it in YAML::

    reward:
      class_path: reft_lightning.rewards.reward_model.RewardModelReward
      init_args: {model: runs/reward_model/hf/best}
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reft_lightning.data.collate import collate_labelled
from reft_lightning.data.example import MathExample
from reft_lightning.data.formats import CotFormat, CotFormatName, reward_model_text
from reft_lightning.models.loading import load_sequence_classifier, load_tokenizer
from reft_lightning.rewards.base import Reward, RewardOutput, check_lengths
from reft_lightning.rewards.correctness import AnswerReward

CORRECT_LABEL = 1
"""The classifier's label (logit column) for a correct solution, as ``RewardModelModule`` trains it."""
KEY = "model.init_args.reward.init_args.{}"


class RewardModelReward(Reward):
    """Score each completion by a trained correctness classifier's P(correct), in [0, 1].

    Args:
        model: the classifier directory (a ``RewardModelModule`` run's ``hf/best`` export).
        cot_format: the format of the completions (the classifier reads P-CoT ones after the
            program header, as it was trained); only data of this format is accepted.
        checker: extracts the answers and decides correctness for the logs (its scores are unused):
            ``None``: ``AnswerReward`` (N-CoT); ``ProgramReward`` for P-CoT.
        device: where the classifier runs (``cpu``, ``cuda``, ``cuda:1``); it is not trained.
        dtype: its weight dtype.
        batch_size: completions per forward pass.
        max_length: tokens read per completion, counted from the end (as in training).
    """

    def __init__(
        self,
        model: str,
        cot_format: CotFormatName = "ncot",
        checker: Reward | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 32,
        max_length: int = 1024,
    ) -> None:
        if batch_size < 1 or max_length < 1:
            raise ValueError(f"{KEY.format('batch_size')} and max_length must be >= 1")
        self.cot_format = CotFormat(cot_format)
        self.checker = checker if checker is not None else AnswerReward()
        self.tokenizer = load_tokenizer(model, KEY.format("model"))
        self.classifier = load_sequence_classifier(
            model, self.tokenizer.pad_token_id, dtype, key=KEY.format("model")
        )
        self.classifier.to(torch.device(device)).eval().requires_grad_(False)
        self.batch_size, self.max_length = batch_size, max_length

    def scores_format(self, cot_format: str) -> bool:
        return cot_format == self.cot_format.value and self.checker.scores_format(cot_format)

    @torch.no_grad()
    def probabilities(self, completions: Sequence[str], examples: Sequence[MathExample]) -> list[float]:
        """P(correct) of each completion, in order."""
        texts = [reward_model_text(e, c, self.cot_format) for c, e in zip(completions, examples)]
        device = next(self.classifier.parameters()).device
        pad = self.tokenizer.pad_token_id
        out: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            encoded = self.tokenizer(texts[start : start + self.batch_size], add_special_tokens=False)
            rows = [{"input_ids": ids[-self.max_length :], "labels": 0} for ids in encoded["input_ids"]]
            batch = collate_labelled(rows, pad)
            ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
            logits = self.classifier(input_ids=ids, attention_mask=mask).logits.float()
            out += logits.softmax(dim=-1)[:, CORRECT_LABEL].tolist()
        return out

    def __call__(self, completions: Sequence[str], examples: Sequence[MathExample]) -> RewardOutput:
        check_lengths(completions, examples)
        checked = self.checker(completions, examples)
        scores = self.probabilities(completions, examples) if completions else []
        return RewardOutput(
            scores=scores, answers=checked.answers, correct=checked.correct, metrics=checked.metrics
        )

    def close(self) -> None:
        self.checker.close()
