"""The training forward keeps only the LM-head positions it uses; its logits and hidden states must
equal those of a plain full forward (left padding, GPT-2 and Llama, a LoRA policy)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reft_lightning.models.forward import position_ids, response_forward, response_hidden
from reft_lightning.models.loading import load_causal_lm
from reft_lightning.models.lora import LoRAArgs, add_adapters

RESPONSE = 5


def _batch(vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    sequences = torch.randint(3, vocab, (3, 9 + RESPONSE))
    mask = torch.ones_like(sequences)
    mask[1, :4] = 0  # left padding of two lengths
    mask[2, :7] = 0
    mask[0, -2:] = 0  # a response that ended early (masked after its EOS)
    return sequences, mask


def _plain(
    model: torch.nn.Module, sequences: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    out = model(
        input_ids=sequences, attention_mask=mask, position_ids=position_ids(mask), output_hidden_states=True
    )
    start = sequences.shape[1] - RESPONSE - 1
    return out.logits[:, start:-1], out.hidden_states[-1][:, start:-1]


@pytest.mark.parametrize("architecture", ["gpt2", "llama", "gpt2_lora"])
def test_response_forward_equals_a_full_forward(request: pytest.FixtureRequest, architecture: str) -> None:
    directory: Path = request.getfixturevalue(
        "tiny_llama_dir" if architecture == "llama" else "tiny_model_dir"
    )
    model = load_causal_lm(str(directory)).eval()
    if architecture.endswith("lora"):
        model = add_adapters(model, LoRAArgs(r=4))
    sequences, mask = _batch(model.config.vocab_size)
    logits, hidden = response_forward(model, sequences, mask, RESPONSE)
    expected_logits, expected_hidden = _plain(model, sequences, mask)
    assert logits.shape == expected_logits.shape == (3, RESPONSE, model.config.vocab_size)
    valid = mask[:, -RESPONSE:].bool()
    assert torch.allclose(logits[valid], expected_logits[valid], atol=1e-5)
    assert torch.allclose(hidden[valid], expected_hidden[valid], atol=1e-5)
    assert torch.allclose(
        response_hidden(model, sequences, mask, RESPONSE)[valid], expected_hidden[valid], atol=1e-5
    )


def test_the_lm_head_runs_only_on_the_kept_positions(tiny_model_dir: Path) -> None:
    model = load_causal_lm(str(tiny_model_dir)).eval()
    rows: list[int] = []
    hook = model.lm_head.register_forward_hook(lambda module, inputs, output: rows.append(inputs[0].shape[1]))
    sequences, mask = _batch(model.config.vocab_size)
    response_forward(model, sequences, mask, RESPONSE)
    response_hidden(model, sequences, mask, RESPONSE)
    hook.remove()
    assert rows == [RESPONSE + 1, 1]  # of the 14 positions of each row
