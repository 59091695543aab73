"""What every stage shares: the policy model and tokenizer, greedy evaluation, RNG in checkpoints."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torchmetrics import MeanMetric

from reft_lightning.data.example import MathExample
from reft_lightning.models.loading import load_causal_lm, load_lightning_weights, load_tokenizer
from reft_lightning.rewards.base import Reward
from reft_lightning.rewards.correctness import AnswerReward
from reft_lightning.rl.rollout import GenerationArgs, generate
from reft_lightning.stages.rng import capture_rng_states, restore_rng_states


class LanguageModelStage(L.LightningModule):
    """Base of the stage modules: a causal LM, its tokenizer, and evaluation by generation.

    Validation and test batches with prompts are answered greedily and scored by ``reward``;
    ``{split}/accuracy`` and ``{split}/extracted`` (fraction with an extractable answer) are
    logged, synchronised across processes. Batches with labels also log ``{split}/loss``.

    Args:
        model: hub name or local path of a causal LM (an SFT export, or a tiny offline model).
        tokenizer: hub name or path of its tokenizer; ``None`` uses ``model``.
        dtype: weight dtype: ``float32``, ``bfloat16`` or ``float16``.
        reward: scores completions in evaluation; default ``AnswerReward`` (N-CoT numbers).
        eval_generation: decoding for evaluation (greedy by default).
        gradient_checkpointing: trade compute for activation memory.
        init_checkpoint: a Lightning checkpoint of a stage (e.g. an SFT run's ``best-*.ckpt``) whose
            ``model`` weights replace those loaded from ``model`` (which then only gives the
            architecture and tokenizer); the optimizer starts fresh.
    """

    def __init__(
        self,
        model: str,
        tokenizer: str | None = None,
        dtype: str = "float32",
        reward: Reward | None = None,
        eval_generation: GenerationArgs | None = None,
        gradient_checkpointing: bool = False,
        init_checkpoint: str | None = None,
    ) -> None:
        super().__init__()
        self.tokenizer = load_tokenizer(tokenizer or model)
        self.model = load_causal_lm(model, dtype)
        if init_checkpoint is not None:
            load_lightning_weights(self.model, init_checkpoint)
        self.model.train()  # from_pretrained returns eval mode, and Lightning keeps modes as it finds them
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        self.reward = reward or AnswerReward()
        self.eval_generation = eval_generation or GenerationArgs()
        self.eval_metrics = torch.nn.ModuleDict(
            {
                f"{split}_{name}": MeanMetric()
                for split in ("val", "test")
                for name in ("accuracy", "extracted")
            }
        )

    def lm_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean token cross-entropy over positions whose label is not ``-100`` (target tokens + EOS)."""
        return self.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
        ).loss

    def _examples(self, batch: dict[str, torch.Tensor], split: str) -> list[MathExample]:
        table = self.trainer.datamodule.examples[split]
        return [table[i] for i in batch["index"].tolist()]

    def _evaluate(self, batch: dict[str, torch.Tensor], split: str) -> list[dict[str, Any]]:
        batch_size = batch["prompt_ids"].shape[0] if "prompt_ids" in batch else batch["input_ids"].shape[0]
        if "labels" in batch:
            self.log(f"{split}/loss", self.lm_loss(batch), sync_dist=True, batch_size=batch_size)
        if "prompt_ids" not in batch:
            return []
        examples = self._examples(batch, split)
        completions = generate(
            self.model, self.tokenizer, batch["prompt_ids"], batch["prompt_mask"], self.eval_generation
        )
        scored = self.reward(completions.texts, examples)
        correct = torch.tensor(scored.correct, dtype=torch.float32, device=self.device)
        extracted = torch.tensor(
            [a is not None for a in scored.answers], dtype=torch.float32, device=self.device
        )
        for name, values in (("accuracy", correct), ("extracted", extracted)):
            metric = self.eval_metrics[f"{split}_{name}"]
            metric.update(values)
            self.log(f"{split}/{name}", metric, prog_bar=name == "accuracy", batch_size=batch_size)
        for name, value in scored.metrics.items():
            self.log(f"{split}/reward_{name}", float(value), sync_dist=True, batch_size=batch_size)
        return [
            {"id": e.id, "completion": text, "answer": answer, "gold": e.answer, "correct": ok}
            for e, text, answer, ok in zip(examples, completions.texts, scored.answers, scored.correct)
        ]

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> list[dict[str, Any]]:
        """Greedy completions on the test split with their extracted answers and correctness."""
        return self._evaluate(batch, "test")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_states"] = capture_rng_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._pending_rng_states = checkpoint.get("rng_states")

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Restore a loaded checkpoint's RNG states just before the first resumed step.

        Not earlier: creating the dataloader iterator draws from the global generator, which the
        uninterrupted run did before the checkpoint was saved, not after.
        """
        if getattr(self, "_pending_rng_states", None) is not None:
            restore_rng_states(self._pending_rng_states)
            self._pending_rng_states = None

    def teardown(self, stage: str) -> None:
        self.reward.close()
