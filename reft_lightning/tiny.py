"""Command line: a tiny offline model whose tokenizer is trained on the task's text (the demo's stage 0).

Sits above ``data`` and ``models``: it reads problems from the one and builds the model with the other.

    python -m reft_lightning.tiny --out runs/demo/init --size micro --data synthetic
"""

from __future__ import annotations

import argparse

from reft_lightning.data.formats import CotFormat, prompt_text, target_text
from reft_lightning.data.sources import read_examples
from reft_lightning.data.synthetic import arithmetic_chain_corpus, generate_problems
from reft_lightning.models.tiny import SIZES, create_tiny_model


def _texts_for(data: str, seed: int) -> list[str]:
    """Text to train the tokenizer on: ``synthetic`` (problems + arithmetic chains) or a data file."""
    if data == "synthetic":
        problems = generate_problems(3000, seed) + generate_problems(1000, seed, CotFormat.PCOT)
        corpus = arithmetic_chain_corpus(3000, seed)
    else:
        problems, corpus = read_examples(data), []
    texts = [prompt_text(e, CotFormat.NCOT, for_generation=False) for e in problems]
    texts += [target_text(e, CotFormat.NCOT) for e in problems if e.cot is not None]
    return texts + corpus


def main(argv: list[str] | None = None) -> None:
    """Command line: build a tiny model directory."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, help="directory to write (config, weights, tokenizer)")
    parser.add_argument("--size", default="micro", choices=sorted(SIZES))
    parser.add_argument(
        "--data", default="synthetic", help="'synthetic' or a data file to train the tokenizer on"
    )
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = create_tiny_model(
        args.out, _texts_for(args.data, args.seed), args.size, args.vocab_size, seed=args.seed
    )
    print(f"tiny model ({args.size}) written to {out}")


if __name__ == "__main__":
    main()
