"""The static-cache engine against plain ``generate`` (greedy: token for token), its inverse-CDF
sampler against a float64 reference, its compiled step against the eager one, and a ReFT
iteration that decodes with it."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch
from transformers import MistralConfig, MistralForCausalLM

from reft_lightning.generation import (
    EngineArgs,
    GenerationArgs,
    HFGenerationEngine,
    SamplingArgs,
    StaticCacheEngine,
    static_cache,
)
from reft_lightning.generation.static_cache import sample_by_inverse_cdf
from reft_lightning.models.loading import load_causal_lm, load_tokenizer
from reft_lightning.stages.optim import OptimizerArgs
from reft_lightning.stages.reft import ReFTModule
from tests.integration.test_reft import _data, _trainer

EOS_BIAS = {"gpt2": 0.5, "llama": 0.15}
"""Per tiny model, an EOS logit raise that ends the six test prompts' greedy completions at different
lengths (GPT-2: 3, 40, 40, 40, 4, 1 tokens; Llama: 8, 22, 16, 8, 40, 3)."""


def _eos_biased(directory: Path) -> tuple[torch.nn.Module, object]:
    """The model in eval mode with its EOS logit raised, so that rows end at different lengths."""
    model, tokenizer = load_causal_lm(str(directory)).eval(), load_tokenizer(str(directory))
    eos_bias = torch.zeros(model.config.vocab_size)
    eos_bias[tokenizer.eos_token_id] = EOS_BIAS[model.config.model_type]
    model.lm_head.register_forward_hook(lambda module, inputs, output: output + eos_bias)
    return model, tokenizer


def _left_padded_prompts(vocab_size: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Six prompts of 7 tokens, left-padded by 0 to 5 tokens."""
    generator = torch.Generator().manual_seed(0)
    prompt_ids = torch.randint(3, vocab_size, (6, 7), generator=generator)
    prompt_mask = torch.ones_like(prompt_ids)
    for row, padding in enumerate([0, 2, 5, 0, 1, 3]):
        prompt_ids[row, :padding], prompt_mask[row, :padding] = pad_id, 0
    return prompt_ids, prompt_mask


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
@pytest.mark.parametrize(("prompt_bucket", "cache_chunk"), [(1, 40), (16, 3)])
def test_greedy_decoding_is_token_for_token_generates(
    request: pytest.FixtureRequest, architecture: str, prompt_bucket: int, cache_chunk: int
) -> None:
    """Left padding, rows ending early, the prompts padded further to a bucket and the cache grown
    from 3 slots (3, 6, 12, 24, 40): the same tokens, masks and texts as ``model.generate``."""
    model, tokenizer = _eos_biased(
        request.getfixturevalue("tiny_llama_dir" if architecture == "llama" else "tiny_model_dir")
    )
    prompt_ids, prompt_mask = _left_padded_prompts(model.config.vocab_size, tokenizer.pad_token_id)
    args = GenerationArgs(max_new_tokens=40)
    expected = HFGenerationEngine(model, tokenizer).generate(prompt_ids, prompt_mask, args)
    engine = StaticCacheEngine(
        model, tokenizer, compile=False, prompt_bucket=prompt_bucket, cache_chunk=cache_chunk
    )
    actual = engine.generate(prompt_ids, prompt_mask, args)

    lengths = expected.response_mask.sum(1)
    assert lengths.min() < lengths.max() == 40, "the test needs rows ending early and one running to the end"
    assert torch.equal(actual.response_ids, expected.response_ids)
    assert torch.equal(actual.response_mask, expected.response_mask) and actual.texts == expected.texts


def test_decoding_stops_once_every_row_has_ended(tiny_model_dir: Path) -> None:
    model, tokenizer = load_causal_lm(str(tiny_model_dir)).eval(), load_tokenizer(str(tiny_model_dir))
    eos_bias = torch.zeros(model.config.vocab_size)
    eos_bias[tokenizer.eos_token_id] = 1e4  # every row ends at its first token
    model.lm_head.register_forward_hook(lambda module, inputs, output: output + eos_bias)
    prompt_ids, prompt_mask = _left_padded_prompts(model.config.vocab_size, tokenizer.pad_token_id)
    forwards = []
    model.register_forward_hook(lambda module, inputs, output: forwards.append(1))
    engine = StaticCacheEngine(model, tokenizer, compile=False)
    completions = engine.generate(prompt_ids, prompt_mask, GenerationArgs(max_new_tokens=30))
    assert completions.response_ids.shape == (6, 1)
    assert completions.response_ids.eq(tokenizer.eos_token_id).all()
    assert len(forwards) == 1, "the prefill alone: no decode step after every row has ended"


