"""ReFTModule: PPO over the policy's own sampled solutions (Luong et al., 2024, section 3.2).

One ``training_step`` is one PPO iteration on a batch of training questions, in six steps:
1 rollout, 2 score, 3 evaluate, 4 shape, 5 estimate, 6 optimise (see ``training_step``), after which
the generation engine is handed the new weights (a vLLM engine keeps its own copy). Step 3's
forwards, and the policy forward of the PPO loss, are in ``stages/reft_forwards.py``. A reward that
allows it (``Reward.scores_in_background``: the sandbox's programs) scores in a background thread
while step 3 runs; the iteration waits for its scores before step 4. The math
lives in ``reft_lightning.rl``; this module only orchestrates it. Optimisation is manual, so
Lightning's ``global_step`` counts optimizer steps (``ppo_epochs`` x minibatches per iteration);
``iterations`` counts rollouts and is saved in checkpoints with the KL coefficient.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal

import torch
from torch.distributed.fsdp import fully_shard
from transformers import PreTrainedModel

from reft_lightning.evaluation.sampling import SamplingEvalArgs
from reft_lightning.generation import EngineArgs, GenerationArgs, SamplingArgs
from reft_lightning.models.builder import ModelBuilder
from reft_lightning.models.loading import resolve_dtype
from reft_lightning.models.lora import LoRAArgs
from reft_lightning.models.sharding import FSDPArgs
from reft_lightning.models.value_head import ValueHead, freeze_untied_lm_head
from reft_lightning.rewards.base import Reward, RewardOutput, score_completions
from reft_lightning.rl.advantages import informative_groups
from reft_lightning.rl.estimators import advantage_estimator
from reft_lightning.rl.kl import AdaptiveKLController, FixedKLController, KLController, kl_estimate
from reft_lightning.rl.shaping import shape_rewards
from reft_lightning.stages.base import MODEL_KEY, ROLLOUT_TOKENS_KEY, LanguageModelStage, as_args
from reft_lightning.stages.optim import OptimizerArgs, lightning_optimizers
from reft_lightning.stages.ppo_args import PPOArgs
from reft_lightning.stages.ppo_step import Rollout, optimise_rollout
from reft_lightning.stages.reft_advantages import estimate_advantages
from reft_lightning.stages.reft_forwards import RolloutForwards
from reft_lightning.stages.reft_metrics import rollout_metrics
from reft_lightning.stages.timing import StepTimer

REFT_OPTIMIZER = OptimizerArgs(lr=3e-7, schedule="constant", warmup_ratio=0.0)
"""The spec's ReFT optimizer: AdamW at a constant 3e-7 (3e-6 for 125M-parameter models), no warm-up."""
REFERENCE_PREFIX = "reference."
"""State-dict prefix of the frozen reference model, which checkpoints leave out (it is reloadable)."""


