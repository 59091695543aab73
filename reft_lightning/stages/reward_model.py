"""RewardModelModule: a correctness classifier over sampled solutions, for reranking (spec,
"Inference-time techniques") and as a learned ``Reward`` (``rewards/reward_model.py``).

A 2-label sequence classifier initialised from an SFT checkpoint reads
``"Question:\\n{q}\\nAnswer reasoning:\\n{completion}"`` and scores it from its last non-pad token;
label 1 is "correct". It trains by cross-entropy on the samples of ``RewardModelDataModule``;
validation and test rerank each question's samples: rerank@k is the fraction of questions whose
highest-P(correct) sample among the first ``k`` is correct.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torchmetrics import MeanMetric
from transformers import PreTrainedModel

from reft_lightning.evaluation.estimators import rerank_index
from reft_lightning.models.loading import load_sequence_classifier, load_tokenizer
from reft_lightning.stages.base import MODEL_KEY, as_args
from reft_lightning.stages.guarded import GuardedOptimizerSteps
from reft_lightning.stages.numeric_guard import NonFiniteGuard
from reft_lightning.stages.optim import OptimizerArgs, lightning_optimizers

REWARD_MODEL_OPTIMIZER = OptimizerArgs(lr=1e-6)
"""The spec's reward-model training: lr 1e-6 (3 epochs); the schedule is SFT's (linear, 10% warm-up)."""
CORRECT = 1
"""The label (and logit column) of a correct solution."""


class RewardModelModule(GuardedOptimizerSteps):
    """Train a 2-label classifier of sampled solutions; evaluate it by reranking.

    Logged: ``train/loss``; per split (``val``, ``test``): ``loss``, ``sample_accuracy`` (the argmax
    label against the sample's, over samples), ``rerank`` (over all of a question's samples),
    ``rerank@k`` for each ``k`` in ``rerank_k``, and ``oracle`` (a question with any correct
    sample: the ceiling of reranking). Means over questions (or samples) of all processes.
    Runs on one process or under DDP; the classifier is not sharded (no FSDP2 support yet).

    Args:
        model: the SFT export the classifier starts from (its LM head is replaced by a new 2-label head).
        tokenizer: its tokenizer; ``None`` uses ``model``.
        dtype: weight dtype.
        optimizer: AdamW (spec: lr 1e-6; 3 epochs is ``trainer.max_epochs``).
        rerank_k: the ``k`` of each logged ``rerank@k`` (e.g. ``[1, 10, 100]``).
        max_nonfinite_steps: consecutive skipped non-finite optimizer steps that stop the run.
    """

    def __init__(
        self,
        model: str,
        tokenizer: str | None = None,
        dtype: str = "float32",
        optimizer: OptimizerArgs = REWARD_MODEL_OPTIMIZER,
        rerank_k: tuple[int, ...] = (),
        max_nonfinite_steps: int = 10,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        for key, value in self.hparams.items():  # checkpoints stay loadable with weights_only=True
            self.hparams[key] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
        if any(k < 1 for k in rerank_k):
            raise ValueError(f"{MODEL_KEY.format('rerank_k')}: every k must be >= 1, got {list(rerank_k)}")
        self.model_name, self.dtype_name = model, dtype
        key = MODEL_KEY.format("tokenizer" if tokenizer else "model")
        self.tokenizer = load_tokenizer(tokenizer or model, key)
        self.optimizer_args = as_args(OptimizerArgs, optimizer)
        self.rerank_k = tuple(rerank_k)
        self.nonfinite_guard = NonFiniteGuard(max_nonfinite_steps)
        self.model: PreTrainedModel | None = None
        """The classifier; built by :meth:`configure_model`."""
        names = ["loss", "sample_accuracy", "rerank", "oracle", *(f"rerank@{k}" for k in self.rerank_k)]
        self.eval_metrics = torch.nn.ModuleDict(
            {
                f"{split}_{name.replace('@', '_at_')}": MeanMetric()
                for split in ("val", "test")
                for name in names
            }
        )

    def configure_model(self) -> None:
        if self.model is None:
            self.model = load_sequence_classifier(
                self.model_name, self.tokenizer.pad_token_id, self.dtype_name, key=MODEL_KEY.format("model")
            )

    def _logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[S, 2]`` logits of the batch's ``S`` rows (float32)."""
        return self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = torch.nn.functional.cross_entropy(self._logits(batch), batch["labels"])
        self.log("train/loss", loss, prog_bar=True, sync_dist=True, batch_size=batch["labels"].shape[0])
        return loss

    def _evaluate(self, batch: dict[str, torch.Tensor], split: str) -> None:
        logits = self._logits(batch)
        labels = batch["labels"]
        p_correct = logits.softmax(dim=-1)[:, CORRECT]
        per_sample = {
            "loss": torch.nn.functional.cross_entropy(logits, labels, reduction="none"),
            "sample_accuracy": (logits.argmax(dim=-1) == labels).float(),
        }
        per_question: dict[str, list[float]] = {name: [] for name in ("rerank", "oracle")}
        per_question.update({f"rerank@{k}": [] for k in self.rerank_k})
        for question in batch["question"].unique(sorted=True).tolist():
            rows = (batch["question"] == question).nonzero().squeeze(1)
            rows = rows[batch["position"][rows].argsort()]  # sampling order
            scores, correct = p_correct[rows].tolist(), labels[rows].tolist()
            per_question["rerank"].append(float(correct[rerank_index(scores)]))
            per_question["oracle"].append(float(any(correct)))
            for k in self.rerank_k:
                per_question[f"rerank@{k}"].append(float(correct[rerank_index(scores, k)]))
        values = {
            **per_sample,
            **{name: torch.tensor(v, device=self.device) for name, v in per_question.items()},
        }
        for name, value in values.items():
            metric = self.eval_metrics[f"{split}_{name.replace('@', '_at_')}"]
            metric.update(value)
            self.log(f"{split}/{name}", metric, prog_bar=name == "rerank", batch_size=value.numel())

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def configure_optimizers(self) -> dict[str, Any]:
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        steps = int(self.trainer.estimated_stepping_batches)
        return lightning_optimizers(trainable, self.optimizer_args, steps)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["nonfinite_guard"] = self.nonfinite_guard.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "nonfinite_guard" in checkpoint:
            self.nonfinite_guard.load_state_dict(checkpoint["nonfinite_guard"])
