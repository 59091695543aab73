"""Generation of completions from left-padded prompts: greedy for evaluation, sampled for rollouts.

Pure torch + transformers (no Lightning). Shapes: ``B`` prompts, ``P`` prompt tokens (left-padded),
``R`` generated tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass(frozen=True)
class GenerationArgs:
    """How completions are generated."""

    max_new_tokens: int = 400
    """Most tokens generated per completion (spec for RL: prompt + response <= 700)."""
    do_sample: bool = False
    """``False``: greedy decoding (evaluation). ``True``: sampling (rollouts, voting)."""
    temperature: float = 1.0
    """Sampling temperature (spec: 1.0)."""
    top_k: int = 0
    """Sample only from the k most likely tokens; 0 disables (spec: 0)."""
    top_p: float = 1.0
    """Nucleus sampling mass; 1.0 disables (spec: 1.0)."""


@dataclass(frozen=True)
class SamplingArgs(GenerationArgs):
    """Generation for RL rollouts: sampling at temperature 1.0, top-k off, top-p 1.0 (spec)."""

    do_sample: bool = True
    """Rollouts sample; set ``false`` only to debug."""


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


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    args: GenerationArgs,
) -> Completions:
    """Continue each left-padded prompt ``[B, P]`` with the KV cache until EOS or ``max_new_tokens``."""
    sampling = (
        {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p} if args.do_sample else {}
    )
    sequences = model.generate(
        input_ids=prompt_ids,
        attention_mask=prompt_mask,
        max_new_tokens=args.max_new_tokens,
        do_sample=args.do_sample,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **sampling,
    )
    response_ids = sequences[:, prompt_ids.shape[1] :]
    mask = response_mask(response_ids, tokenizer.eos_token_id)
    response_ids = response_ids.masked_fill(mask.eq(0), tokenizer.pad_token_id)
    texts = tokenizer.batch_decode(response_ids, skip_special_tokens=True)
    return Completions(response_ids=response_ids, response_mask=mask, texts=texts)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, T] positions counting only attended tokens (0 for left padding), as ``generate`` uses."""
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)


def response_forward(
    model: PreTrainedModel, sequences: torch.Tensor, attention_mask: torch.Tensor, response_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and last hidden states at the positions that predict each response token.

    ``sequences`` is ``[B, P + R]`` (left-padded prompt, then response); returns logits
    ``[B, R, V]`` and hidden states ``[B, R, H]`` taken at positions ``P - 1 .. P + R - 2``, so
    entry ``t`` scores response token ``t`` and holds the state the value of step ``t`` is read from.
    """
    output = model(
        input_ids=sequences,
        attention_mask=attention_mask,
        position_ids=position_ids(attention_mask),
        output_hidden_states=True,
    )
    start = sequences.shape[1] - response_length - 1
    return output.logits[:, start:-1], output.hidden_states[-1][:, start:-1]
