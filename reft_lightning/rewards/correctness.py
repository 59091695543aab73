"""Built-in correctness rewards: N-CoT answers, P-CoT programs (run in the sandbox), multiple choice.

Scores follow the paper's three levels (:class:`OutcomeScores`): ``correct`` (1.0), ``partial``
(an answer was extracted but is wrong; 0.1 on numeric data, 0.0 on multiple choice by default) and
``wrong`` (no answer, 0.0); all are constructor arguments, hence settable in YAML.
"""

from __future__ import annotations

from collections.abc import Sequence

from reft_lightning.data.answers import (
    NCOT_TRIGGER,
    NUMERIC_TOLERANCE,
    extract_after_trigger,
    last_number,
    normalize_choice,
    numbers_match,
    parse_number,
)
from reft_lightning.data.example import MathExample
from reft_lightning.data.formats import pcot_header
from reft_lightning.data.sources_choices import CHOICE_LETTERS
from reft_lightning.rewards.base import Answer, OutcomeScores, Reward, RewardOutput, check_lengths
from reft_lightning.sandbox import ExecutionResult, ProgramExecutor

PCOT_PRELUDE = "import math\nimport sympy\n"
"""Prepended to every P-CoT program, as the official code does."""


class AnswerReward(Reward):
    """N-CoT reward: the number after the last answer trigger, compared with a tolerance.

    Args:
        correct: score of a correct answer.
        partial: score of an extracted but wrong answer (the paper's partial reward, 0.1).
        wrong: score when no number follows the trigger, or the trigger is missing.
        trigger: the answer trigger.
        tolerance: absolute tolerance of the numeric comparison.
    """

    cot_formats = frozenset({"ncot"})
    scores_in_background = True

    def __init__(
        self,
        correct: float = 1.0,
        partial: float = 0.1,
        wrong: float = 0.0,
        trigger: str = NCOT_TRIGGER,
        tolerance: float = NUMERIC_TOLERANCE,
    ) -> None:
        self.outcome = OutcomeScores(correct=correct, partial=partial, wrong=wrong)
        self.trigger = trigger
        self.tolerance = tolerance

    def __call__(self, completions: Sequence[str], examples: Sequence[MathExample]) -> RewardOutput:
        check_lengths(completions, examples)
        answers: list[Answer] = []
        correct: list[bool] = []
        for completion, example in zip(completions, examples):
            predicted = parse_number(extract_after_trigger(completion, self.trigger))
            gold = parse_number(example.answer)
            answers.append(predicted)
            correct.append(gold is not None and numbers_match(predicted, gold, self.tolerance))
        scores = [self.outcome.score(a, c) for a, c in zip(answers, correct)]
        return RewardOutput(scores=scores, answers=answers, correct=correct)


def build_program(completion: str, question: str, add_header: bool = True) -> str:
    """The program the official code runs for one P-CoT completion.

    ``pcot_header(question)`` + ``completion`` (header only when ``add_header``), cut at the first
    blank line (``def solution`` lines are always kept), with ``PCOT_PRELUDE`` in front.
    """
    text = (pcot_header(question) if add_header else "") + completion
    kept: list[str] = []
    for line in text.split("\n"):
        if not line.startswith("def solution") and not line.strip():
            break
        kept.append(line)
    return PCOT_PRELUDE + "\n".join(kept)


def is_multiple_choice(example: MathExample) -> bool:
    """Whether ``example`` is answered by a letter (it lists options)."""
    return example.choices is not None


class ProgramReward(Reward):
    """P-CoT reward: run the completed ``solution()`` in the sandbox and check what it returns.

    Numeric problems: a returned number (or numeric string) is compared with ``tolerance``.
    Multiple choice: a returned string is compared as a letter (``normalize_choice``); prefer
    :class:`ChoiceReward` with ``program=ProgramReward()`` there, for the paper's MC scores.

    Args:
        correct, partial, wrong: the three outcome scores (``OutcomeScores``).
        add_header: prepend ``pcot_header(question)``; ``True`` when the prompt ends with the header
            (RL, evaluation) so completions are function bodies.
        tolerance: absolute tolerance of the numeric comparison.
        timeout_s: wall-clock limit per program (the spec's official value, 10 s).
        memory_mb: memory budget per program, MiB.
        workers: sandbox worker processes.

    The sandbox pool starts on first use and is released by :meth:`close`; it is not pickled.
    Metrics: ``error_fraction`` (no value returned) and ``timeout_fraction``.
    """

    cot_formats = frozenset({"pcot"})
    scores_in_background = True  # the programs run in sandbox processes; this thread only waits

    def __init__(
        self,
        correct: float = 1.0,
        partial: float = 0.1,
        wrong: float = 0.0,
        add_header: bool = True,
        tolerance: float = NUMERIC_TOLERANCE,
        timeout_s: float = 10.0,
        memory_mb: int = 1024,
        workers: int = 2,
    ) -> None:
        self.outcome = OutcomeScores(correct=correct, partial=partial, wrong=wrong)
        self.add_header = add_header
        self.tolerance = tolerance
        self.executor = ProgramExecutor(timeout_s=timeout_s, memory_mb=memory_mb, workers=workers)

    def execute(self, completions: Sequence[str], examples: Sequence[MathExample]) -> list[ExecutionResult]:
        """Run each completion's program; one result per completion."""
        check_lengths(completions, examples)
        programs = [build_program(c, e.question, self.add_header) for c, e in zip(completions, examples)]
        return self.executor.run(programs)

    def __call__(self, completions: Sequence[str], examples: Sequence[MathExample]) -> RewardOutput:
        results = self.execute(completions, examples)
        answers: list[Answer] = []
        correct: list[bool] = []
        for result, example in zip(results, examples):
            if is_multiple_choice(example):
                answer = normalize_choice(result.value) if isinstance(result.value, str) else None
                hit = answer is not None and answer == normalize_choice(example.answer)
            else:
                answer = parse_number(result.value) if isinstance(result.value, str) else result.value
                gold = parse_number(example.answer)
                hit = gold is not None and numbers_match(answer, gold, self.tolerance)
            answers.append(answer)
            correct.append(hit)
        count = max(len(results), 1)
        metrics = {
            "error_fraction": sum(r.value is None for r in results) / count,
            "timeout_fraction": sum((r.error or "").startswith("timeout") for r in results) / count,
        }
        scores = [self.outcome.score(a, c) for a, c in zip(answers, correct)]
        return RewardOutput(scores=scores, answers=answers, correct=correct, metrics=metrics)

    def close(self) -> None:
        self.executor.close()

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        executor = state.pop("executor")
        state["_executor_args"] = (executor.timeout_s, executor.memory_mb, executor.workers)
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        timeout_s, memory_mb, workers = state.pop("_executor_args")  # type: ignore[misc]
        self.__dict__.update(state)
        self.executor = ProgramExecutor(timeout_s=timeout_s, memory_mb=memory_mb, workers=workers)


