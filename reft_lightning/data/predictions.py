"""Prediction files read back: the scored samples of each question, and offline self-training data.

``reft predict`` (``evaluation/writer.py``) writes one JSON object per question: ``id``, ``split``,
``question``, ``gold``, ``greedy`` and, with sampling (``model.init_args.sampling_eval.num_samples``),
``samples``, each a ``{text, answer, score, correct}`` object. With several processes each writes
its own ``{stem}.rank{r}.jsonl``; :func:`read_predictions` given the plain name reads them all.
Every problem is a ``DataFormatError`` naming the file, line and field.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reft_lightning.data.answers import NCOT_TRIGGER
from reft_lightning.data.example import MathExample
from reft_lightning.data.formats import CotFormat, pcot_header
from reft_lightning.data.sources_raw import RawRecord, load_jsonl

PAPER_SAMPLES_PER_QUESTION = 10
"""Distinct correct samples kept per question for offline self-training (spec, baselines: 10)."""


@dataclass(frozen=True)
class ScoredSample:
    """One completion of a question as the prediction file holds it."""

    text: str
    """The completion (for P-CoT the program body, which follows the header in the prompt)."""
    answer: float | str | None
    """The answer the reward extracted, or ``None``."""
    score: float
    """The reward's terminal score."""
    correct: bool
    """Whether the extracted answer matches the gold answer."""


@dataclass(frozen=True)
class PredictionRecord:
    """One question of a prediction file: its greedy answer and its samples (in sampling order)."""

    id: str
    split: str
    question: str | None
    """The question text (``None`` in files written before it was recorded)."""
    gold: str
    greedy: ScoredSample
    samples: tuple[ScoredSample, ...]


def prediction_files(path: str | Path) -> list[Path]:
    """``path`` if it exists, else the per-process files ``{stem}.rank{r}.jsonl`` beside it (in rank
    order); a ``FileNotFoundError`` naming both when there are neither."""
    path = Path(path)
    if path.is_file():
        return [path]
    ranks = sorted(path.parent.glob(f"{path.stem}.rank*{path.suffix}"), key=_rank_of)
    if not ranks:
        raise FileNotFoundError(
            f"no prediction file {path} (nor per-process files {path.stem}.rank*{path.suffix} beside it): "
            f"write one with `reft predict --config ... --trainer.default_root_dir {path.parent}`"
        )
    return ranks


def _rank_of(path: Path) -> int:
    suffix = path.stem.rpartition(".rank")[2]
    return int(suffix) if suffix.isdigit() else -1


def _sample(record: RawRecord, field: str, value: object) -> ScoredSample:
    if not isinstance(value, dict):
        raise record.error(field, f"expected an object with text, answer, score, correct; got {value!r}")
    text, answer, score, correct = (value.get(key) for key in ("text", "answer", "score", "correct"))
    if not isinstance(text, str):
        raise record.error(f"{field}.text", f"expected text, got {text!r}")
    if answer is not None and (isinstance(answer, bool) or not isinstance(answer, (int, float, str))):
        raise record.error(f"{field}.answer", f"expected a number, text or null, got {answer!r}")
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        raise record.error(f"{field}.score", f"expected a finite number, got {score!r}")
    if not isinstance(correct, bool):
        raise record.error(f"{field}.correct", f"expected true or false, got {correct!r}")
    numeric = isinstance(answer, (int, float))
    return ScoredSample(text, float(answer) if numeric else answer, float(score), correct)


def _record(raw: RawRecord) -> PredictionRecord:
    samples = raw.fields.get("samples", [])
    if not isinstance(samples, list):
        raise raw.error("samples", f"expected a list, got {type(samples).__name__}")
    question = raw.text("question", required=False)
    return PredictionRecord(
        id=raw.answer_text("id"),
        split=raw.text("split"),
        question=question,
        gold=raw.answer_text("gold"),
        greedy=_sample(raw, "greedy", raw.get("greedy")),
        samples=tuple(_sample(raw, f"samples[{i}]", s) for i, s in enumerate(samples)),
    )


def read_predictions(path: str | Path, split: str | None = None) -> list[PredictionRecord]:
    """The questions of a prediction file (or of its per-process files), in file order.

    Args:
        path: the JSONL ``reft predict`` wrote (``{root}/predictions.jsonl``).
        split: when given, every record must be of this split (``train`` for self-training data);
            a record of another is an error, as is a question id seen twice.
    """
    records: list[PredictionRecord] = []
    where: dict[str, str] = {}
    for file in prediction_files(path):
        for raw in load_jsonl(file):
            record = _record(raw)
            if split is not None and record.split != split:
                raise raw.error("split", f"{record.split!r}: expected predictions of the {split!r} split "
                                f"(reft predict --data.init_args.predict_split {split})")  # fmt: skip
            if record.id in where:
                raise raw.error("id", f"question {record.id!r} again (first at {where[record.id]})")
            where[record.id] = f"{raw.source}{raw.location}"
            records.append(record)
    return records


def sample_chain(text: str, question: str, cot_format: CotFormat) -> str:
    """A completion as a gold-chain field (``MathExample.cot``), so that ``target_text`` rebuilds it.

    N-CoT: the reasoning before the last answer trigger (the target appends the trigger and the gold
    answer again). P-CoT: the program header (which the generation prompt ended with) and the body.
    """
    if CotFormat(cot_format) is CotFormat.NCOT:
        position = text.rfind(NCOT_TRIGGER)
        return (text[:position] if position >= 0 else text).strip()
    return pcot_header(question) + text


def self_training_examples(
    train: Sequence[MathExample],
    records: Sequence[PredictionRecord],
    cot_format: CotFormat,
    max_per_question: int = PAPER_SAMPLES_PER_QUESTION,
    source: str = "predictions",
) -> list[MathExample]:
    """Offline self-training data (spec, "Baselines in the paper"): every training example with its
    gold chain, followed by up to ``max_per_question`` distinct correct samples of its question.

    Samples are taken in sampling order; two are the same when their chains (:func:`sample_chain`)
    are equal after collapsing whitespace, and a sample equal to the gold chain is not added again.
    A sample's example has id ``{id}/sample{j}`` (``j``: its position among the question's samples),
    the question's gold answer and the sample's chain. Records of questions not in ``train`` are an
    error naming ``source``; training questions without a record keep only their gold chain.
    """
    if max_per_question < 0:
        raise ValueError(f"max_per_question must be >= 0, got {max_per_question}")
    by_id = {record.id: record for record in records}
    unknown = sorted(set(by_id) - {example.id for example in train})
    if unknown:
        raise ValueError(
            f"{source}: {len(unknown)} questions are not training questions of this data module "
            f"(e.g. {unknown[:3]}): write the file with `reft predict` on the same data config and "
            f"--data.init_args.predict_split train"
        )
    examples: list[MathExample] = []
    for example in train:
        examples.append(example)
        record = by_id.get(example.id)
        if record is None:
            continue
        seen = {_normalised(example.cot)} if example.cot else set()
        kept = 0
        for j, sample in enumerate(record.samples):
            if kept == max_per_question:
                break
            chain = sample_chain(sample.text, example.question, cot_format)
            if not sample.correct or not chain.strip() or _normalised(chain) in seen:
                continue
            seen.add(_normalised(chain))
            examples.append(MathExample(f"{example.id}/sample{j}", example.question, example.answer, chain,
                                        example.choices))  # fmt: skip
            kept += 1
    return examples


def _normalised(chain: str) -> str:
    return " ".join(chain.split())
