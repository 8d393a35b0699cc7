"""Inference speed of every finished NER system, measured round-robin in one process:
run 1 of every system, then run 2 of every system, ... so that whatever else the machine
does affects all systems alike. Words/second with `nlp.pipe` (batch 64), median of N.

usage: python scripts/bench_speed.py BENCH_DIR DEV.spacy OUTPUT.json [--runs 3] SYSTEM ...
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import spacy
from spacy.tokens import DocBin

from spacy_rsft.io import atomic_output


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bench_dir", type=Path)
    parser.add_argument("dev", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("systems", nargs="+")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    pipelines = {}
    for system in args.systems:
        path = args.bench_dir / system / "model-best"
        if path.exists():
            pipelines[system] = spacy.load(path)
        else:
            print(f"{system}: not trained yet, skipped")
    if not pipelines:
        raise SystemExit(f"No trained systems in {args.bench_dir}: run their bench-* commands first")
    vocab = next(iter(pipelines.values())).vocab
    texts = [doc.text for doc in DocBin().from_disk(args.dev).get_docs(vocab)]
    for nlp in pipelines.values():  # warm-up: lazy initialisation is not speed
        list(nlp.pipe(texts[:8]))
    speeds = {system: [] for system in pipelines}
    n_words = {system: sum(len(nlp.make_doc(t)) for t in texts) for system, nlp in pipelines.items()}
    for _ in range(args.runs):
        for system, nlp in pipelines.items():
            start = time.perf_counter()
            for _ in nlp.pipe(texts, batch_size=args.batch_size):
                pass
            speeds[system].append(n_words[system] / (time.perf_counter() - start))
    result = {
        "dev": str(args.dev),
        "docs": len(texts),
        "runs": args.runs,
        "batch_size": args.batch_size,
        "systems": {
            system: {
                "words": n_words[system],
                "words_per_second_median": round(statistics.median(values)),
                "words_per_second_runs": [round(v) for v in values],
            }
            for system, values in speeds.items()
        },
    }
    print(json.dumps(result, indent=1))
    with atomic_output(args.output) as tmp:
        tmp.write_text(json.dumps(result, indent=1), encoding="utf8")


if __name__ == "__main__":
    main()
