"""The generation engine seam: prompts in, completions out, and new policy weights when they change.

Shapes: ``B`` prompts, ``P`` prompt tokens (left-padded), ``R`` generated tokens. The Hugging Face
engine (``generation/hf.py``) decodes with the policy itself; the vLLM engine (``generation/vllm.py``)
keeps its own copy of the weights, which ``update_weights`` refreshes. ``generation/build.py`` picks
one from ``model.init_args.engine``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from transformers import PreTrainedTokenizerBase

from reft_lightning.generation.args import GenerationArgs


@dataclass
class Completions:
    """Generated continuations of a prompt batch."""

    response_ids: torch.Tensor
    """[B, R] generated token ids, right-padded with the pad id after EOS."""
    response_mask: torch.Tensor
    """[B, R] 1 on generated tokens up to and including the first EOS, 0 after."""
    texts: list[str]
    """Decoded completions without special tokens, one per prompt."""
    logprobs: torch.Tensor | None = None
    """[B, R] float32 log-prob of each generated token under the sampling distribution (logits /
    temperature), 0 where ``response_mask`` is 0; only when ``generate`` was asked for token statistics."""
    entropy: torch.Tensor | None = None
    """[B, R] float32 entropy (nats) of that distribution at each generated token, 0 where masked;
    with ``logprobs``."""


def response_mask(response_ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """[B, R] mask that is 1 up to and including the first ``eos_id`` of each row, 0 after it."""
    is_eos = response_ids.eq(eos_id).long()
    eos_before = is_eos.cumsum(dim=1) - is_eos  # EOS tokens strictly before each position
    return eos_before.eq(0).long()


def completions_from_ids(
    response_ids: torch.Tensor, tokenizer: PreTrainedTokenizerBase, lengths: torch.Tensor | None = None
) -> Completions:
    """:class:`Completions` of generated ids ``[B, R]``: masked after each row's first EOS, the pad id
    there, and decoded without special tokens.

    ``lengths`` ``[B]`` (an engine that returns rows of different lengths, padded to ``R``): positions
    at or past a row's length are masked and padded too, also in a row that stopped without EOS.
    """
    mask = response_mask(response_ids, tokenizer.eos_token_id)
    if lengths is not None:
        positions = torch.arange(response_ids.shape[1], device=response_ids.device)
        mask = mask * positions.lt(lengths.to(response_ids.device).unsqueeze(1)).long()
    response_ids = response_ids.masked_fill(mask.eq(0), tokenizer.pad_token_id)
    texts = tokenizer.batch_decode(response_ids, skip_special_tokens=True)
    return Completions(response_ids=response_ids, response_mask=mask, texts=texts)


@runtime_checkable
class GenerationEngine(Protocol):
    """What the stages need to decode: :meth:`generate`, and :meth:`update_weights` after a step."""

    def generate(
        self,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        args: GenerationArgs,
        token_statistics: bool = False,
    ) -> Completions:
        """Continue each left-padded prompt ``[B, P]`` until EOS or ``args.max_new_tokens``;
        ``token_statistics``: also each token's log-prob and entropy (:class:`Completions`), or an
        error from an engine that cannot record them."""
        ...

    def update_weights(self, policy: torch.nn.Module) -> None:
        """Generate with ``policy``'s current weights from now on."""
        ...
