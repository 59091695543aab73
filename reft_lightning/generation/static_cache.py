"""The static-cache engine: the policy's own decode loop over a preallocated KV cache, one compiled step.

``model.generate`` spends most of a decode step outside the model's arithmetic (logits processors,
stopping criteria, a cache that grows by concatenation, tensors allocated each step). This engine
runs the loop itself, with the same model and weights:

1. prefill: left-pad the prompts ``[B, P]`` to a multiple of ``prompt_bucket`` (so that batches of
   nearby lengths share shapes), one eager forward that fills a transformers
   ``StaticCache`` and keeps the last position's logits only;
2. decode: one forward of the ``[B, 1]`` newest tokens per step, writing the cache in place, and the
   next token chosen in the same (optionally ``torch.compile``-d) function: greedy, or sampled by
   inverse CDF from uniforms drawn once per generation (``torch.rand``, the process's RNG);
3. stop once every row has produced EOS, or after ``max_new_tokens``.

The cache starts with room for ``cache_chunk`` new tokens and doubles (copied) when full, so that a
short completion does not attend over ``max_new_tokens`` empty slots each step. The compiled step
uses torch's automatic dynamic shapes: built for the first sizes met, rebuilt once with a size
symbolic when it changes (batch, prompt or cache length), so a run compiles a few times. The causal
mask comes from the cache's slot index, position ids from the prompt mask (left padding), as
``generate`` computes them: greedy decoding is token for token ``generate``'s in eager mode
(``tests/integration/test_static_cache_engine.py``).

Sampling draws the same distribution as ``generate`` (temperature, then top-k, then top-p, with
transformers' warpers) from other random numbers, so samples differ from ``generate``'s under one seed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase, StaticCache
from transformers.cache_utils import StaticLayer
from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

from reft_lightning.generation.args import GenerationArgs
from reft_lightning.generation.engine import Completions, completions_from_ids
from reft_lightning.generation.token_statistics import log_softmax_and_entropy
from reft_lightning.models.builder import allow_recompiles
from reft_lightning.models.sharding import gathered, is_sharded

ChosenTokens = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]
"""``[B]`` token ids, and with token statistics their ``[B]`` float32 log-probs and entropies."""


def sample_by_inverse_cdf(
    logits: torch.Tensor, uniforms: torch.Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0
) -> torch.Tensor:
    """``[B]`` tokens drawn from ``softmax(logits / temperature)`` (``[B, V]``), truncated to the
    ``top_k`` most likely (0: all) and then to the smallest set with mass ``top_p`` (1.0: all), as
    ``generate`` truncates: token ``i`` such that ``cdf[i-1] <= u * cdf[V-1] < cdf[i]`` for each row's
    uniform ``u`` in ``[0, 1)`` (``[B]``), so a token of probability 0 is never drawn."""
    scores = logits.float() / temperature
    if top_k > 0:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if top_p < 1.0:
        scores = TopPLogitsWarper(top_p)(None, scores)
    cdf = torch.softmax(scores, dim=-1).cumsum(dim=-1)
    drawn = cdf.le(uniforms.unsqueeze(-1) * cdf[:, -1:]).sum(dim=-1)
    return drawn.clamp(max=logits.shape[-1] - 1)


def choose_tokens(
    logits: torch.Tensor, uniforms: torch.Tensor, args: GenerationArgs, token_statistics: bool
) -> ChosenTokens:
    """The next token of each row from its logits ``[B, V]``: argmax (greedy) or
    :func:`sample_by_inverse_cdf` with ``uniforms`` ``[B]``; with ``token_statistics`` also its
    log-prob and the entropy under ``softmax(logits / temperature)`` (no truncation)."""
    if args.do_sample:
        tokens = sample_by_inverse_cdf(logits, uniforms, args.temperature, args.top_k, args.top_p)
    else:
        tokens = logits.argmax(dim=-1)
    if not token_statistics:
        return tokens, None, None
    log_p, entropy = log_softmax_and_entropy(logits, args.temperature)
    return tokens, log_p.gather(-1, tokens.unsqueeze(-1)).squeeze(-1), entropy


def decode_step(
    model: PreTrainedModel,
    tokens: torch.Tensor,
    positions: torch.Tensor,
    attention_mask: torch.Tensor,
    cache: StaticCache,
    uniforms: torch.Tensor,
    args: GenerationArgs,
    token_statistics: bool,
) -> ChosenTokens:
    """One decode step: the newest tokens ``[B]`` at ``positions`` ``[B]`` through the model (the
    cache updated in place; ``attention_mask`` ``[B, cache length]``), then :func:`choose_tokens`."""
    logits = model(
        input_ids=tokens.unsqueeze(1),
        position_ids=positions.unsqueeze(1),
        attention_mask=attention_mask,
        cache=cache,
        use_cache=True,
    ).logits[:, -1]
    return choose_tokens(logits, uniforms, args, token_statistics)


def _grown_cache(cache: StaticCache, model: PreTrainedModel, length: int) -> StaticCache:
    """A ``StaticCache`` of ``length`` slots holding ``cache``'s keys, values and fill level."""
    grown = StaticCache(config=model.config, max_cache_len=length)
    for old, new in zip(cache.layers, grown.layers, strict=True):
        new.lazy_initialization(old.keys, old.values)
        new.keys[:, :, : old.max_cache_len].copy_(old.keys)
        new.values[:, :, : old.max_cache_len].copy_(old.values)
        new.cumulative_length.copy_(old.cumulative_length)
    return grown