def _float64_inverse_cdf(logits: list[float], u: float, temperature: float, keep: set[int]) -> int:
    """The token whose float64 CDF interval (over the ``keep`` tokens, renormalised) holds ``u``."""
    weights = [math.exp(x / temperature) if i in keep else 0.0 for i, x in enumerate(logits)]
    total, cumulative = sum(weights), 0.0
    for token, weight in enumerate(weights):
        cumulative += weight / total
        if u < cumulative:
            return token
    raise AssertionError("u must be below 1")


LOGITS = [1.0, 3.0, -1.0, 2.0, 0.5]
CASES = [
    # (temperature, top_k, top_p, kept tokens)
    (0.5, 0, 1.0, {0, 1, 2, 3, 4}),
    (2.0, 0, 1.0, {0, 1, 2, 3, 4}),
    (1.0, 2, 1.0, {1, 3}),  # the two largest logits
    (1.0, 0, 0.8, {1, 3}),  # p = .610, .224, .083, ...: the smallest set with mass >= 0.8
    (1.0, 3, 0.95, {0, 1, 3}),  # top-3 renormalised: .665, .245, .090: 0.95 needs all three
    (1.0, 3, 0.9, {1, 3}),  # ... and .665 + .245 >= 0.9
]


@pytest.mark.parametrize(("temperature", "top_k", "top_p", "keep"), CASES)
def test_inverse_cdf_sampling_equals_a_float64_reference(
    temperature: float, top_k: int, top_p: float, keep: set[int]
) -> None:
    """Uniforms on a grid (those within 1e-6 of a float64 CDF boundary left out): each draws the
    reference's token, and the truncated tokens are never drawn, also at ``u = 0``."""
    weights = {i: math.exp(LOGITS[i] / temperature) for i in keep}
    edges, running = [], 0.0
    for i in sorted(keep):
        running += weights[i] / sum(weights.values())
        edges.append(running)
    grid = [k / 10007 for k in range(10007)]  # finer than the smallest kept probability (2.5e-4)
    uniforms = [0.0] + [u for u in grid if all(abs(u - edge) > 1e-6 for edge in edges)]
    logits = torch.tensor([LOGITS] * len(uniforms))
    drawn = sample_by_inverse_cdf(logits, torch.tensor(uniforms), temperature, top_k, top_p)
    expected = [_float64_inverse_cdf(LOGITS, u, temperature, keep) for u in uniforms]
    assert drawn.tolist() == expected
    assert set(expected) == keep, "every kept token is drawn somewhere on the grid"


def test_sampled_token_frequencies_match_the_softmax() -> None:
    """200,000 draws from torch.rand over 5 tokens: every frequency within 5 standard errors."""
    logits = torch.tensor(LOGITS)
    torch.manual_seed(0)
    draws = 200_000
    drawn = sample_by_inverse_cdf(logits.expand(draws, -1), torch.rand(draws), temperature=1.0)
    frequencies = torch.bincount(drawn, minlength=5).double() / draws
    probabilities = torch.softmax(logits.double(), -1)
    standard_errors = (probabilities * (1 - probabilities) / draws).sqrt()
    assert ((frequencies - probabilities).abs() < 5 * standard_errors).all(), (frequencies, probabilities)


