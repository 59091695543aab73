"""One LightningDataModule per dataset. Each only says where its files are and how to read them.

Defaults name the public sources: the ReFT paper's processed files (repository
lqtrung1998/mwp_ReFT, ``data/``) and, for GSM8K, the original release (openai/grade-school-math).
Point ``train_file`` / ``test_file`` at local copies to work offline.
"""

from __future__ import annotations

from typing import Any

from reft_lightning.data.example import MathExample
from reft_lightning.data.formats import CotFormat
from reft_lightning.data.module import MathDataModule
from reft_lightning.data.sources import read_examples, read_hf_dataset, read_records
from reft_lightning.data.synthetic import Difficulty, as_multiple_choice, generate_problems

REFT_DATA = "https://raw.githubusercontent.com/lqtrung1998/mwp_ReFT/main/data/"
"""The ReFT paper's processed files (train files carry GPT-3.5 N-CoT / P-CoT annotations)."""


class FileDataModule(MathDataModule):
    """Any dataset from a train file and a test file (paths or URLs), read by ``read_examples``.

    Args:
        train_file: training examples (with gold chains for SFT).
        test_file: test examples (only ``reft test`` reports on them).
        val_file: optional validation file; without it, ``val_size`` is held out from train.
        kind: reader to use (``auto`` picks by name and content; see docs/data.md).
        **kwargs: see :class:`MathDataModule`.
    """

    def __init__(
        self, train_file: str, test_file: str, val_file: str | None = None, kind: str = "auto", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.train_file, self.test_file, self.val_file, self.kind = train_file, test_file, val_file, kind

    def sources(self) -> dict[str, str]:
        files = {"train": self.train_file, "test": self.test_file, "val": self.val_file}
        return {split: f for split, f in files.items() if f is not None}

    def load_splits(self) -> dict[str, list[MathExample]]:
        return {split: read_examples(path, self.kind) for split, path in self.local_sources().items()}


class GSM8KDataModule(FileDataModule):
    """GSM8K. Default: the paper's N-CoT train file and test set (P-CoT: ``gsm8k_python_sdp.json``)."""

    def __init__(
        self,
        train_file: str = REFT_DATA + "gsm8k_nl.json",
        test_file: str = REFT_DATA + "gsm8k_test_set.json",
        **kwargs: Any,
    ) -> None:
        super().__init__(train_file=train_file, test_file=test_file, **kwargs)


class SVAMPDataModule(FileDataModule):
    """SVAMP: trained on MAWPS + ASDiv-A (paper's annotations), tested on the 1,000 SVAMP problems."""

    def __init__(
        self,
        train_file: str = REFT_DATA + "svamp_nl.json",
        test_file: str = REFT_DATA + "svamp_test_set.json",
        **kwargs: Any,
    ) -> None:
        super().__init__(train_file=train_file, test_file=test_file, **kwargs)


class MathQADataModule(FileDataModule):
    """MathQA multiple choice: options are part of the question; the answer is a letter a-e."""

    def __init__(
        self,
        train_file: str = REFT_DATA + "mathqa_nl.json",
        test_file: str = REFT_DATA + "mathqa_test_set.json",
        **kwargs: Any,
    ) -> None:
        super().__init__(train_file=train_file, test_file=test_file, **kwargs)


class MathQANumericDataModule(FileDataModule):
    """MathQA-numeric (Jie & Lu, 2023): the MathQA questions without options, numeric answers."""

    def __init__(
        self,
        train_file: str = REFT_DATA + "mathqa-numeric_nl.json",
        test_file: str = REFT_DATA + "mathqa-numeric_test_set.json",
        **kwargs: Any,
    ) -> None:
        super().__init__(train_file=train_file, test_file=test_file, **kwargs)


class RecordsDataModule(MathDataModule):
    """Generic JSON / JSONL files, or a Hugging Face dataset, with field names set in YAML.

    Args:
        train_file / test_file: local paths or URLs; ignored when ``hf_name`` is set.
        hf_name / hf_config: a dataset on the Hugging Face hub, loaded with ``datasets.load_dataset``.
        hf_train_split / hf_test_split: its split names.
        question_field / answer_field / cot_field / id_field: field names in the records.
        numeric: whether answers are numbers (else compared as strings).
        **kwargs: see :class:`MathDataModule`.
    """

    def __init__(
        self,
        train_file: str | None = None,
        test_file: str | None = None,
        hf_name: str | None = None,
        hf_config: str | None = None,
        hf_train_split: str = "train",
        hf_test_split: str = "test",
        question_field: str = "question",
        answer_field: str = "answer",
        cot_field: str | None = None,
        id_field: str | None = None,
        numeric: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if hf_name is None and (train_file is None or test_file is None):
            raise ValueError("RecordsDataModule needs train_file and test_file, or hf_name")
        self.train_file, self.test_file = train_file, test_file
        self.hf_name, self.hf_config = hf_name, hf_config
        self.hf_splits = {"train": hf_train_split, "test": hf_test_split}
        self.fields = {
            "question_field": question_field,
            "answer_field": answer_field,
            "cot_field": cot_field,
            "id_field": id_field,
            "numeric": numeric,
        }

    def load_splits(self) -> dict[str, list[MathExample]]:
        if self.hf_name is not None:
            return {
                split: read_hf_dataset(self.hf_name, name, config=self.hf_config, **self.fields)
                for split, name in self.hf_splits.items()
            }
        return {split: read_records(path, **self.fields) for split, path in self.local_sources().items()}

    def sources(self) -> dict[str, str]:
        if self.hf_name is not None:
            return {}
        assert self.train_file is not None and self.test_file is not None
        return {"train": self.train_file, "test": self.test_file}


class SyntheticDataModule(MathDataModule):
    """Seeded synthetic word problems (``data/synthetic.py``): the offline default of the demo.

    Args:
        num_train / num_val / num_test: problems per split, all distinct (drawn from one pool).
        seed: generator seed; the same seed gives the same problems.
        difficulty: generator knobs (steps, number range, operations).
        multiple_choice: ask each problem as MathQA-style multiple choice (five numeric options,
            the answer a letter; N-CoT only; ``synthetic.as_multiple_choice``); score it with
            ``ChoiceReward``.
        **kwargs: see :class:`MathDataModule`.
    """

    def __init__(
        self,
        num_train: int = 1500,
        num_val: int = 200,
        num_test: int = 500,
        seed: int = 0,
        difficulty: Difficulty | None = None,
        multiple_choice: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if multiple_choice and self.cot_format is not CotFormat.NCOT:
            raise ValueError("data.init_args.multiple_choice: true needs data.init_args.cot_format: ncot")
        self.counts = (num_train, num_val, num_test)
        self.seed = seed
        self.difficulty = difficulty or Difficulty()
        self.multiple_choice = multiple_choice

    def load_splits(self) -> dict[str, list[MathExample]]:
        num_train, num_val, _ = self.counts
        pool = generate_problems(sum(self.counts), self.seed, self.cot_format, self.difficulty)
        if self.multiple_choice:
            pool = as_multiple_choice(pool, self.seed)
        return {
            "train": pool[:num_train],
            "val": pool[num_train : num_train + num_val],
            "test": pool[num_train + num_val :],
        }
