"""The vLLM engine: a colocated vLLM copy of the policy, refreshed with its weights after each step.

**Untested on real vLLM**: written against vLLM's documented API (``vllm>=0.11``: ``LLM``,
``SamplingParams``, token-id prompts, in-process ``load_weights``), its contract is tested with a
fake ``vllm`` module (``tests/unit/test_vllm_engine.py``). Install with
``pip install 'reft_lightning[vllm]'`` and choose it with ``model.init_args.engine.name: vllm``.

Colocated means every training process builds its own engine on its own GPU, beside the policy it
trains (``tensor_parallel_size=1``): vLLM takes ``gpu_memory_utilization`` of the GPU's memory for a
copy of the weights and its KV cache, the rest stays for training. vLLM runs in the trainer's
process (``distributed_executor_backend="external_launcher"``, as TRL's colocate mode builds it), so
its model can be reached and given new weights without copying them to another process.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from reft_lightning.generation.args import GenerationArgs
from reft_lightning.generation.engine import Completions, completions_from_ids
from reft_lightning.models.loading import resolve_dtype
from reft_lightning.models.lora import has_adapters, merged_weights
from reft_lightning.models.sharding import whole

INSTALL_HINT = "pip install 'reft_lightning[vllm]'"
"""How the optional dependency is installed (named by the ImportError)."""
TOP_K_OFF = 0
"""vLLM's ``top_k`` that considers all tokens (``vllm>=0.11`` documents 0; older versions wanted -1)."""
SEED_BOUND = 2**31 - 1
"""Per-request seeds are drawn from ``[0, SEED_BOUND)``."""