class ReFTModule(RolloutForwards, LanguageModelStage):
    """The ReFT stage: PPO from a warm-up checkpoint, rewarded by answer correctness.

    Args:
        model: the warm-up policy (an SFT ``hf/epoch_k`` export, or any causal LM).
        tokenizer: its tokenizer; ``None`` uses ``model``.
        dtype: weight dtype of policy, reference and value model.
        reference: the frozen reference model for the KL penalty; ``None``: a copy of the starting
            policy (``model``, with ``init_checkpoint`` weights if given), as in the spec.
        reference_dtype: weight dtype of the frozen reference (``bfloat16`` halves its memory; its
            log-probs are still taken in float32); ``None``: ``dtype``.
        reference_offload: keep the reference's shards in CPU memory, copying each block to the
            accelerator only for its forward (FSDP2's ``CPUOffloadPolicy``; needs
            ``ModelParallelStrategy``): no accelerator memory for it between rollouts.
        value_model: ``None``: a value head on the policy's last hidden state (spec default);
            a model name/path: a separate value model with its own head (the paper's ablation).
            Neither is built when ``ppo.advantage`` names an estimator without a critic.
        value_dropout: dropout of the value head (spec: 0.1).
        value_init: ``default`` (PyTorch's random init, as the official code) or ``zeros``.
        ppo: PPO settings (spec defaults).
        rollout: sampling of rollouts (spec: temperature 1.0, top-k 0, top-p 1.0, 400 new tokens).
        old_logprobs: where PPO's old log-probs (and the logged entropy) come from. ``recompute``
            (spec, as the official code): a forward of the policy over the rollouts after sampling.
            ``sampling``: recorded from the decode loop's own logits (``hf`` engine only), one
            policy forward fewer per iteration (with a value head on the policy, its LM head still
            runs on one position only). The two agree up to float rounding (tested in float32);
            in bfloat16 the first PPO epoch's ratio then starts near, not at, 1.
        optimizer: AdamW (spec: lr 3e-7, constant; 3e-6 for 125M models).
        value_lr: peak learning rate of the value head (and value model); ``None``: ``optimizer.lr``
            (spec: one optimizer, one lr).
        reward: terminal score per completion (default ``AnswerReward``: 1 / 0.1 / 0).
        eval_generation: decoding for validation and test (greedy).
        gradient_checkpointing: recompute activations in backward.
        init_checkpoint: start from the ``model`` weights of this Lightning stage checkpoint.
        sampling_eval: sampled evaluation (pass@k, voting@k) besides greedy; off by default.
        max_nonfinite_steps: consecutive optimizer steps with a nan or inf gradient (each skipped)
            that stop the run.
        fsdp: FSDP2 mixed precision under ``ModelParallelStrategy`` (the frozen reference and a
            value model compute in the same dtypes).
        lora: LoRA adapters on the policy (``r: 0``, the default, trains every weight).
            ReFT's reference is then the policy with its adapters disabled (no copy).
        engine: the generation engine: ``hf`` (default), ``static`` (own static-cache decode loop,
            compiled) or a colocated ``vllm`` (``pip install 'reft_lightning[vllm]'``; untested on
            real vLLM).
        compile_blocks: compile each transformer block of every model the stage builds
            (``torch.compile``: the first steps pay for compilation); not with ``ModelParallelStrategy``.
    """

    train_batches = "prompts"
    """ReFT trains on left-padded questions (rollouts), not on gold chains."""

    def __init__(
        self,
        model: str,
        tokenizer: str | None = None,
        dtype: str = "float32",
        reference: str | None = None,
        reference_dtype: str | None = None,
        reference_offload: bool = False,
        value_model: str | None = None,
        value_dropout: float = 0.1,
        value_init: Literal["default", "zeros"] = "default",
        ppo: PPOArgs = PPOArgs(),
        rollout: SamplingArgs = SamplingArgs(),
        old_logprobs: Literal["recompute", "sampling"] = "recompute",
        optimizer: OptimizerArgs = REFT_OPTIMIZER,
        value_lr: float | None = None,
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
        self.automatic_optimization = False
        self.strict_loading = False  # the reference is not in checkpoints; on_load_checkpoint checks the rest
        ppo = as_args(PPOArgs, ppo)
        self.ppo = ppo
        self.rollout_args = as_args(SamplingArgs, rollout)
        if old_logprobs not in ("recompute", "sampling"):
            raise ValueError(
                f"{MODEL_KEY.format('old_logprobs')}: {old_logprobs!r}; choose recompute or sampling"
            )
        if old_logprobs == "sampling" and self.engine_args.name == "vllm":
            raise ValueError(
                f"{MODEL_KEY.format('old_logprobs')}: sampling needs the hf or static engine (engine.name "
                f"{self.engine_args.name!r} does not record log-probs from the policy's own forward); "
                "use recompute"
            )
        self.old_logprobs = old_logprobs
        self.optimizer_args = as_args(OptimizerArgs, optimizer)
        if value_lr is not None and not value_lr > 0:
            raise ValueError(
                f"value_lr={value_lr!r}: must be a positive learning rate (a negative one would train the "
                f"value function by gradient ascent), or null to use optimizer.lr"
            )
        self.value_lr = value_lr
        self.estimator = advantage_estimator(ppo.advantage)
        if value_model is not None and not self.estimator.needs_critic:
            raise ValueError(
                f"value_model is set, but advantage={ppo.advantage!r} uses no critic: drop value_model "
                f"or choose an estimator with one (gae)"
            )
        self.reference_name, self.value_model_name = reference, value_model
        if reference_dtype is not None:
            resolve_dtype(reference_dtype)  # an unknown name fails at start-up, naming the choices
        self.reference_dtype, self.reference_offload = reference_dtype, reference_offload
        self.value_dropout, self.value_init = value_dropout, value_init
        self.reference: PreTrainedModel | None = None
        """Frozen copy of the starting policy (or ``reference``), built by :meth:`configure_model`."""
        self.value_model: PreTrainedModel | None = None
        self.value_head: ValueHead | None = None
        self.kl_controller: KLController = (
            FixedKLController(self.ppo.kl_coef)
            if self.ppo.adaptive_kl_target is None
            else AdaptiveKLController(
                self.ppo.kl_coef, self.ppo.adaptive_kl_target, self.ppo.adaptive_kl_horizon
            )
        )
        self.iterations = 0
        self._advantage_stats: dict[str, float] = {}
        self._scoring_thread: ThreadPoolExecutor | None = None
        """Runs :meth:`_start_scoring`'s background scoring; made on first use."""

    def build_models(self, builder: ModelBuilder, initial: Mapping[str, torch.Tensor] | None = None) -> None:
        """The policy (base class), then the frozen reference, the value model and the value head,
        each whole or each sharded over ``builder``'s mesh (the value head as one FSDP2 unit).

        The reference is loaded again from the policy's source (``reference`` when given), not
        copied from the policy, so under a mesh it too is built shard by shard. The value head is
        built only for an estimator that trains a critic, so every parameter gets a gradient (DDP).
        """
        super().build_models(builder, initial)
        if self.reference_offload and builder.mesh is None:
            raise ValueError(
                f"{MODEL_KEY.format('reference_offload')}: true needs the reference sharded, under "
                "trainer.strategy ModelParallelStrategy (configs/launch/fsdp2_8gpu.yaml); drop the key "
                "or use that strategy"
            )
        if self.lora.enabled and self.reference_name is None:
            self.reference = None  # the policy with its adapters disabled (_reference_logprobs)
        else:
            self.reference = builder.causal_lm(
                self.reference_name or self.model_name, self.reference_dtype or self.dtype_name,
                key=MODEL_KEY.format("reference" if self.reference_name else "model"),
                weights=None if self.reference_name else initial, offload=self.reference_offload,
                frozen=True,
            )  # fmt: skip
        if self.value_model_name is not None:
            self.value_model = builder.causal_lm(
                self.value_model_name, self.dtype_name, key=MODEL_KEY.format("value_model"),
                prepare=freeze_untied_lm_head,
            )  # fmt: skip
        if self.estimator.needs_critic:
            hidden_size = (self.value_model or self.model).config.hidden_size
            self.value_head = ValueHead(hidden_size, self.value_dropout, self.value_init)
            if builder.mesh is not None:  # float32 weights and compute, whatever fsdp.param_dtype
                fully_shard(self.value_head, mesh=builder.mesh)

    # ------------------------------------------------------------------ the PPO iteration

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        timed = StepTimer(self.trainer.profiler, self.device, "reft")
        k = self.ppo.num_samples
        examples = [e for e in batch["examples"] for _ in range(k)]
        prompt_ids, prompt_mask = (
            batch["prompt_ids"].repeat_interleave(k, 0),
            batch["prompt_mask"].repeat_interleave(k, 0),
        )
        self.check_room(prompt_ids.shape[1], self.rollout_args.max_new_tokens, ROLLOUT_TOKENS_KEY)
        with timed("rollout"), self._eval_mode():  # 1. sample completions (no grad, KV cache)
            self.sync_engine()  # first iteration, or after a checkpoint was loaded
            completions = self.engine.generate(
                prompt_ids, prompt_mask, self.rollout_args, token_statistics=self.old_logprobs == "sampling"
            )
        with timed("score"):  # 2. terminal score per completion (started in the background if it may)
            pending = self._start_scoring(completions.texts, examples)
        sequences = torch.cat([prompt_ids, completions.response_ids], dim=1)
        attention = torch.cat([prompt_mask, completions.response_mask], dim=1)
        mask = completions.response_mask
        with timed("evaluate"):  # 3. old log-probs, values, entropy; reference log-probs
            evaluated = self._evaluate_rollouts(sequences, attention, completions)
            old_logp, old_values, entropy, ref_logp = evaluated
        with timed("score_wait"):  # the scoring time step 3 did not hide
            scored = pending.result()
            scores = torch.tensor(scored.scores, dtype=torch.float32, device=self.device)
            keep = informative_groups(scores, k) if self.ppo.skip_uniform_groups else None
        with timed("shape"):  # 4. per-token reward: -beta * KL, plus the score on the last token
            kl = kl_estimate(old_logp, ref_logp, self.ppo.kl_estimator)
            rewards = shape_rewards(scores, kl, mask, self.kl_controller.value)
        with timed("estimate"):  # 5. advantages and returns
            advantages, returns, self._advantage_stats = estimate_advantages(
                self.estimator, self.ppo, self.kl_controller.value, rewards, old_values, mask, scores, kl,
                self._all_reduce_sum, keep,
            )  # fmt: skip
        rollout = Rollout(
            sequences, attention, completions.response_ids, mask, old_logp, old_values, advantages, returns,
            keep=keep,
        )  # fmt: skip
        with timed("optimise"):  # 6. PPO epochs x minibatches
            stats = optimise_rollout(self, rollout, self.ppo, use_values=self.estimator.needs_critic)
        with timed("sync"):  # the engine generates with the new weights (vLLM: loads a copy of them)
            self.engine.update_weights(self.model)
            self.engine_stale = False
        if keep is not None:
            stats["train/kept_fraction"] = float(keep.float().mean())
        sequence_kl = (kl * mask).sum(dim=1)
        self._update_kl_coefficient(sequence_kl)
        self.iterations += 1
        rollout_stats = rollout_metrics(scored, scores, mask, sequence_kl, entropy, rewards, timed.elapsed())
        self._log_iteration(rollout_stats, scores.shape[0], stats, timed.seconds)

    # ------------------------------------------------------------------ scoring (step 2), the KL controller

    def _start_scoring(self, texts: list[str], examples: list[Any]) -> Future[RewardOutput]:
        """:func:`score_completions` of the rollouts: in the stage's scoring thread when the reward
        allows it (``Reward.scores_in_background``), else here and now (a finished future)."""
        if not self.reward.scores_in_background:
            done: Future[RewardOutput] = Future()
            done.set_result(score_completions(self.reward, texts, examples))
            return done
        if self._scoring_thread is None:
            self._scoring_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reft-score")
        return self._scoring_thread.submit(score_completions, self.reward, texts, examples)

    def teardown(self, stage: str) -> None:
        """Stop the scoring thread (after its last batch), then close the reward."""
        if self._scoring_thread is not None:
            self._scoring_thread.shutdown(wait=True)
            self._scoring_thread = None
        super().teardown(stage)

    def _update_kl_coefficient(self, sequence_kl: torch.Tensor) -> None:
        """Feed the KL controller the mean KL per sequence (``[N]``) of all processes and their
        sequence count, so that every process keeps the same beta."""
        global_kl = self.trainer.strategy.reduce(sequence_kl.mean().double(), reduce_op="mean")
        self.kl_controller.update(float(global_kl), sequence_kl.numel() * self.trainer.world_size)

    def _all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.trainer.strategy.reduce(tensor, reduce_op="sum")

    # ------------------------------------------------------------------ plumbing

    def _log_iteration(
        self, rollout: dict[str, float], n: int, stats: dict[str, float], step_seconds: dict[str, float]
    ) -> None:
        """Per-iteration metrics: the ``rollout``'s (:func:`rollout_metrics` of ``n`` sequences), the
        KL coefficient, the optimisation's ``stats``, the advantage statistics and the step timings
        of :class:`StepTimer`, each logged as the mean over processes (every process holds the same
        number of sequences)."""
        metrics = {
            **rollout,
            "train/kl_coef": self.kl_controller.value,
            "train/iteration": float(self.iterations),
            **stats,
            **self._advantage_stats,
            **{f"time/{step}": value for step, value in step_seconds.items()},
        }
        score = metrics.pop("train/score")
        self.log("train/score", score, prog_bar=True, on_step=True, batch_size=n, sync_dist=True)
        self.log_dict(metrics, on_step=True, on_epoch=False, batch_size=n, sync_dist=True)

    def policy_and_value_parameters(self) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
        """Trainable parameters of the policy, and of the value head plus (if any) value model."""
        value_modules = [m for m in (self.value_head, self.value_model) if m is not None]
        policy = [p for p in self.model.parameters() if p.requires_grad]
        value = [p for m in value_modules for p in m.parameters() if p.requires_grad]
        return policy, value

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """Policy, value head and (if any) value model parameters: what the optimizer updates."""
        policy, value = self.policy_and_value_parameters()
        return policy + value

    def configure_optimizers(self) -> dict[str, Any]:
        per_device = self.trainer.datamodule.batch_size * self.ppo.num_samples
        steps_per_iteration = self.ppo.ppo_epochs * math.ceil(
            per_device / (self.ppo.minibatch_size or per_device)
        )
        total = int(self.trainer.estimated_stepping_batches) * steps_per_iteration
        policy, value = self.policy_and_value_parameters()
        value_lr = self.optimizer_args.lr if self.value_lr is None else self.value_lr
        groups = [{"params": policy}, {"params": value, "lr": value_lr}]
        return lightning_optimizers(groups, self.optimizer_args, total)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The frozen reference is left out of checkpoints (rebuilt from ``model`` / ``reference``),
        except sharded ones: their loader reads every key of the module into its shards in place."""
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(REFERENCE_PREFIX) and self.device_mesh is None]:
            del state[key]
        super().on_save_checkpoint(checkpoint)
        checkpoint["reft_state"] = {
            "iterations": self.iterations,
            "kl_controller": self.kl_controller.state_dict(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        expected = {k for k in self.state_dict() if not k.startswith(REFERENCE_PREFIX)}
        missing = sorted(expected - set(checkpoint.get("state_dict", expected)))  # sharded: loaded apart
        if missing:
            raise KeyError(f"checkpoint lacks {len(missing)} trained weights, e.g. {missing[:3]}")
        if "reft_state" in checkpoint:
            self.iterations = checkpoint["reft_state"]["iterations"]
            self.kl_controller.load_state_dict(checkpoint["reft_state"]["kl_controller"])
