"""Cost of the reader's loss scoring as a fraction of epoch time, from stats files.

usage: python scripts/scoring_overhead.py STATS.jsonl [STATS.jsonl ...]
For every sampled epoch: scoring_seconds / previous_epoch_seconds (the wall time of the
epoch before it, whose losses were being scored). Prints the median per file.
"""
import json
import statistics
import sys


def main(paths):
    for path in paths:
        rows = [json.loads(line) for line in open(path, encoding="utf8")]
        sampled = [r for r in rows if not r["warmup"] and r.get("previous_epoch_seconds")]
        fractions = [r["scoring_seconds"] / r["previous_epoch_seconds"] for r in sampled]
        scoring = [r["scoring_seconds"] for r in sampled]
        epochs = [r["previous_epoch_seconds"] for r in sampled]
        if not fractions:
            print(f"{path}: no sampled epochs with timings")
            continue
        print(
            f"{path}: scoring {statistics.median(scoring):.2f} s, epoch {statistics.median(epochs):.1f} s, "
            f"overhead {100 * statistics.median(fractions):.2f}% (median over {len(fractions)} epochs; "
            f"scoring mode {rows[0]['scoring']})"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
