"""What glibc's mmap threshold does to a predicting process: peak memory against speed.

Training fixes the threshold at 1 MB (`spacy_rsft.util.map_large_blocks`: 1.01x the time per
update, a third less peak). A process that only predicts keeps glibc's default, which adapts
upwards to 32 MB and so keeps a transformer's freed activations on the heap. This measures,
for each threshold given and glibc's default:
- peak RSS (VmHWM) of a fresh process that loads MODEL and runs CoNLL dev through it
  (`nlp.pipe`, batch 64; `footprint.run_one`), the threshold set through
  MALLOC_MMAP_THRESHOLD_; the median of --repeats processes;
- words/s in one process, the threshold switched with mallopt between passes over the first
  --docs dev documents, round-robin, --runs rounds: the median of each round's ratio to the
  default (32 MB, glibc's cap) and the medians.

usage: python scripts/inference_mmap.py MODEL [MODEL ...] [--thresholds-mb 1,4,16] [--runs 5]
                                        [--docs 300] [--repeats 3]
                                        [--output results/full/inference_mmap.json]
"""
import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Dict, List, Optional

import spacy
from spacy.tokens import DocBin

from bench import write_json
from bucket_speed import DEV, ROOT
from footprint import median_peak
from spacy_rsft.util import set_mmap_threshold

DEFAULT_MB = 32  # glibc's adaptive threshold stops at 32 MB on 64-bit


def fresh_process_peaks(model: Path, threshold_mb: Optional[int], repeats: int) -> Dict:
    """`footprint.median_peak`, the threshold fixed from the start (None: glibc's own)."""
    env = dict(os.environ)
    if threshold_mb is not None:
        env["MALLOC_MMAP_THRESHOLD_"] = str(threshold_mb << 20)
    return median_peak(model, repeats, env)


def alternating_speed(model: Path, thresholds_mb: List[int], runs: int, n_docs: int) -> Dict:
    """words/s at each threshold, switched in one process, round-robin (rotating the order)."""
    nlp = spacy.load(model)
    texts = [doc.text for doc in DocBin().from_disk(DEV).get_docs(nlp.vocab)][:n_docs]
    words = sum(len(text.split()) for text in texts)
    list(nlp.pipe(texts[:20]))  # warm-up
    sizes = [DEFAULT_MB] + thresholds_mb
    speed: Dict[int, List[float]] = {size: [] for size in sizes}
    for round_ in range(runs):
        order = sizes[round_ % len(sizes):] + sizes[:round_ % len(sizes)]
        for size in order:
            set_mmap_threshold(size << 20)
            start = time.perf_counter()
            for _ in nlp.pipe(texts, batch_size=64):
                pass
            speed[size].append(words / (time.perf_counter() - start))
    set_mmap_threshold(DEFAULT_MB << 20)
    result = {}
    for size in sizes:
        paired = [a / b for a, b in zip(speed[size], speed[DEFAULT_MB])]
        result[size] = {
            "words_per_second": [round(x, 1) for x in speed[size]],
            "median_words_per_second": round(statistics.median(speed[size])),
            "ratio_per_round": [round(x, 3) for x in paired],
            "ratio_per_round_median": round(statistics.median(paired), 3),
            "ratio_of_medians": round(statistics.median(speed[size]) / statistics.median(speed[DEFAULT_MB]), 3),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--thresholds-mb", default="1,4,16")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per threshold (median)")
    parser.add_argument("--output", type=Path, default=ROOT / "results" / "full" / "inference_mmap.json")
    args = parser.parse_args()
    thresholds = [int(x) for x in args.thresholds_mb.split(",")]
    report = {"dev": os.path.relpath(DEV, ROOT), "threads": os.environ.get("OMP_NUM_THREADS"), "models": {}}
    for model in args.models:
        rows = {"glibc default": fresh_process_peaks(model, None, args.repeats)}
        speed = alternating_speed(model, thresholds, args.runs, args.docs)
        rows["glibc default"].update(speed[DEFAULT_MB])
        for size in thresholds:
            rows[f"{size} MB"] = {**fresh_process_peaks(model, size, args.repeats), **speed[size]}
        report["models"][str(model)] = rows
        print(model, {name: (row["peak_rss_mb"], row["ratio_per_round_median"]) for name, row in rows.items()}, flush=True)
    write_json(args.output, report)


if __name__ == "__main__":
    main()