class VLLMGenerationEngine:
    """Decodes with ``vllm.LLM``, which holds its own copy of the policy's weights.

    Each request gets its own seed drawn from torch's default generator, so a rank's rollouts are
    reproducible from its torch seed (and the ``k`` samples of a repeated prompt differ). vLLM
    seeds the global random generators when it starts; their states are kept across that.

    Args:
        model_name: hub name or local path of the policy (the stage's ``model``); vLLM loads its
            architecture and starting weights from there, :meth:`update_weights` replaces them.
        tokenizer: the stage's tokenizer: EOS ends a completion, pad fills after it, texts are
            decoded with it (vLLM does not detokenize).
        tokenizer_name: hub name or path vLLM loads its tokenizer from; ``None``: ``model_name``.
        dtype: weight dtype of vLLM's copy (``float32``, ``bfloat16``, ``float16``).
        gpu_memory_utilization: fraction of the GPU's memory vLLM takes (weights and KV cache).
        max_model_len: most tokens per sequence; ``None``: the model's limit.
    """

    def __init__(
        self,
        model_name: str,
        tokenizer: PreTrainedTokenizerBase,
        tokenizer_name: str | None = None,
        dtype: str = "float32",
        gpu_memory_utilization: float = 0.3,
        max_model_len: int | None = None,
    ) -> None:
        try:
            import vllm
        except ImportError as error:
            raise ImportError(
                f"model.init_args.engine.name is 'vllm', but vLLM is not installed: {INSTALL_HINT}"
            ) from error
        self.vllm = vllm
        self.tokenizer = tokenizer
        resolve_dtype(dtype)  # an unknown name fails here, naming the choices
        _set_launcher_environment()
        python_state, numpy_state = random.getstate(), np.random.get_state()  # vLLM reseeds them all
        with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
            self.llm = vllm.LLM(
                model=model_name,
                tokenizer=tokenizer_name or model_name,
                dtype=dtype,
                gpu_memory_utilization=gpu_memory_utilization,
                max_model_len=max_model_len,
                tensor_parallel_size=1,
                distributed_executor_backend="external_launcher",
                seed=0,  # unused: every sampled request carries its own seed
            )
        random.setstate(python_state)
        np.random.set_state(numpy_state)

    @torch.no_grad()
    def generate(
        self,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        args: GenerationArgs,
        token_statistics: bool = False,
    ) -> Completions:
        """Continue each left-padded prompt ``[B, P]`` (``prompt_mask`` ``[B, P]``: 1 on its tokens)
        until EOS or ``args.max_new_tokens``.

        Each row goes to vLLM without its padding; the completions come back right-padded to the
        longest, ``[B, R]``, on the prompts' device. ``token_statistics`` is refused: vLLM's
        log-probs come from its own kernels and copy of the weights, not the policy's forward.
        """
        if token_statistics:
            raise ValueError(
                "the vllm engine does not record token statistics (log-probs from the sampling pass): "
                "use model.init_args.old_logprobs: recompute, or engine.name: hf"
            )
        rows = [ids[mask.bool()].tolist() for ids, mask in zip(prompt_ids.cpu(), prompt_mask.cpu())]
        params = self.sampling_params(args, len(rows))
        outputs = self.llm.generate(
            [{"prompt_token_ids": row} for row in rows], sampling_params=params, use_tqdm=False
        )
        generated = [list(output.outputs[0].token_ids) for output in outputs]
        lengths = torch.tensor([len(tokens) for tokens in generated], dtype=torch.long)
        response_ids = torch.full(
            (len(rows), max(lengths.tolist(), default=0)), self.tokenizer.pad_token_id, dtype=prompt_ids.dtype
        )
        for row, tokens in enumerate(generated):
            response_ids[row, : len(tokens)] = torch.tensor(tokens, dtype=prompt_ids.dtype)
        return completions_from_ids(response_ids.to(prompt_ids.device), self.tokenizer, lengths)

    def sampling_params(self, args: GenerationArgs, count: int) -> list[Any]:
        """One ``vllm.SamplingParams`` per request: greedy is temperature 0; sampling keeps
        ``temperature``, ``top_p`` and ``top_k`` (0: all tokens) and draws a seed per request from
        torch's default generator. Both stop at the tokenizer's EOS or after ``max_new_tokens``."""
        if args.do_sample:
            seeds: list[int | None] = torch.randint(0, SEED_BOUND, (count,)).tolist()
            sampling = {"temperature": args.temperature, "top_p": args.top_p}
            sampling["top_k"] = args.top_k if args.top_k > 0 else TOP_K_OFF
        else:
            seeds, sampling = [None] * count, {"temperature": 0.0}
        return [
            self.vllm.SamplingParams(
                n=1,
                max_tokens=args.max_new_tokens,
                seed=seed,
                stop_token_ids=[self.tokenizer.eos_token_id],
                detokenize=False,  # texts are decoded by completions_from_ids
                **sampling,
            )
            for seed in seeds
        ]

    @torch.no_grad()
    def update_weights(self, policy: torch.nn.Module) -> None:
        """Load every parameter of ``policy`` into vLLM's copy, by its Hugging Face name (a LoRA policy:
        its base weights with the adapters merged in, the adapters unchanged).

        A parameter sharded by FSDP2 is gathered whole first (``whole``: a collective, so every
        process calls this, in the same order), one parameter at a time, so no process holds more
        than one gathered parameter beside its shards. vLLM's ``load_weights`` maps the Hugging Face
        names of a supported architecture to its own (fused ``qkv_proj``, tied embeddings) and
        converts to its dtype. Cached prefixes computed with the old weights are dropped.
        """
        weights = _whole_parameters(policy)
        self.inference_model().load_weights(weights)
        for _ in weights:  # gather what load_weights left, so every process runs every collective
            pass
        self.llm.reset_prefix_cache()

    def inference_model(self) -> torch.nn.Module:
        """vLLM's model, in this process (``external_launcher``).

        The path is the one TRL's colocate mode loads weights through (``trl/generation/
        vllm_generation.py``, ``_push_param_to_vllm``:
        ``llm.llm_engine.model_executor.driver_worker.model_runner.model.load_weights``); vLLM's
        ``LLM.collective_rpc`` / ``apply_model`` reach the same model, but across processes they
        would serialise every tensor.
        """
        try:
            return self.llm.llm_engine.model_executor.driver_worker.model_runner.model
        except AttributeError as error:
            raise RuntimeError(
                "this vLLM version does not expose its model in the trainer's process "
                "(llm.llm_engine.model_executor.driver_worker.model_runner.model), so the policy's "
                "weights cannot be loaded into it; use model.init_args.engine.name: hf"
            ) from error


def _whole_parameters(policy: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, whole tensor)`` of every weight of ``policy`` as a plain Hugging Face model has it,
    gathered as it is reached: its parameters, or with LoRA adapters the base weights with the
    adapters' updates merged in (``merged_weights``)."""
    named = (
        merged_weights(policy)
        if has_adapters(policy)
        else ((name, parameter.detach()) for name, parameter in policy.named_parameters())
    )
    for name, tensor in named:
        yield name, whole(tensor)


def _set_launcher_environment() -> None:
    """The variables vLLM's ``external_launcher`` reads: this process's rank and the world, from
    torch.distributed when it is initialised (Lightning's DDP sets them already), else a world of
    one with a free local port."""
    initialised = torch.distributed.is_available() and torch.distributed.is_initialized()
    rank = torch.distributed.get_rank() if initialised else 0
    world_size = torch.distributed.get_world_size() if initialised else 1
    os.environ.setdefault("RANK", str(rank))
    os.environ.setdefault("LOCAL_RANK", str(rank))
    os.environ.setdefault("WORLD_SIZE", str(world_size))
    os.environ.setdefault("MASTER_ADDR", "localhost")
    if "MASTER_PORT" not in os.environ:
        with socket.socket() as probe:
            probe.bind(("localhost", 0))
            os.environ["MASTER_PORT"] = str(probe.getsockname()[1])
