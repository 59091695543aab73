"""Rollouts grouped by length and cut to the columns they use give what one pass over the whole,
uncut batch gives: the evaluate step's log-probs, values and entropy, and the optimise step's
gradient (float32; GPT-2 and Llama, left-padded prompts of different lengths, responses that end early,
a separate value model and the shared value head)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from reft_lightning.generation import Completions, GenerationArgs, SamplingArgs
from reft_lightning.rl.logprobs import masked_entropy
from reft_lightning.stages.ppo_args import PPOArgs
from reft_lightning.stages.ppo_step import Rollout, _loss_and_backward, optimise_rollout
from reft_lightning.stages.reft import ReFTModule

PROMPT_LENGTHS = (5, 2, 7, 3, 7, 1)
RESPONSE_LENGTHS = (4, 9, 1, 9, 6, 2)
PROMPT, RESPONSE = max(PROMPT_LENGTHS), max(RESPONSE_LENGTHS)


def _batch(module: ReFTModule) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sequences ``[6, 7 + 9]``, attention, response ids and response mask with ragged padding."""
    generator = torch.Generator().manual_seed(0)
    vocab, pad = module.model.config.vocab_size, module.tokenizer.pad_token_id
    sequences = torch.randint(3, vocab, (len(PROMPT_LENGTHS), PROMPT + RESPONSE), generator=generator)
    attention = torch.zeros_like(sequences)
    for row, (prompt, response) in enumerate(zip(PROMPT_LENGTHS, RESPONSE_LENGTHS)):
        attention[row, PROMPT - prompt : PROMPT + response] = 1
    sequences[attention == 0] = pad
    return sequences, attention, sequences[:, PROMPT:], attention[:, PROMPT:]


def _module(model_dir: Path, separate_value_model: bool, **ppo: Any) -> ReFTModule:
    torch.manual_seed(0)
    module = ReFTModule(
        model=str(model_dir), value_model=str(model_dir) if separate_value_model else None,
        value_dropout=0.0, ppo=PPOArgs(**ppo), rollout=SamplingArgs(max_new_tokens=16),
        eval_generation=GenerationArgs(max_new_tokens=16),
    )  # fmt: skip
    module.configure_model()
    with torch.no_grad():  # the reference differs from the policy, so their log-probs differ too
        for parameter in module.model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return module.eval()


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
@pytest.mark.parametrize("separate_value_model", [False, True])
@pytest.mark.parametrize("sampled", [False, True])
def test_the_evaluate_step_in_groups_equals_one_uncut_pass(
    request: pytest.FixtureRequest, architecture: str, separate_value_model: bool, sampled: bool
) -> None:
    model_dir = request.getfixturevalue("tiny_model_dir" if architecture == "gpt2" else "tiny_llama_dir")
    module = _module(model_dir, separate_value_model, forward_batch_size=4)
    sequences, attention, response, mask = _batch(module)
    completions = Completions(response, mask, texts=[""] * len(response))
    if sampled:  # stand-ins for the decode loop's statistics: passed through untouched
        completions.logprobs, completions.entropy = -torch.rand(mask.shape), torch.rand(mask.shape) * mask

    with torch.no_grad():
        logp, values, entropy, ref_logp = module._evaluate_rollouts(sequences, attention, completions)
        plain_logp, plain_values, logits = module.policy_outputs(sequences, attention, response)
        plain_ref = module._reference_logprobs(sequences, attention, response)
    on = mask.bool()
    torch.testing.assert_close(values[on], plain_values[on], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ref_logp[on], plain_ref[on], atol=1e-5, rtol=1e-5)
    if sampled:
        assert logp is completions.logprobs
        torch.testing.assert_close(entropy, (completions.entropy * mask).sum() / mask.sum())
    else:
        torch.testing.assert_close(logp[on], plain_logp[on], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(entropy, masked_entropy(logits, mask), atol=1e-5, rtol=1e-5)
    assert not torch.equal(ref_logp[on], logp[on]), "the reference is another model"


class _SGDStep:
    """What ``optimise_rollout`` needs of a ReFTModule, over a real one: SGD at lr 1, so that a
    parameter moves by minus its gradient."""

    def __init__(self, module: ReFTModule) -> None:
        self.module, self.iterations, self.device = module, 0, torch.device("cpu")
        self._optimizer = torch.optim.SGD(module.trainable_parameters(), lr=1.0)
        self._scheduler = torch.optim.lr_scheduler.LambdaLR(self._optimizer, lambda _: 1.0)
        self.trainer = SimpleNamespace(world_size=1, strategy=None)
        self.policy_outputs = module.policy_outputs
        self.policy_and_value_parameters = module.policy_and_value_parameters
        self.trainable_parameters = module.trainable_parameters

    def optimizers(self) -> torch.optim.Optimizer:
        return self._optimizer

    def lr_schedulers(self) -> Any:
        return self._scheduler

    def manual_backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def guard_optimizer_step(self, grad_norm: torch.Tensor, parameters: list[torch.nn.Parameter]) -> None:
        assert torch.isfinite(grad_norm)


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
@pytest.mark.parametrize("separate_value_model", [False, True])
def test_micro_batches_by_length_give_the_gradient_of_one_uncut_pass(
    request: pytest.FixtureRequest, architecture: str, separate_value_model: bool
) -> None:
    model_dir = request.getfixturevalue("tiny_model_dir" if architecture == "gpt2" else "tiny_llama_dir")
    module = _module(model_dir, separate_value_model, ppo_epochs=1, micro_batch_size=4, max_grad_norm=1e9)
    sequences, attention, response, mask = _batch(module)
    with torch.no_grad():
        logp, values, _ = module.policy_outputs(sequences, attention, response)
    generator = torch.Generator().manual_seed(1)
    noise = lambda: torch.randn(mask.shape, generator=generator) * mask  # noqa: E731
    rollout = Rollout(
        sequences, attention, response, mask, old_logp=logp + 0.3 * noise(), old_values=values + noise(),
        advantages=noise(), returns=values + noise(),
    )  # fmt: skip

    step = _SGDStep(module)
    _loss_and_backward(step, rollout, module.ppo, use_values=True, weight=1.0)  # type: ignore[arg-type]
    parameters = module.trainable_parameters()
    expected = [-p.grad.clone() for p in parameters]
    before = [p.detach().clone() for p in parameters]
    module.zero_grad(set_to_none=True)
    stats = optimise_rollout(step, rollout, module.ppo, use_values=True)  # type: ignore[arg-type]

    assert 0 < stats["train/clip_fraction"] < 1, "the test must cover clipped and unclipped tokens"
    assert sum(p.abs().sum() for p in expected) > 0
    for parameter, start, step in zip(parameters, before, expected):
        torch.testing.assert_close(parameter.detach() - start, step, atol=1e-6, rtol=1e-4)
