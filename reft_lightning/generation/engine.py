"""The generation engine seam: prompts in, completions out, and new policy weights when they change.

Shapes: ``B`` prompts, ``P`` prompt tokens (left-padded), ``R`` generated tokens. The Hugging Face
engine (``generation/hf.py``) implements it today; an engine such as vLLM, which keeps its own copy
of the weights, implements the same two methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

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


def response_mask(response_ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """[B, R] mask that is 1 up to and including the first ``eos_id`` of each row, 0 after it."""
    is_eos = response_ids.eq(eos_id).long()
    eos_before = is_eos.cumsum(dim=1) - is_eos  # EOS tokens strictly before each position
    return eos_before.eq(0).long()


@runtime_checkable
class GenerationEngine(Protocol):
    """What the stages need to decode: :meth:`generate`, and :meth:`update_weights` after a step."""

    def generate(
        self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, args: GenerationArgs
    ) -> Completions:
        """Continue each left-padded prompt ``[B, P]`` until EOS or ``args.max_new_tokens``."""
        ...

    def update_weights(self, policy: torch.nn.Module) -> None:
        """Generate with ``policy``'s current weights from now on."""
        ...
