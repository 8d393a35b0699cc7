"""Evaluate trained pipelines on one corpus, and optionally the linker's prior baseline, in
one process.

For each MODEL OUTPUT pair this runs what `python -m spacy evaluate MODEL DATA --output
OUTPUT` runs (spaCy's own `evaluate` function: same scores, same JSON), and with --kb what
`python -m spacy_rsft el-baseline KB DATA --output BASELINE` runs. A Python start with the
torch + transformers import (~9 s on 2 cores: spaCy loads every plugin's factories when it
makes a pipeline) is paid once instead of per model.

usage: python scripts/evaluate.py DATA MODEL OUTPUT [MODEL OUTPUT ...]
                                  [--kb KB --baseline-output BASELINE]
"""
import argparse
from pathlib import Path

from spacy.cli.evaluate import evaluate

from spacy_rsft.cli import el_baseline_cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="DocBin to evaluate on")
    parser.add_argument("pairs", nargs="+", help="MODEL OUTPUT, repeated")
    parser.add_argument("--kb", type=Path, help="KB directory: also score the prior baseline")
    parser.add_argument("--baseline-output", type=Path, help="Where the baseline's metrics go")
    args = parser.parse_args()
    if len(args.pairs) % 2:
        parser.error(f"expected MODEL OUTPUT pairs, got {len(args.pairs)} paths: {args.pairs}")
    if (args.kb is None) != (args.baseline_output is None):
        parser.error("--kb and --baseline-output go together")
    for model, output in zip(args.pairs[::2], args.pairs[1::2]):
        print(f"\n=== {model} ===")
        evaluate(model, args.data, output=Path(output), silent=False)
    if args.kb is not None:
        print(f"\n=== prior baseline, {args.kb} ===")
        el_baseline_cli(args.kb, args.data, output=args.baseline_output, doc_candidates=None, by="prior")


if __name__ == "__main__":
    main()