class StaticCacheEngine:
    """Decodes with the training model itself (always its newest weights) in its own loop over a
    static KV cache (module docstring).

    Args:
        model: the policy (a causal LM whose forward takes ``cache=``); the engine keeps a reference.
        tokenizer: its tokenizer (EOS ends a completion, pad fills after it and pads prompts).
        compile: compile the decode step (``torch.compile``, inductor, automatic dynamic shapes: built
            for the first call's sizes, rebuilt once with a size made symbolic when it changes); not
            for a sharded (FSDP2) model.
        prompt_bucket: prompts are left-padded to a multiple of this many tokens.
        cache_chunk: new-token slots the cache starts with; it doubles when full (a model with
            sliding-window attention gets ``max_new_tokens`` slots at once).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        compile: bool = True,
        prompt_bucket: int = 16,
        cache_chunk: int = 64,
    ) -> None:
        if compile and is_sharded(model):
            raise ValueError(
                "model.init_args.engine.compile: true is not supported with a sharded (FSDP2) policy; "
                "set it to false (the static-cache loop still runs, eagerly)"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.prompt_bucket = prompt_bucket
        self.cache_chunk = cache_chunk
        self.growable = all(
            type(layer) is StaticLayer for layer in StaticCache(config=model.config, max_cache_len=1).layers
        )
        """Whether the cache can grow: a sliding-window layer wraps its slots around, so the cache of a
        model with one is allocated for ``max_new_tokens`` from the start."""
        self.step: Callable[..., ChosenTokens] = decode_step
        if compile:
            allow_recompiles()
            self.step = torch.compile(decode_step, dynamic=None)

    @torch.no_grad()
    def generate(
        self,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        args: GenerationArgs,
        token_statistics: bool = False,
    ) -> Completions:
        """Continue each left-padded prompt ``[B, P]`` until EOS or ``args.max_new_tokens``;
        ``token_statistics``: with each token's log-prob and entropy at ``args.temperature``."""
        pad_id, eos_id = self.tokenizer.pad_token_id, self.tokenizer.eos_token_id
        bucket_padding = (-prompt_ids.shape[1]) % self.prompt_bucket
        prompt_ids = F.pad(prompt_ids, (bucket_padding, 0), value=pad_id)
        prompt_mask = F.pad(prompt_mask, (bucket_padding, 0), value=0)
        batch, prompt_length = prompt_ids.shape
        steps = args.max_new_tokens
        draw = torch.rand if args.do_sample else torch.zeros  # greedy: no random numbers
        uniforms = draw(batch, steps, device=prompt_ids.device)
        room = min(steps, self.cache_chunk) if self.growable else steps
        cache = StaticCache(config=self.model.config, max_cache_len=prompt_length + room)
        attention_mask = F.pad(prompt_mask, (0, room), value=1)  # slots not yet written are causally hidden
        positions = (prompt_mask.cumsum(dim=1) - 1).clamp(min=0)
        response_ids = prompt_ids.new_full((batch, steps), pad_id)
        logprobs = torch.zeros(batch, steps, device=prompt_ids.device) if token_statistics else None
        entropy = torch.zeros_like(logprobs) if token_statistics else None
        unfinished = torch.ones(batch, dtype=torch.bool, device=prompt_ids.device)
        generated = 0
        with gathered(self.model):  # FSDP2: each block gathered once per generation, not per token
            logits = self.model(
                input_ids=prompt_ids, position_ids=positions, attention_mask=attention_mask, cache=cache,
                use_cache=True, logits_to_keep=1,
            ).logits[:, -1]  # fmt: skip
            first = choose_tokens(logits, uniforms[:, 0], args, token_statistics)
            tokens, token_logprobs, token_entropy = first
            next_positions = positions[:, -1] + 1
            while True:
                tokens = tokens.masked_fill(~unfinished, pad_id)
                response_ids[:, generated] = tokens
                if token_statistics:
                    logprobs[:, generated], entropy[:, generated] = token_logprobs, token_entropy
                generated += 1
                unfinished &= tokens.ne(eos_id)
                if generated == steps or not unfinished.any():
                    break
                if generated > room:  # the next step writes slot prompt_length + generated - 1
                    room = min(steps, 2 * room)
                    cache = _grown_cache(cache, self.model, prompt_length + room)
                    attention_mask = F.pad(prompt_mask, (0, room), value=1)
                tokens, token_logprobs, token_entropy = self.step(
                    self.model, tokens, next_positions, attention_mask, cache, uniforms[:, generated], args,
                    token_statistics,
                )  # fmt: skip
                next_positions = next_positions + 1
        completions = completions_from_ids(response_ids[:, :generated], self.tokenizer)
        if token_statistics:
            completions.logprobs = logprobs[:, :generated] * completions.response_mask
            completions.entropy = entropy[:, :generated] * completions.response_mask
        return completions

    def update_weights(self, policy: torch.nn.Module) -> None:
        """Nothing to copy when ``policy`` is the engine's model; another module is an error."""
        if policy is not self.model:
            raise ValueError("StaticCacheEngine generates with the model it was built with; build a new one")
