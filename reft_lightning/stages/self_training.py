"""OnlineSelfTrainingModule: the paper's online self-training baseline (spec, "Baselines in the paper").

The same rollouts as ReFT (sampled from the current policy, scored by the same reward), but no
value, no KL and no PPO: each step minimises

    loss = sample_weight * CE(samples with full reward) + (1 - sample_weight) * CE(gold chains)

with the spec's ``sample_weight`` 0.5. Each cross-entropy is the mean over its target tokens (a
sample's response tokens up to and including EOS; a gold chain's target tokens and EOS). Offline
self-training needs no stage of its own: it is SFT on data built from a prediction file
(``data.init_args.train_predictions``, ``data/predictions.py``).
"""

from __future__ import annotations

from typing import Any

import torch

from reft_lightning.evaluation.sampling import SamplingEvalArgs
from reft_lightning.generation import EngineArgs, GenerationArgs, SamplingArgs
from reft_lightning.models.forward import response_forward
from reft_lightning.models.lora import LoRAArgs
from reft_lightning.models.sharding import FSDPArgs
from reft_lightning.rewards.base import Reward, score_completions
from reft_lightning.rl.logprobs import token_logprobs
from reft_lightning.stages.base import MODEL_KEY, ROLLOUT_TOKENS_KEY, LanguageModelStage, as_args
from reft_lightning.stages.optim import OptimizerArgs, lightning_optimizers
from reft_lightning.stages.reft import REFT_OPTIMIZER

PAPER_SAMPLE_WEIGHT = 0.5
"""Weight of the samples' cross-entropy; the gold chains' gets the rest (spec: 0.5 and 0.5)."""


