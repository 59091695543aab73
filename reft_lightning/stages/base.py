"""What every stage shares: the policy model and tokenizer, greedy evaluation, RNG in checkpoints."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

import torch
from torchmetrics import MeanMetric
from transformers import PreTrainedModel

from reft_lightning.checkpoints.finite import NonFiniteStateError, first_nonfinite, nonfinite_message
from reft_lightning.data.formats import CotFormat
from reft_lightning.data.module import TrainBatches
from reft_lightning.evaluation.sampling import SamplingEvalArgs, sample_and_score
from reft_lightning.generation import EngineArgs, GenerationArgs, GenerationEngine, build_engine
from reft_lightning.models.builder import ModelBuilder
from reft_lightning.models.loading import load_tokenizer, weights_from_lightning_checkpoint
from reft_lightning.models.lora import LoRAArgs, add_adapters
from reft_lightning.models.sharding import FSDPArgs
from reft_lightning.rewards.base import Reward, check_reward_format, score_completions
from reft_lightning.rewards.correctness import AnswerReward
from reft_lightning.stages.guarded import GuardedOptimizerSteps
from reft_lightning.stages.numeric_guard import NonFiniteGuard
from reft_lightning.stages.rng import (
    gather_rng_states,
    rank_rng_states,
    restore_rng_states,
    seed_process_streams,
)

ArgsT = TypeVar("ArgsT")
MODEL_KEY = "model.init_args.{}"
"""How errors name a stage argument in the config: ``MODEL_KEY.format("tokenizer")``."""
EVAL_TOKENS_KEY = MODEL_KEY.format("eval_generation.max_new_tokens")
"""How errors name evaluation's token budget."""
ROLLOUT_TOKENS_KEY = MODEL_KEY.format("rollout.max_new_tokens")
"""How errors name the rollouts' token budget (ReFT, online self-training)."""


def as_args(cls: type[ArgsT], value: ArgsT | dict[str, Any]) -> ArgsT:
    """``value`` as the dataclass ``cls``; a dict (hyperparameters from a checkpoint) is rebuilt."""
    return cls(**value) if isinstance(value, dict) else value


