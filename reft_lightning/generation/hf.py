"""The Hugging Face engine: ``model.generate`` on the policy module itself (KV cache, no grad)."""

from __future__ import annotations

import torch
from transformers import LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase

from reft_lightning.generation.args import GenerationArgs
from reft_lightning.generation.engine import Completions, completions_from_ids
from reft_lightning.generation.token_statistics import SampledTokenStatistics
from reft_lightning.models.sharding import gathered


class HFGenerationEngine:
    """Decodes with the training model's own ``generate``, so it always sees the newest weights.

    Args:
        model: the policy (any causal LM); the engine keeps a reference, not a copy.
        tokenizer: its tokenizer (EOS ends a completion, pad fills after it).
    """

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        self.model = model
        self.tokenizer = tokenizer

    @torch.no_grad()
    def generate(
        self,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        args: GenerationArgs,
        token_statistics: bool = False,
    ) -> Completions:
        """Continue each left-padded prompt ``[B, P]`` with the KV cache until EOS or ``max_new_tokens``;
        ``token_statistics``: with each token's log-prob and entropy at ``args.temperature``, read
        from the decode loop's own logits (:class:`SampledTokenStatistics`)."""
        tokenizer = self.tokenizer
        decoding = (
            {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p}
            if args.do_sample
            else {}
        )
        statistics = SampledTokenStatistics(args.temperature) if token_statistics else None
        if statistics is not None:
            decoding["logits_processor"] = LogitsProcessorList([statistics])
        with gathered(self.model):  # FSDP2: each block gathered once per generation, not per token
            sequences = self.model.generate(
                input_ids=prompt_ids,
                attention_mask=prompt_mask,
                max_new_tokens=args.max_new_tokens,
                do_sample=args.do_sample,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                **decoding,
            )
        completions = completions_from_ids(sequences[:, prompt_ids.shape[1] :], tokenizer)
        if statistics is not None:
            logprobs, entropy = statistics.finish(sequences[:, prompt_ids.shape[1] :])
            completions.logprobs = logprobs * completions.response_mask
            completions.entropy = entropy * completions.response_mask
        return completions

    def update_weights(self, policy: torch.nn.Module) -> None:
        """Nothing to copy when ``policy`` is the engine's model; another module is an error."""
        if policy is not self.model:
            raise ValueError("HFGenerationEngine generates with the model it was built with; build a new one")