class ChoiceReward(Reward):
    """Multiple-choice reward (MathQA): the answer letter, compared exactly after normalisation.

    N-CoT by default (the text after the last ``trigger``); P-CoT when ``program`` is given (the
    string ``solution()`` returns, executed by that :class:`ProgramReward`, whose scores are unused).

    Args:
        correct, partial, wrong: outcome scores; the paper gives no partial reward on multiple
            choice, hence ``partial=0.0``.
        minimum: every score is at least this. The official code's MathQA path gives every sample
            at least 0.1 (``minimum=0.1``), which the paper links to reward hacking by guessing.
        trigger: the N-CoT answer trigger.
        program: run completions as P-CoT programs with this reward's sandbox.

    Scores N-CoT completions without ``program``, P-CoT completions with it (:meth:`scores_format`).

    Reward-hacking monitor (paper, section 4.4: a policy can learn to pick the right letter without
    the reasoning that leads to it). For N-CoT samples of examples with options, ``metrics`` holds
    ``guessed_fraction`` (of all samples) and ``guessed_of_correct`` (of the correct ones): the
    samples whose letter is right while the last number of their reasoning (the text before the
    trigger) is not the chosen option's number, or there is none. Options that are not a number
    ("none of these") are never counted as guessed.
    """

    cot_formats = frozenset({"ncot", "pcot"})
    scores_in_background = True

    def __init__(
        self,
        correct: float = 1.0,
        partial: float = 0.0,
        wrong: float = 0.0,
        minimum: float = 0.0,
        trigger: str = NCOT_TRIGGER,
        program: ProgramReward | None = None,
    ) -> None:
        self.outcome = OutcomeScores(correct=correct, partial=partial, wrong=wrong)
        self.minimum = minimum
        self.trigger = trigger
        self.program = program

    def scores_format(self, cot_format: str) -> bool:
        return cot_format == ("ncot" if self.program is None else "pcot")

    def __call__(self, completions: Sequence[str], examples: Sequence[MathExample]) -> RewardOutput:
        check_lengths(completions, examples)
        if self.program is None:
            answers: list[Answer] = [
                normalize_choice(extract_after_trigger(c, self.trigger)) for c in completions
            ]
        else:
            results = self.program.execute(completions, examples)
            answers = [normalize_choice(r.value) if isinstance(r.value, str) else None for r in results]
        correct = [a is not None and a == normalize_choice(e.answer) for a, e in zip(answers, examples)]
        scores = [max(self.minimum, self.outcome.score(a, c)) for a, c in zip(answers, correct)]
        metrics = {}
        if self.program is None and any(e.choices for e in examples):
            guessed = sum(
                ok and self._unsupported(text, example)
                for text, example, ok in zip(completions, examples, correct)
            )
            metrics = {
                "guessed_fraction": guessed / len(completions),
                "guessed_of_correct": guessed / max(sum(correct), 1),
            }
        return RewardOutput(scores=scores, answers=answers, correct=correct, metrics=metrics)

    def _unsupported(self, completion: str, example: MathExample) -> bool:
        """Whether a completion that chose ``example``'s right letter reasons to another number (or
        none); ``False`` when that option is not a number."""
        letters = list(CHOICE_LETTERS)
        letter = normalize_choice(example.answer)
        index = letters.index(letter) if letter in letters else len(letters)
        if index >= len(example.choices or ()):
            return False
        option = parse_number(example.choices[index])
        if option is None:
            return False
        position = completion.rfind(self.trigger)
        reasoned = last_number(completion[:position] if position >= 0 else completion)
        return not numbers_match(reasoned, option, NUMERIC_TOLERANCE)

    def close(self) -> None:
        if self.program is not None:
            self.program.close()
