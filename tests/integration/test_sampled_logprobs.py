"""``old_logprobs: sampling``: PPO's old log-probs and the logged entropy read from the decode loop's own
logits must equal a recomputation by the policy's forward (float32), and the samples must not change."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch

from reft_lightning.generation import EngineArgs, HFGenerationEngine, SamplingArgs
from reft_lightning.generation.token_statistics import SampledTokenStatistics
from reft_lightning.models.forward import response_forward
from reft_lightning.models.loading import load_causal_lm, load_tokenizer
from reft_lightning.rl.logprobs import token_logprobs
from reft_lightning.stages.optim import OptimizerArgs
from reft_lightning.stages.reft import ReFTModule
from tests.integration.test_reft import _data, _trainer


def test_statistics_of_hand_made_steps_equal_a_float64_softmax() -> None:
    """Two steps of two rows over three tokens at temperature 2: each token is gathered from its own
    step's distribution (the first from the second call's ``input_ids``, the last in ``finish``)."""
    step_scores = [
        torch.tensor([[2.0, 0.0, -2.0], [1.0, 1.0, 1.0]]),
        torch.tensor([[0.0, 4.0, 0.0], [3.0, 0.0, 1.0]]),
    ]
    tokens = torch.tensor([[0, 1], [2, 0]])  # row 0 drew 0 then 1, row 1 drew 2 then 0
    statistics = SampledTokenStatistics(temperature=2.0)
    prompt = torch.tensor([[7], [7]])
    statistics(prompt, step_scores[0])
    statistics(torch.cat([prompt, tokens[:, :1]], 1), step_scores[1])
    logprobs, entropy = statistics.finish(tokens)

    def log_softmax(row: list[float]) -> list[float]:
        scaled = [x / 2.0 for x in row]
        log_z = math.log(sum(math.exp(x) for x in scaled))
        return [x - log_z for x in scaled]

    for b in range(2):
        for t in range(2):
            log_p = log_softmax(step_scores[t][b].tolist())
            assert logprobs[b, t].item() == pytest.approx(log_p[tokens[b, t]], abs=1e-6)
            assert entropy[b, t].item() == pytest.approx(-sum(math.exp(x) * x for x in log_p), abs=1e-6)
    assert entropy[1, 0].item() == pytest.approx(math.log(3), abs=1e-6)  # a uniform step: log V


def test_finish_refuses_tokens_that_do_not_match_the_steps_seen() -> None:
    statistics = SampledTokenStatistics(temperature=1.0)
    statistics(torch.tensor([[1]]), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="2 generated tokens per row, but 1 decode steps"):
        statistics.finish(torch.tensor([[0, 1]]))


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_the_engine_statistics_equal_a_recomputation_and_leave_the_samples_unchanged(
    request: pytest.FixtureRequest, architecture: str
) -> None:
    directory: Path = request.getfixturevalue(
        "tiny_llama_dir" if architecture == "llama" else "tiny_model_dir"
    )
    model, tokenizer = load_causal_lm(str(directory)).eval(), load_tokenizer(str(directory))
    eos_bias = torch.zeros(model.config.vocab_size)
    eos_bias[tokenizer.eos_token_id] = 4.0  # so that rows end at different lengths
    model.lm_head.register_forward_hook(lambda module, inputs, output: output + eos_bias)
    torch.manual_seed(0)
    prompt_ids = torch.randint(3, model.config.vocab_size, (6, 7))
    prompt_mask = torch.ones_like(prompt_ids)
    for row, padding in enumerate([0, 2, 5, 0, 1, 3]):
        prompt_ids[row, :padding], prompt_mask[row, :padding] = tokenizer.pad_token_id, 0
    args = SamplingArgs(max_new_tokens=10, temperature=0.7)
    engine = HFGenerationEngine(model, tokenizer)
    torch.manual_seed(1)
    plain = engine.generate(prompt_ids, prompt_mask, args)
    torch.manual_seed(1)
    recorded = engine.generate(prompt_ids, prompt_mask, args, token_statistics=True)

    assert torch.equal(recorded.response_ids, plain.response_ids) and recorded.texts == plain.texts
    mask = recorded.response_mask
    assert len(set(mask.sum(1).tolist())) > 1, "the test needs rows that end at different lengths"
    sequences = torch.cat([prompt_ids, recorded.response_ids], 1)
    with torch.no_grad():
        logits, _ = response_forward(model, sequences, torch.cat([prompt_mask, mask], 1), mask.shape[1])
    log_p = torch.log_softmax(logits.double() / args.temperature, dim=-1)
    expected_logprobs = token_logprobs(log_p, recorded.response_ids)
    expected_entropy = -(log_p.exp() * log_p).sum(-1)
    valid = mask.bool()
    torch.testing.assert_close(recorded.logprobs[valid].double(), expected_logprobs[valid], atol=1e-4, rtol=0)
    torch.testing.assert_close(recorded.entropy[valid].double(), expected_entropy[valid], atol=1e-4, rtol=0)
    assert recorded.logprobs[~valid].eq(0).all() and recorded.entropy[~valid].eq(0).all()
    assert plain.logprobs is None and plain.entropy is None


@pytest.mark.parametrize("value_model", [False, True])
def test_a_reft_iteration_from_sampling_logprobs_equals_the_recomputed_one(
    tiny_model_dir: Path, tmp_path: Path, value_model: bool
) -> None:
    """One PPO iteration (2 epochs) each way from the same seed: same samples, the same logged
    metrics within float rounding, the same weights after it."""
    modules, metrics = {}, {}
    for source in ("recompute", "sampling"):
        L.seed_everything(0)
        module = ReFTModule(
            model=str(tiny_model_dir), old_logprobs=source, rollout=SamplingArgs(max_new_tokens=12),
            value_model=str(tiny_model_dir) if value_model else None,
            optimizer=OptimizerArgs(lr=1e-4, schedule="constant", warmup_ratio=0.0),
        )  # fmt: skip
        trainer = _trainer(tmp_path / source)
        trainer.fit_loop.epoch_loop.max_steps = 2  # one iteration of 2 PPO epochs
        trainer.fit(module, _data(tiny_model_dir))
        modules[source], metrics[source] = module, dict(trainer.logged_metrics)
    assert metrics["sampling"].keys() == metrics["recompute"].keys()
    for name in [k for k in metrics["recompute"] if k.startswith("train/") and not k.endswith("_per_s")]:
        torch.testing.assert_close(
            metrics["sampling"][name], metrics["recompute"][name], atol=1e-4, rtol=1e-4, msg=name
        )
    expected = modules["recompute"].state_dict()
    for name, tensor in modules["sampling"].state_dict().items():
        torch.testing.assert_close(tensor, expected[name], atol=1e-5, rtol=0, msg=name)


def test_sampling_logprobs_are_refused_with_the_vllm_engine(tiny_model_dir: Path) -> None:
    with pytest.raises(ValueError, match="old_logprobs: sampling needs the hf or static engine"):
        ReFTModule(model=str(tiny_model_dir), old_logprobs="sampling", engine=EngineArgs(name="vllm"))
