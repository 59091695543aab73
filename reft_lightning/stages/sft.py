"""SFTModule: supervised fine-tuning on gold chains (the ReFT warm-up and the SFT baseline).

The same module trains a base model in plain causal-LM mode: that is a data choice (packed blocks
whose labels are all positions, ``data/corpus.py``), not a different loss.
"""

from __future__ import annotations

from typing import Any

import torch

from reft_lightning.data.collate import IGNORE_INDEX
from reft_lightning.evaluation.sampling import SamplingEvalArgs
from reft_lightning.generation import EngineArgs, GenerationArgs
from reft_lightning.models.lora import LoRAArgs
from reft_lightning.models.sharding import FSDPArgs
from reft_lightning.rewards.base import Reward
from reft_lightning.stages.base import LanguageModelStage, as_args
from reft_lightning.stages.optim import OptimizerArgs, lightning_optimizers


class SFTModule(LanguageModelStage):
    """Cross-entropy on target tokens and EOS only (prompt masked), AdamW with warm-up and decay.

    Args:
        model: hub name or local path of the causal LM to fine-tune.
        tokenizer: its tokenizer; ``None`` uses ``model``.
        dtype: weight dtype (``float32``, ``bfloat16``, ``float16``).
        optimizer: AdamW and schedule; defaults follow the spec (lr 1e-5, linear, 10% warm-up).
        reward: scores greedy completions in validation and test (default: N-CoT ``AnswerReward``).
        eval_generation: decoding for evaluation.
        gradient_checkpointing: trade compute for activation memory.
        init_checkpoint: start from the ``model`` weights of this Lightning stage checkpoint.
        sampling_eval: sampled evaluation (pass@k, voting@k) besides greedy; off by default.
        max_nonfinite_steps: consecutive optimizer steps with a nan or inf gradient (each skipped)
            that stop the run.
        fsdp: FSDP2 mixed precision under ``ModelParallelStrategy`` (the frozen reference and a
            value model compute in the same dtypes).
        lora: LoRA adapters on the policy (``r: 0``, the default, trains every weight).
        engine: the generation engine: ``hf`` (default), ``static`` (own static-cache decode loop,
            compiled) or a colocated ``vllm`` (``pip install 'reft_lightning[vllm]'``; untested on
            real vLLM).
        compile_blocks: compile each transformer block of every model the stage builds
            (``torch.compile``: the first steps pay for compilation); not with ``ModelParallelStrategy``.
    """

    def __init__(
        self,
        model: str,
        tokenizer: str | None = None,
        dtype: str = "float32",
        optimizer: OptimizerArgs = OptimizerArgs(),
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
        self.optimizer_args = as_args(OptimizerArgs, optimizer)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """The mean cross-entropy over the target tokens of the whole batch of all processes.

        Each process divides its token losses' sum by ``T / W`` (``T`` target tokens in all
        processes' batches, ``W`` processes), so the gradients DDP averages are those of
        ``sum / T``: a run on ``W`` processes takes the steps of one process with the same global
        batch, however the target tokens are spread over the processes. (Averaging per-process means
        would weight a token of a process with short answers more.) With one process this is the
        plain mean. Under ``accumulate_grad_batches`` each micro-batch is normalised on its own.
        """
        targets = (batch["labels"][:, 1:] != IGNORE_INDEX).sum().to(torch.float32)
        all_targets = self.trainer.strategy.reduce(targets, reduce_op="sum")
        loss = self.lm_loss(batch, all_targets / self.trainer.world_size)
        self.log("train/loss", loss, prog_bar=True, sync_dist=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        return lightning_optimizers(
            trainable, self.optimizer_args, int(self.trainer.estimated_stepping_batches)
        )