def test_the_compiled_step_decodes_the_eager_steps_tokens(tiny_model_dir: Path) -> None:
    """Greedy and sampled (same seed) decoding with the compiled step: the eager step's tokens, and
    log-probs within float tolerance; a second generation of the same shapes builds nothing new."""
    model, tokenizer = _eos_biased(tiny_model_dir)
    prompt_ids, prompt_mask = _left_padded_prompts(model.config.vocab_size, tokenizer.pad_token_id)
    eager = StaticCacheEngine(model, tokenizer, compile=False)
    compiled = StaticCacheEngine(model, tokenizer, compile=True)
    for args in (GenerationArgs(max_new_tokens=12), SamplingArgs(max_new_tokens=12, temperature=0.7)):
        torch.manual_seed(3)
        expected = eager.generate(prompt_ids, prompt_mask, args, token_statistics=True)
        torch.manual_seed(3)
        actual = compiled.generate(prompt_ids, prompt_mask, args, token_statistics=True)
        assert torch.equal(actual.response_ids, expected.response_ids)
        torch.testing.assert_close(actual.logprobs, expected.logprobs, atol=1e-5, rtol=0)
        torch.testing.assert_close(actual.entropy, expected.entropy, atol=1e-5, rtol=0)
    builds = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    compiled.generate(prompt_ids, prompt_mask, GenerationArgs(max_new_tokens=12), token_statistics=True)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == builds


def test_a_sliding_window_model_gets_its_whole_cache_at_once(tiny_model_dir: Path) -> None:
    """A sliding-window cache layer wraps its slots, so it is never grown: greedy decoding past the
    window is still ``generate``'s."""
    tokenizer = load_tokenizer(str(tiny_model_dir))
    config = MistralConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, sliding_window=6, max_position_embeddings=128,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    model = MistralForCausalLM(config).eval()
    prompt_ids, prompt_mask = _left_padded_prompts(model.config.vocab_size, tokenizer.pad_token_id)
    args = GenerationArgs(max_new_tokens=20)
    engine = StaticCacheEngine(model, tokenizer, compile=False, cache_chunk=4)
    assert not engine.growable
    expected = HFGenerationEngine(model, tokenizer).generate(prompt_ids, prompt_mask, args)
    assert torch.equal(engine.generate(prompt_ids, prompt_mask, args).response_ids, expected.response_ids)


def test_compiling_is_refused_for_a_sharded_policy(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tokenizer = load_causal_lm(str(tiny_model_dir)), load_tokenizer(str(tiny_model_dir))
    monkeypatch.setattr(static_cache, "is_sharded", lambda module: module is model)
    with pytest.raises(ValueError, match=r"engine\.compile: true is not supported with a sharded"):
        StaticCacheEngine(model, tokenizer, compile=True)
    StaticCacheEngine(model, tokenizer, compile=False)  # the eager loop is allowed


@pytest.mark.parametrize(("key", "value"), [("prompt_bucket", 0), ("cache_chunk", -1), ("cache_chunk", True)])
def test_engine_args_refuse_a_bucket_or_chunk_that_is_not_a_positive_integer(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"engine.{key} must be a positive integer"):
        EngineArgs(name="static", **{key: value})


def test_a_reft_iteration_with_the_static_engine_equals_the_hf_engines(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Greedy rollouts (the engines' samples differ by design), old log-probs from the sampling pass:
    one PPO iteration each way from one seed leaves the same weights."""
    weights = {}
    for name in ("hf", "static"):
        L.seed_everything(0)
        module = ReFTModule(
            model=str(tiny_model_dir), old_logprobs="sampling", engine=EngineArgs(name=name, compile=False),
            rollout=SamplingArgs(max_new_tokens=12, do_sample=False),
            optimizer=OptimizerArgs(lr=1e-4, schedule="constant", warmup_ratio=0.0),
        )  # fmt: skip
        trainer = _trainer(tmp_path / name)
        trainer.fit_loop.epoch_loop.max_steps = 2  # one iteration of 2 PPO epochs
        trainer.fit(module, _data(tiny_model_dir))
        assert isinstance(module.engine, StaticCacheEngine if name == "static" else HFGenerationEngine)
        weights[name] = module.model.state_dict()
    changed = False
    initial = load_causal_lm(str(tiny_model_dir)).state_dict()
    for key, tensor in weights["static"].items():
        torch.testing.assert_close(tensor, weights["hf"][key], atol=1e-6, rtol=0, msg=key)
        changed |= not torch.equal(tensor, initial[key])
    assert changed, "the iteration must move the weights"
