"""Inference speed of a pipeline with nlp.pipe: words/second, median of N runs, and the
process's peak memory.

usage: python scripts/inference_speed.py MODEL_DIR DATA.spacy [--runs 3] [--batch-size 64] [--output FILE]
"""
import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import spacy
from spacy.tokens import DocBin

from spacy_rsft.io import atomic_output


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("data")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--output", type=Path, default=None, help="Also write the result to this JSON file")
    args = parser.parse_args()
    nlp = spacy.load(args.model)
    texts = [doc.text for doc in DocBin().from_disk(args.data).get_docs(nlp.vocab)]
    n_words = sum(len(nlp.make_doc(t)) for t in texts)
    speeds = []
    for _ in range(args.runs):
        start = time.perf_counter()
        for _ in nlp.pipe(texts, batch_size=args.batch_size):
            pass
        speeds.append(n_words / (time.perf_counter() - start))
    result = {
        "model": args.model,
        "docs": len(texts),
        "words": n_words,
        "words_per_second_median": round(statistics.median(speeds)),
        "words_per_second_runs": [round(s) for s in speeds],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(result))
    if args.output is not None:
        with atomic_output(args.output) as tmp:
            tmp.write_text(json.dumps(result, indent=2), encoding="utf8")


if __name__ == "__main__":
    main()