class LanguageModelStage(GuardedOptimizerSteps):
    """Base of the stage modules: a causal LM, its tokenizer, and evaluation by generation.

    Validation and test batches with prompts are answered greedily and scored by ``reward``;
    ``{split}/accuracy`` and ``{split}/extracted`` (fraction with an extractable answer) are
    logged, synchronised across processes. With ``sampling_eval.num_samples > 0`` each question is
    also answered by ``n`` samples, logging ``{split}/pass@k`` and ``{split}/voting@k``. Batches
    with labels also log ``{split}/loss``. ``reft predict`` returns one record per question (see
    :meth:`answer_batch`), which :class:`reft_lightning.evaluation.PredictionWriter` streams to JSONL.

    Args:
        model: hub name or local path of a causal LM (an SFT export, or a tiny offline model).
        tokenizer: hub name or path of its tokenizer; ``None`` uses ``model``.
        dtype: weight dtype: ``float32``, ``bfloat16`` or ``float16``.
        reward: scores completions in evaluation; ``None``: ``AnswerReward`` (N-CoT numbers), which
            the ``reft`` command writes into the config (``cli.py``: a default instance's arguments
            would otherwise be carried over to another reward class named in YAML).
        eval_generation: decoding for evaluation (greedy by default).
        gradient_checkpointing: trade compute for activation memory.
        init_checkpoint: a Lightning checkpoint of a stage (e.g. an SFT run's ``best-*.ckpt``) whose
            ``model`` weights replace those loaded from ``model`` (which then only gives the
            architecture and tokenizer); the optimizer starts fresh.
        sampling_eval: sampled evaluation besides greedy (off by default).
        max_nonfinite_steps: optimizer steps with a nan or inf gradient are skipped (counted in
            ``train/skipped_updates``); this many in a row stop the run with a message.
        fsdp: FSDP2 mixed precision (compute and reduce dtypes) under ``ModelParallelStrategy``.
        lora: LoRA adapters on the policy (``models/lora.py``); ``r: 0`` (default): none.
        engine: the generation engine: ``hf`` (the policy's own ``generate``), ``static`` (the policy
            in a static-cache decode loop) or ``vllm`` (a colocated copy of the policy, given its
            weights whenever they changed; see :meth:`sync_engine`).
        compile_blocks: compile each transformer block of every model the stage builds (``torch.compile``,
            inductor; the first steps and each new shape pay for compilation). Not with
            ``ModelParallelStrategy``. Measured in docs/results/performance.md.
    """

    def __init__(
        self,
        model: str,
        tokenizer: str | None = None,
        dtype: str = "float32",
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
        super().__init__()
        self.save_hyperparameters(ignore=["reward"])  # a reward may hold worker processes
        for key, value in self.hparams.items():  # checkpoints stay loadable with weights_only=True
            self.hparams[key] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
        eval_generation = as_args(GenerationArgs, eval_generation)
        sampling_eval = as_args(SamplingEvalArgs, sampling_eval)
        tokenizer_key = MODEL_KEY.format("tokenizer" if tokenizer else "model")
        self.tokenizer = load_tokenizer(tokenizer or model, tokenizer_key)
        self.model_name, self.dtype_name, self.tokenizer_name = model, dtype, tokenizer
        self.init_checkpoint, self.gradient_checkpointing = init_checkpoint, gradient_checkpointing
        self.compile_blocks = compile_blocks
        self.model: PreTrainedModel | None = None
        """The policy; built by :meth:`configure_model` (Lightning calls it before training or evaluating)."""
        self.engine: GenerationEngine | None = None
        """Decodes for evaluation and rollouts (``engine_args`` chooses which); built with the model."""
        self.engine_args = as_args(EngineArgs, engine)
        self.engine_stale = True
        """Whether the policy's weights may have changed since the engine last had them: set when
        the policy is built, loaded from a checkpoint or stepped by SFT; :meth:`sync_engine` clears it."""
        self.reward = reward if reward is not None else AnswerReward()
        self.eval_generation = eval_generation
        self.sampling_eval = sampling_eval
        self.fsdp = as_args(FSDPArgs, fsdp)
        self.lora = as_args(LoRAArgs, lora)
        if max_nonfinite_steps < 0:
            raise ValueError(f"max_nonfinite_steps must be >= 0, got {max_nonfinite_steps}")
        self.nonfinite_guard = NonFiniteGuard(max_nonfinite_steps)
        """Skips optimizer steps whose gradient is not finite (see :meth:`guard_optimizer_step`)."""
        names = ["accuracy", "extracted", *sampling_eval.estimate_names]
        self.eval_metrics = torch.nn.ModuleDict(
            {_metric_key(split, name): MeanMetric() for split in ("val", "test") for name in names}
        )

    def configure_model(self) -> None:
        """Load the policy (and ``init_checkpoint``'s weights) and its generation engine, once.

        Lightning calls this in every ``fit`` / ``validate`` / ``test`` / ``predict`` after
        ``setup``, inside the strategy's context; a checkpoint given by ``ckpt_path`` is loaded into
        what it builds. Code that uses a module outside a Trainer calls it first. Under
        ``ModelParallelStrategy`` (which gives the module a device mesh) every model is built
        sharded with FSDP2 (:class:`ModelBuilder`), so no process holds a whole copy.
        """
        if self.model is not None:
            return
        mesh = self.device_mesh["data_parallel"] if self.device_mesh is not None else None
        initial = None
        if self.init_checkpoint is not None:
            initial = weights_from_lightning_checkpoint(self.init_checkpoint)
        self.build_models(ModelBuilder(mesh, self.fsdp, self.compile_blocks), initial)
        self.engine = build_engine(
            self.engine_args,
            self.model,
            self.tokenizer,
            self.model_name,
            self.dtype_name,
            self.tokenizer_name,
        )
        self.engine_stale = True  # vLLM loaded model_name's weights, not init_checkpoint's
        self.check_generation_room()

    def sync_engine(self) -> None:
        """Hand the engine the policy's weights if they may have changed since it last had them
        (the HF engine generates with the policy itself: nothing is copied). Every process calls
        this at the same point: gathering a sharded policy's weights is a collective."""
        if self.engine_stale:
            self.engine.update_weights(self.model)
            self.engine_stale = False

    def build_models(self, builder: ModelBuilder, initial: Mapping[str, torch.Tensor] | None = None) -> None:
        """Build the policy with ``builder``; ``initial``: ``init_checkpoint``'s weights, which
        replace the loaded ones. Stages with more models add theirs."""
        self.model = builder.causal_lm(
            self.model_name, self.dtype_name, key=MODEL_KEY.format("model"), weights=initial,
            prepare=self._prepare_policy,
        )  # fmt: skip

    def _prepare_policy(self, model: PreTrainedModel) -> torch.nn.Module:
        """Gradient checkpointing and LoRA adapters, as configured, before any sharding."""
        if self.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            if self.lora.enabled:  # frozen embeddings: the checkpointed blocks still need grads in
                model.enable_input_require_grads()
        return add_adapters(model, self.lora) if self.lora.enabled else model

    def generation_budgets(self) -> dict[str, tuple[int, tuple[str, ...]]]:
        """``{config key: (max_new_tokens, splits whose prompts it continues)}`` of each generation
        this stage runs: evaluation answers validation, test and the predict split; a stage with
        ``rollout_args`` (ReFT, online self-training) also continues the training questions."""
        datamodule = self._trainer.datamodule if self._trainer is not None else None
        splits = ("val", "test", getattr(datamodule, "predict_split", "test"))
        budgets = {EVAL_TOKENS_KEY: (self.eval_generation.max_new_tokens, splits)}
        rollout = getattr(self, "rollout_args", None)  # stages that sample from the training questions
        if rollout is not None:
            budgets[ROLLOUT_TOKENS_KEY] = (rollout.max_new_tokens, ("train",))
        return budgets

    def check_generation_room(self) -> None:
        """Refuse, before any batch, a ``max_new_tokens`` that with the longest prompt of the splits it
        answers would run past the model's positions (GPT-2 then fails mid-run with an IndexError).

        Prompt lengths come from a data module with ``longest_prompt`` (set up before
        ``configure_model``); without one only ``max_new_tokens`` is checked here, and each batch's
        prompts when it is generated from (:meth:`check_room`).
        """
        datamodule = self._trainer.datamodule if self._trainer is not None else None
        longest = getattr(datamodule, "longest_prompt", lambda split: 0)
        for key, (max_new_tokens, splits) in self.generation_budgets().items():
            self.check_room(max(longest(split) for split in splits), max_new_tokens, key)

    def check_room(self, prompt_tokens: int, max_new_tokens: int, key: str) -> None:
        """Raise ``ValueError`` naming ``key`` and the model's limit when ``prompt_tokens`` plus
        ``max_new_tokens`` exceed the model's positions (models without a known limit pass)."""
        limit = position_limit(self.model)
        total = prompt_tokens + max_new_tokens
        if limit is None or total <= limit[1]:
            return
        attribute, positions = limit
        prompt = f" plus the longest prompt ({prompt_tokens} tokens)" if prompt_tokens else ""
        shorter = " or lower data.init_args.max_prompt_length" if prompt_tokens else ""
        raise ValueError(
            f"{key}={max_new_tokens}{prompt} is {total} tokens, beyond the {positions} positions of "
            f"model {self.model_name!r} (config.{attribute}): set {key} to at most "
            f"{max(positions - prompt_tokens, 0)}{shorter}"
        )

    train_batches: ClassVar[TrainBatches] = "sft"
    """The training batches this stage needs from a ``MathDataModule`` (it sets them when fitting)."""

    def setup(self, stage: str) -> None:
        """Check the reward against the data's CoT format, and ask the data module for this stage's
        training batches (a different explicit choice is an error)."""
        datamodule = self.trainer.datamodule
        cot_format = getattr(datamodule, "cot_format", None)
        if cot_format is not None:
            check_reward_format(self.reward, CotFormat(cot_format).value)
        if stage != "fit" or not hasattr(datamodule, "train_batches"):
            return
        if datamodule.train_batches is None:
            datamodule.train_batches = self.train_batches
        elif datamodule.train_batches != self.train_batches:
            raise ValueError(
                f"{type(self).__name__} trains on {self.train_batches!r} batches, but "
                f"data.init_args.train_batches is {datamodule.train_batches!r}: remove that key"
            )

    def lm_loss(
        self, batch: dict[str, torch.Tensor], num_targets: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Token cross-entropy over positions whose label is not ``-100`` (target tokens + EOS):
        their mean, or with ``num_targets`` their sum divided by it (transformers' ``num_items_in_batch``)."""
        return self.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
            num_items_in_batch=num_targets,
        ).loss

    def answer_batch(
        self, batch: dict[str, Any], split: str, batch_idx: int
    ) -> tuple[list[dict[str, Any]], dict[str, float]]:
        """Answer every question of a prompt batch greedily (and by sampling, if enabled).

        Returns one JSON-ready record per question: ``id``, ``split``, ``question``, ``gold``, ``greedy``
        (``text``, ``answer``, ``score``, ``correct``) and, with sampling, ``samples`` (a list of
        the same fields) and the question's estimates (``pass@k``, ``voting@k``); and the reward's
        own metrics of the greedy answers.
        """
        examples = list(batch["examples"])
        ids, mask = batch["prompt_ids"], batch["prompt_mask"]
        self.check_room(ids.shape[1], self.eval_generation.max_new_tokens, EVAL_TOKENS_KEY)
        greedy = self.engine.generate(ids, mask, self.eval_generation)
        scored = score_completions(self.reward, greedy.texts, examples)
        greedy_samples = map(_sample, greedy.texts, scored.answers, scored.scores, scored.correct)
        records = [
            {"id": e.id, "split": split, "question": e.question, "gold": e.answer, "greedy": sample}
            for e, sample in zip(examples, greedy_samples)
        ]
        if not self.sampling_eval.enabled:
            return records, scored.metrics
        stream = batch_idx * self.trainer.world_size + self.trainer.global_rank
        sampled = sample_and_score(
            self.engine, ids, mask, examples, self.reward, self.sampling_eval,
            self.eval_generation.max_new_tokens, stream,
        )  # fmt: skip
        for record, question in zip(records, sampled):
            record["samples"] = [
                _sample(*fields)
                for fields in zip(question.texts, question.answers, question.scores, question.correct)
            ]
            record.update(question.estimates)
        return records, scored.metrics

    def _evaluate(self, batch: dict[str, Any], split: str, batch_idx: int) -> None:
        batch_size = batch["prompt_ids"].shape[0] if "prompt_ids" in batch else batch["input_ids"].shape[0]
        if "labels" in batch:
            self.log(f"{split}/loss", self.lm_loss(batch), sync_dist=True, batch_size=batch_size)
        if "prompt_ids" not in batch:
            return
        records, reward_metrics = self.answer_batch(batch, split, batch_idx)
        values = {
            "accuracy": [float(r["greedy"]["correct"]) for r in records],
            "extracted": [float(r["greedy"]["answer"] is not None) for r in records],
            **{name: [r[name] for r in records] for name in self.sampling_eval.estimate_names},
        }
        for name, per_question in values.items():
            metric = self.eval_metrics[_metric_key(split, name)]
            metric.update(torch.tensor(per_question, dtype=torch.float32, device=self.device))
            self.log(f"{split}/{name}", metric, prog_bar=name == "accuracy", batch_size=batch_size)
        for name, value in reward_metrics.items():
            self.log(f"{split}/reward_{name}", float(value), sync_dist=True, batch_size=batch_size)

    def on_validation_start(self) -> None:
        self.sync_engine()

    def on_test_start(self) -> None:
        self.sync_engine()

    def on_predict_start(self) -> None:
        self.sync_engine()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Automatic optimisation (SFT) may have stepped the policy: the engine is stale. (ReFT,
        which optimises manually, hands the engine the new weights after each iteration.)"""
        if self.automatic_optimization:
            self.engine_stale = True

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "val", batch_idx)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "test", batch_idx)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """Records of :meth:`answer_batch` for the data module's ``predict_split`` (default test)."""
        split = getattr(self.trainer.datamodule, "predict_split", "test")
        return self.answer_batch(batch, split, batch_idx)[0]

    def on_fit_start(self) -> None:
        """Give every process its own random streams: rank ``r > 0`` reseeds with ``seed + r``.

        Rank 0 keeps the streams it has, so a single-process run is unchanged. A resumed run then
        restores each rank's saved states before its first step.
        """
        if self.trainer.global_rank > 0:
            seed_process_streams(torch.initial_seed() + self.trainer.global_rank)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Add each process's RNG states and the skip counts; refuse to save a non-finite tensor.

        Subclasses drop what they do not save before calling this (it checks what is left).
        """
        saved = {key: checkpoint[key] for key in ("state_dict", "optimizer_states") if key in checkpoint}
        found = first_nonfinite(saved)
        if not self.trainer.strategy.reduce_boolean_decision(found is None, all=True):
            raise NonFiniteStateError(nonfinite_message(found or "(on another process)", "a checkpoint"))
        checkpoint["rng_states"] = gather_rng_states(self.trainer.world_size)
        checkpoint["nonfinite_guard"] = self.nonfinite_guard.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.engine_stale = True  # the policy gets the checkpoint's weights
        saved = checkpoint.get("rng_states")
        if saved is None or self._trainer is None:  # load_from_checkpoint: weights only, no run to resume
            self._pending_rng_states = None
            return
        self._pending_rng_states = rank_rng_states(saved, self.trainer.global_rank)
        if "nonfinite_guard" in checkpoint:
            self.nonfinite_guard.load_state_dict(checkpoint["nonfinite_guard"])

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


def position_limit(model: PreTrainedModel) -> tuple[str, int] | None:
    """The most tokens ``model`` can attend over and its config attribute (``max_position_embeddings``,
    or GPT-2's ``n_positions``), or ``None`` when the config states none."""
    for attribute in ("max_position_embeddings", "n_positions"):
        value = getattr(model.config, attribute, None)
        if isinstance(value, int) and value > 0:
            return attribute, value
    return None


def _metric_key(split: str, name: str) -> str:
    """ModuleDict key of a split's metric (``@`` spelled out): ``val_pass_at_8``."""
    return f"{split}_{name.replace('@', '_at_')}"


def _sample(text: str, answer: Any, score: float, correct: bool) -> dict[str, Any]:
    return {"text": text, "answer": answer, "score": score, "correct": correct}
