"""Evaluate trained pipelines on one corpus, in one process.

For each MODEL OUTPUT pair this runs what `python -m spacy evaluate MODEL DATA --output
OUTPUT` runs (spaCy's own `evaluate` function: same scores, same JSON), but a Python start
and the torch + transformers import (~9 s on 2 cores) is paid once instead of per model.

usage: python scripts/evaluate.py DATA MODEL OUTPUT [MODEL OUTPUT ...]
"""
import argparse
from pathlib import Path

from spacy.cli.evaluate import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="DocBin to evaluate on")
    parser.add_argument("pairs", nargs="+", help="MODEL OUTPUT, repeated")
    args = parser.parse_args()
    if len(args.pairs) % 2:
        parser.error(f"expected MODEL OUTPUT pairs, got {len(args.pairs)} paths: {args.pairs}")
    for model, output in zip(args.pairs[::2], args.pairs[1::2]):
        print(f"\n=== {model} ===")
        evaluate(model, args.data, output=Path(output), silent=False)


if __name__ == "__main__":
    main()