class OnlineSelfTrainingModule(LanguageModelStage):
    """Online self-training: cross-entropy on the policy's own correct samples and on the gold chains.

    One training step is one rollout of ``num_samples`` completions per question of the batch,
    scored by ``reward``, followed by one optimizer step on the loss of the module docstring. When
    no sample of a process's batch is correct its sample term is 0 (the forward still runs, so that
    every process runs the same collectives under FSDP). Each process averages over its own tokens.

    Args:
        model: the starting policy (the same warm-up as ReFT, for the paper's comparison).
        tokenizer: its tokenizer; ``None`` uses ``model``.
        dtype: weight dtype.
        num_samples: completions sampled per question (spec, ReFT's rollouts: 1).
        sample_weight: the samples' share of the loss, in [0, 1] (spec: 0.5).
        rollout: sampling of the completions (ReFT's defaults: temperature 1.0, 400 new tokens).
        optimizer: AdamW; the spec gives none for this baseline, so the default is ReFT's (whose
            loop it shares): lr 3e-7, constant.
        reward: decides which samples are trained on (``correct``) and scores evaluation.
        eval_generation: decoding for validation and test (greedy).
        gradient_checkpointing: recompute activations in backward.
        init_checkpoint: start from the ``model`` weights of this Lightning stage checkpoint.
        sampling_eval: sampled evaluation (pass@k, voting@k) besides greedy; off by default.
        max_nonfinite_steps: consecutive skipped non-finite steps that stop the run.
        fsdp: FSDP2 mixed precision under ``ModelParallelStrategy``.
        lora: LoRA adapters on the policy (``r: 0``: none).
        engine: the generation engine (``hf``, ``static`` or a colocated ``vllm``).
        compile_blocks: compile each transformer block of every model the stage builds
            (``torch.compile``: the first steps pay for compilation); not with ``ModelParallelStrategy``.
    """

    train_batches = "prompts_and_sft"
    """Each batch holds the questions (for rollouts) and their gold chains (for the second term)."""

    def __init__(
        self,
        model: str,
        tokenizer: str | None = None,
        dtype: str = "float32",
        num_samples: int = 1,
        sample_weight: float = PAPER_SAMPLE_WEIGHT,
        rollout: SamplingArgs = SamplingArgs(),
        optimizer: OptimizerArgs = REFT_OPTIMIZER,
        reward: Reward | None = None,
        eval_generation: GenerationArgs = GenerationArgs(),
        gradient_checkpointing: bool = False,
        init_checkpoint: str | None = None,
        sampling_eval: SamplingEvalArgs = SamplingEvalArgs(),
        max_nonfinite_steps: int = 10,
        fsdp: FSDPArgs = FSDPArgs(),
        lora: LoRAArgs = LoRAArgs(),
        engine: EngineArgs = EngineArgs(),
        compile_blocks: bool = False,
    ) -> None:
        super().__init__(
            model, tokenizer, dtype, reward, eval_generation, gradient_checkpointing, init_checkpoint,
            sampling_eval, max_nonfinite_steps, fsdp, lora, engine, compile_blocks,
        )  # fmt: skip
        if num_samples < 1:
            raise ValueError(f"{MODEL_KEY.format('num_samples')} must be >= 1, got {num_samples}")
        if not 0.0 <= sample_weight <= 1.0:
            raise ValueError(f"{MODEL_KEY.format('sample_weight')} must be in [0, 1], got {sample_weight}")
        self.num_samples, self.sample_weight = num_samples, sample_weight
        self.rollout_args = as_args(SamplingArgs, rollout)
        self.optimizer_args = as_args(OptimizerArgs, optimizer)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        k = self.num_samples
        examples = [e for e in batch["examples"] for _ in range(k)]
        prompt_ids = batch["prompt_ids"].repeat_interleave(k, 0)
        prompt_mask = batch["prompt_mask"].repeat_interleave(k, 0)
        self.check_room(prompt_ids.shape[1], self.rollout_args.max_new_tokens, ROLLOUT_TOKENS_KEY)
        # 1. sample completions from the current policy (dropout off, no grad)
        self.sync_engine()
        training = self.model.training
        self.model.eval()
        with torch.no_grad():
            completions = self.engine.generate(prompt_ids, prompt_mask, self.rollout_args)
        self.model.train(training)
        # 2. keep those with full reward
        scored = score_completions(self.reward, completions.texts, examples)
        correct = torch.tensor(scored.correct, dtype=torch.bool, device=self.device)
        # 3. the two cross-entropies, then their weighted sum
        sample_loss = self._sample_loss(prompt_ids, prompt_mask, completions.response_ids,
                                        completions.response_mask, correct)  # fmt: skip
        gold_loss = self.lm_loss(batch)
        loss = self.sample_weight * sample_loss + (1.0 - self.sample_weight) * gold_loss
        n = prompt_ids.shape[0]
        metrics = {
            "train/score": sum(scored.scores) / n,
            "train/accuracy": float(correct.float().mean()),
            "train/sample_loss": sample_loss.detach(),
            "train/gold_loss": gold_loss.detach(),
        }
        self.log_dict(metrics, on_step=True, on_epoch=False, batch_size=n, sync_dist=True)
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=n, sync_dist=True)
        return loss

    def _sample_loss(
        self,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        response_ids: torch.Tensor,
        response_mask: torch.Tensor,
        correct: torch.Tensor,
    ) -> torch.Tensor:
        """Mean cross-entropy over the response tokens ``[N, R]`` of the correct rows (``correct``
        ``[N]``); 0 when there are none (one row is still run forward, weighted 0)."""
        rows = correct.nonzero().squeeze(1) if bool(correct.any()) else torch.zeros(1, dtype=torch.long)
        rows = rows.to(prompt_ids.device)
        sequences = torch.cat([prompt_ids[rows], response_ids[rows]], dim=1)
        attention = torch.cat([prompt_mask[rows], response_mask[rows]], dim=1)
        logits, _ = response_forward(self.model, sequences, attention, response_ids.shape[1])
        mask = response_mask[rows].to(logits.dtype) * correct[rows].to(logits.dtype).unsqueeze(1)
        token_loss = -token_logprobs(logits, response_ids[rows])
        return (token_loss * mask).sum() / mask.sum().clamp(min=1.0)

    def configure_optimizers(self) -> dict[str, Any]:
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        return lightning_optimizers(
            trainable, self.optimizer_args, int(self.trainer.estimated_stepping_batches)
        )
