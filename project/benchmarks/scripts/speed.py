"""Inference speed of the systems marked `speed` in systems.yml, measured round-robin in one
process: run 1 of every system, then run 2 of every system, ... so that whatever else the
machine does affects all systems alike. Words/second with `nlp.pipe` (batch 64) over the
dev set of the first system, median of the scale's `speed_runs`, and the process's peak RSS
after loading and running them all.

usage: python scripts/speed.py --scale full [--batch-size 64] [--force]

Writes results/SCALE/speed.json with the fingerprint of every measured run, and skips the
measurement when those fingerprints are unchanged (the models it measured are the ones the
results describe), so results carried over from another machine need no models here.
"""
import argparse
import resource
import statistics
import time
from typing import Dict, List

from bench import load_benchmark, read_json, result_path, run_dir, write_json


def measure(pipelines: Dict, texts: List[str], runs: int, batch_size: int) -> Dict[str, Dict]:
    for nlp in pipelines.values():  # warm-up: lazy initialisation is not speed
        list(nlp.pipe(texts[:8]))
    n_words = {name: sum(len(nlp.make_doc(t)) for t in texts) for name, nlp in pipelines.items()}
    speeds: Dict[str, List[float]] = {name: [] for name in pipelines}
    for _ in range(runs):
        for name, nlp in pipelines.items():
            start = time.perf_counter()
            for _ in nlp.pipe(texts, batch_size=batch_size):
                pass
            speeds[name].append(n_words[name] / (time.perf_counter() - start))
    return {
        name: {
            "words": n_words[name],
            "words_per_second_median": round(statistics.median(values)),
            "words_per_second_runs": [round(v) for v in values],
        }
        for name, values in speeds.items()
    }


def main() -> None:
    import spacy
    from spacy.tokens import DocBin

    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="full")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    bench = load_benchmark()
    scale = bench.scale(args.scale)
    output = bench.root / "results" / scale.name / "speed.json"
    seed = scale.seeds[0]
    systems = [s for s in bench.systems_of(scale) if s.speed]
    if scale.speed_runs <= 0 or not systems:
        write_json(output, {"measured": False, "reason": f"scale {scale.name} measures no speed"})
        return
    fingerprints = {}
    for system in systems:
        result = read_json(result_path(bench.root, scale.name, system, seed))
        if result is None:
            raise SystemExit(f"{system.name} has no result at scale {scale.name}: run its suite ({system.suite}) first.")
        fingerprints[system.name] = result["fingerprint"]
    previous = read_json(output)
    if previous and previous.get("fingerprints") == fingerprints and previous.get("runs") == scale.speed_runs and not args.force:
        print(f"{output}: up to date, skipped")
        return
    pipelines = {}
    for system in systems:
        path = run_dir(bench.root, scale.name, system.name, seed) / "model-best"
        if not path.exists():
            raise SystemExit(f"{path} is missing: rerun `python scripts/run.py {system.suite} --scale {scale.name} --only {system.name} --force`.")
        pipelines[system.name] = spacy.load(path)
    dev = run_dir(bench.root, scale.name, systems[0].name, seed) / "config.cfg"
    dev_path = spacy.util.load_config(dev, interpolate=False)["paths"]["dev"]
    texts = [doc.text for doc in DocBin().from_disk(dev_path).get_docs(next(iter(pipelines.values())).vocab)]
    result = {
        "measured": True,
        "dev": str(dev_path),
        "docs": len(texts),
        "runs": scale.speed_runs,
        "batch_size": args.batch_size,
        "systems": measure(pipelines, texts, scale.speed_runs, args.batch_size),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "fingerprints": fingerprints,
    }
    write_json(output, result)
    print(f"Wrote {output}")


if __name__ == "__main__":
    main()
