"""Seeded synthetic word problems with N-CoT and P-CoT solutions, and an arithmetic-chain corpus.

The offline stand-in for GSM8K. A problem is a start amount changed by a few events (buy more,
give away, buy bags of several). Every problem has several valid reasoning paths: the events
commute, and gains may be summed before losses. The gold chain shows ONE path, chosen at random,
which is the setting in which the paper argues RL helps (SFT sees one annotated path per question;
sampling finds others). ``arithmetic_chain_corpus`` gives equation-only text (no word problems) on
which a tiny model is first trained as a stand-in for a pretrained LM.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from reft_lightning.data.example import MathExample
from reft_lightning.data.formats import CotFormat, pcot_header

NAMES = ("Kenji", "Ana", "Ravi", "Mia", "Omar", "Lena", "Tom", "Zoe", "Ivan", "Nia", "Sam", "Eva")
ITEMS = ("apples", "marbles", "stickers", "cards", "books", "coins", "shells", "pens", "eggs", "toys")
OPERATIONS = ("+", "-", "*")


@dataclass(frozen=True)
class Difficulty:
    """Knobs of the generator."""

    min_steps: int = 2
    """Fewest events per problem."""
    max_steps: int = 3
    """Most events per problem."""
    max_number: int = 30
    """Largest start amount and single gain or loss."""
    max_factor: int = 6
    """Largest bag count and bag size in a ``*`` event."""
    operations: tuple[str, ...] = OPERATIONS
    """Event kinds allowed: ``+`` (gain), ``-`` (loss), ``*`` (bags of several)."""

    def __post_init__(self) -> None:
        if not 1 <= self.min_steps <= self.max_steps:
            raise ValueError(f"need 1 <= min_steps <= max_steps, got {self.min_steps}, {self.max_steps}")
        if self.max_number < 2 or self.max_factor < 2:
            raise ValueError("max_number and max_factor must be at least 2")
        unknown = set(self.operations) - set(OPERATIONS)
        if unknown or not self.operations:
            raise ValueError(f"operations must be a non-empty subset of {OPERATIONS}, got {self.operations}")


@dataclass(frozen=True)
class _Event:
    kind: str  # "+", "-" or "*"
    amount: int  # the change in the total: gain (+), loss (-), bags * size (*)
    bags: int = 0
    size: int = 0


def _draw_events(rng: random.Random, start: int, difficulty: Difficulty) -> list[_Event]:
    events: list[_Event] = []
    total = start
    for _ in range(rng.randint(difficulty.min_steps, difficulty.max_steps)):
        allowed = [k for k in difficulty.operations if k != "-" or total >= 2]
        if not allowed:
            break
        kind = rng.choice(allowed)
        if kind == "*":
            bags, size = rng.randint(2, difficulty.max_factor), rng.randint(2, difficulty.max_factor)
            event = _Event("*", bags * size, bags, size)
        elif kind == "-":
            event = _Event("-", rng.randint(1, min(total, difficulty.max_number)))
        else:
            event = _Event("+", rng.randint(1, difficulty.max_number))
        total += -event.amount if event.kind == "-" else event.amount
        events.append(event)
    return events


def _question(name: str, item: str, start: int, events: Sequence[_Event]) -> str:
    sentences = [f"{name} has {start} {item}."]
    for event in events:
        if event.kind == "+":
            sentences.append(f"Then {name} buys {event.amount} more {item}.")
        elif event.kind == "-":
            sentences.append(f"Then {name} gives away {event.amount} {item}.")
        else:
            sentences.append(f"Then {name} buys {event.bags} bags with {event.size} {item} in each bag.")
    sentences.append(f"How many {item} does {name} have now?")
    return " ".join(sentences)


def _bags_line(item: str, event: _Event) -> str:
    product = f"{event.bags} * {event.size} = {event.amount}"
    return f"{event.bags} bags with {event.size} {item} each hold {product} {item}."


def _ncot_sequential(name: str, item: str, start: int, events: Sequence[_Event]) -> str:
    lines = [f"{name} starts with {start} {item}."]
    total = start
    for event in events:
        if event.kind == "+":
            lines.append(
                f"After buying {event.amount} more, {name} has {total} + {event.amount} = "
                f"{total + event.amount} {item}."
            )
            total += event.amount
        elif event.kind == "-":
            lines.append(
                f"After giving away {event.amount}, {name} has {total} - {event.amount} = "
                f"{total - event.amount} {item}."
            )
            total -= event.amount
        else:
            lines.append(_bags_line(item, event))
            lines.append(
                f"After buying the bags, {name} has {total} + {event.amount} = {total + event.amount} {item}."
            )
            total += event.amount
    return "\n".join(lines)


def _sum_line(parts: Sequence[int], what: str) -> tuple[str, int]:
    total = sum(parts)
    if len(parts) == 1:
        return f"{what} {parts[0]}.", total
    return f"{what} {' + '.join(map(str, parts))} = {total}.", total


def _ncot_grouped(name: str, item: str, start: int, events: Sequence[_Event]) -> str:
    """Another valid path: first all gains, then all losses, then combine."""
    lines = []
    for event in events:
        if event.kind == "*":
            lines.append(_bags_line(item, event))
    gains = [e.amount for e in events if e.kind != "-"]
    losses = [e.amount for e in events if e.kind == "-"]
    total = start
    if gains:
        line, gained = _sum_line(gains, f"In all, {name} gets")
        lines.append(line)
        combined = f"{start} + {gained} = {start + gained}"
        lines.append(f"With the {start} {item} at the start, {name} has {combined} {item}.")
        total += gained
    if losses:
        line, lost = _sum_line(losses, f"In all, {name} gives away")
        lines.append(line)
        lines.append(f"So {name} has {total} - {lost} = {total - lost} {item} left.")
    return "\n".join(lines)


def _pcot(question: str, item: str, start: int, events: Sequence[_Event]) -> str:
    body = [f"    {item}_at_start = {start}"]
    terms = [f"{item}_at_start"]
    for index, event in enumerate(events, start=1):
        if event.kind == "*":
            body.append(f"    bags_{index} = {event.bags}")
            body.append(f"    {item}_per_bag_{index} = {event.size}")
            terms.append(f"+ bags_{index} * {item}_per_bag_{index}")
        else:
            name = "bought" if event.kind == "+" else "given_away"
            body.append(f"    {name}_{index} = {event.amount}")
            terms.append(f"{event.kind} {name}_{index}")
    body.append(f"    result = {' '.join(terms)}")
    body.append("    return result")
    return pcot_header(question) + "\n".join(body)


def generate_problems(
    count: int,
    seed: int,
    cot_format: CotFormat | str = CotFormat.NCOT,
    difficulty: Difficulty | None = None,
    id_prefix: str = "synthetic",
) -> list[MathExample]:
    """Generate ``count`` distinct problems, deterministic in ``seed``.

    Returns MathExamples with integer answers and a gold chain in ``cot_format``. The N-CoT chain
    takes the sequential path or the gains-first path at random (both are correct).
    """
    difficulty = difficulty or Difficulty()
    rng = random.Random(seed)
    examples: list[MathExample] = []
    seen: set[str] = set()
    attempts = 0
    while len(examples) < count:
        attempts += 1
        if attempts > 50 * count + 1000:
            raise ValueError(f"cannot draw {count} distinct problems with {difficulty}")
        name, item = rng.choice(NAMES), rng.choice(ITEMS)
        start = rng.randint(2, difficulty.max_number)
        events = _draw_events(rng, start, difficulty)
        question = _question(name, item, start, events)
        path = rng.choice((_ncot_sequential, _ncot_grouped))
        if question in seen:
            continue
        seen.add(question)
        answer = start + sum(-e.amount if e.kind == "-" else e.amount for e in events)
        if CotFormat(cot_format) is CotFormat.NCOT:
            cot = path(name, item, start, events)
        else:
            cot = _pcot(question, item, start, events)
        example_id = f"{id_prefix}_{len(examples)}"
        examples.append(MathExample(id=example_id, question=question, answer=str(answer), cot=cot))
    return examples


def as_multiple_choice(examples: Sequence[MathExample], seed: int) -> list[MathExample]:
    """The problems as MathQA-style multiple choice: five numeric options (the answer and four
    distinct distractors within 10 of it, shuffled) written as the question's last line
    (``a ) 38 , b ) 41 , ...``), the answer a letter. Chains are unchanged, so a gold N-CoT chain
    still reasons to the right option's number, which the reward-hacking monitor checks."""
    rng = random.Random(seed)
    out = []
    for example in examples:
        gold = int(example.answer)
        offsets = rng.sample([d for d in range(-10, 11) if d != 0 and gold + d >= 0], 4)
        options = [str(gold + d) for d in offsets] + [example.answer]
        rng.shuffle(options)
        line = " , ".join(f"{letter} ) {option}" for letter, option in zip("abcde", options))
        letter = "abcde"[options.index(example.answer)]
        out.append(
            MathExample(example.id, f"{example.question}\n{line}", letter, example.cot, tuple(options))
        )
    return out


def arithmetic_chain_corpus(count: int, seed: int, difficulty: Difficulty | None = None) -> list[str]:
    """``count`` documents of chained equations only, e.g. ``"23 + 19 = 42. 42 - 5 = 37. 3 * 4 = 12."``.

    Numbers follow the same ranges as ``generate_problems`` so the base model learns the arithmetic
    the word problems need, but never sees a word problem.
    """
    difficulty = difficulty or Difficulty()
    rng = random.Random(seed)
    documents = []
    for _ in range(count):
        total = rng.randint(2, difficulty.max_number)
        equations = []
        chain = Difficulty(2, 6, difficulty.max_number, difficulty.max_factor, difficulty.operations)
        for event in _draw_events(rng, total, chain):
            if event.kind == "*":
                equations.append(f"{event.bags} * {event.size} = {event.amount}.")
                equations.append(f"{total} + {event.amount} = {total + event.amount}.")
                total += event.amount
            elif event.kind == "+":
                equations.append(f"{total} + {event.amount} = {total + event.amount}.")
                total += event.amount
            else:
                equations.append(f"{total} - {event.amount} = {total - event.amount}.")
                total -= event.amount
        documents.append(" ".join(equations))
    return documents
