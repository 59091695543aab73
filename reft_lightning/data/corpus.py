"""Plain causal-LM data: arithmetic-chain text packed into fixed blocks (the tiny base model's diet)."""

from __future__ import annotations

from functools import partial
from itertools import chain

import datasets
from torch.utils.data import DataLoader

from reft_lightning.data.collate import collate_sft
from reft_lightning.data.module import TokenizingDataModule
from reft_lightning.data.sampler import resumable_train_loader
from reft_lightning.data.synthetic import Difficulty, arithmetic_chain_corpus


def pack_blocks(token_lists: list[list[int]], eos_id: int, block_size: int) -> datasets.Dataset:
    """Join documents with EOS and cut the stream into full blocks of ``block_size`` tokens.

    Every position is a target (``labels == input_ids``): no prompt masking in causal-LM mode.
    The tail shorter than a block is dropped.
    """
    stream = list(chain.from_iterable([*ids, eos_id] for ids in token_lists))
    blocks = [stream[i : i + block_size] for i in range(0, len(stream) - block_size + 1, block_size)]
    return datasets.Dataset.from_dict({"input_ids": blocks, "labels": blocks})


class ArithmeticCorpusDataModule(TokenizingDataModule):
    """Equation-only documents (no word problems) for pre-training a tiny base model.

    Args:
        num_documents / num_val_documents: documents generated for training and validation.
        block_size: tokens per packed training sequence.
        batch_size: blocks per device per step.
        seed: generator seed (validation uses ``seed + 1``).
        difficulty: number ranges and operations, shared with the word-problem generator.
        shuffle_seed: seed of the per-epoch shuffle.
        tokenizer: tokenizer name or path, the model's (``reft`` sets it from the model when unset).
    """

    def __init__(
        self,
        num_documents: int = 20000,
        num_val_documents: int = 500,
        block_size: int = 128,
        batch_size: int = 32,
        seed: int = 0,
        difficulty: Difficulty | None = None,
        shuffle_seed: int = 0,
        tokenizer: str | None = None,
    ) -> None:
        super().__init__()
        self.counts = {"train": (num_documents, seed), "val": (num_val_documents, seed + 1)}
        self.block_size = block_size
        self.batch_size = batch_size
        self.difficulty = difficulty or Difficulty()
        self.shuffle_seed = shuffle_seed
        self.tokenizer_name = tokenizer
        self._blocks: dict[str, datasets.Dataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self._blocks:
            return
        tokenizer = self.tokenizer
        for split, (count, seed) in self.counts.items():
            texts = arithmetic_chain_corpus(count, seed, self.difficulty)
            ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
            self._blocks[split] = pack_blocks(ids, tokenizer.eos_token_id, self.block_size)

    def train_dataloader(self) -> DataLoader:
        collate = partial(collate_sft, pad_id=self.tokenizer.pad_token_id)
        return resumable_train_loader(
            self._blocks["train"], self.batch_size, self.trainer, self.shuffle_seed, collate
        )

    def val_dataloader(self) -> DataLoader:
        collate = partial(collate_sft, pad_id=self.tokenizer.pad_token_id)
        return DataLoader(self._blocks["val"], batch_size=self.batch_size, collate_fn=collate)
