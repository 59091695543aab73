"""The generation seam: stages decode only through ``module.engine`` (a ``GenerationEngine``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reft_lightning.generation import Completions, GenerationArgs, GenerationEngine, HFGenerationEngine
from reft_lightning.stages.reft import ReFTModule
from tests.integration.test_reft import _data, _module, _trainer


class RecordingEngine:
    """Wraps the HF engine and records what the stage asked of it."""

    def __init__(self, inner: HFGenerationEngine) -> None:
        self.inner = inner
        self.calls: list[tuple[str, object]] = []

    def generate(
        self,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        args: GenerationArgs,
        token_statistics: bool = False,
    ) -> Completions:
        self.calls.append(("generate", (tuple(prompt_ids.shape), args.do_sample)))
        return self.inner.generate(prompt_ids, prompt_mask, args, token_statistics)

    def update_weights(self, policy: torch.nn.Module) -> None:
        self.calls.append(("update_weights", policy))
        self.inner.update_weights(policy)


def test_reft_samples_through_the_engine_after_handing_it_the_policy(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    module: ReFTModule = _module(tiny_model_dir)
    engine = RecordingEngine(HFGenerationEngine(module.model, module.tokenizer))
    assert isinstance(engine, GenerationEngine) and isinstance(module.engine, GenerationEngine)
    module.engine = engine
    _trainer(tmp_path).fit(module, datamodule=_data(tiny_model_dir))
    # the weights once before the first rollout (the policy was just built), then 4 iterations, each
    # one sampled generate of 4 prompts x 1 sample and, after the optimisation, the new weights
    assert [name for name, _ in engine.calls] == ["update_weights"] + ["generate", "update_weights"] * 4
    assert all(arg is module.model for name, arg in engine.calls if name == "update_weights")
    assert all(arg[1] is True and arg[0][0] == 4 for name, arg in engine.calls if name == "generate")


def test_hf_engine_refuses_weights_of_another_model(tiny_model_dir: Path) -> None:
    module = _module(tiny_model_dir)
    engine = HFGenerationEngine(module.model, module.tokenizer)
    engine.update_weights(module.model)  # its own model: nothing to do
    with pytest.raises(ValueError, match="generates with the model it was built with"):
        engine.update_weights(module.reference)
