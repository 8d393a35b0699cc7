"""Write the replay file (seedN.replay.jsonl, see bench.write_replay) beside every result on
record that has none yet: for runs that finished before run.py wrote them.

    python scripts/write_replays.py --scale full
    python scripts/write_replays.py --scale full --from-results nb_denoise_sentmix

From a finished training folder on this machine the file is exact: each epoch's mean
acceptance probability. `--from-results NAME,...` also writes one for those systems' results whose
training folder is gone (the runs a control replays), from the realized share of units it accepted each epoch (`sampler.acceptance` in the
result, accepted/proposed, 4 decimals): a control replaying it draws the same number of units
in expectation as the run actually trained on, not the run's expected number (they differ by
the draw's noise, under 1% of the units at NoiseBench's size). Such lines say so in `source`.
Only results with a noise detection (NoiseBench's, which records the number of units), and
only sentence units: a result does not record the split of span units into entity spans and
outside tokens.
"""
import argparse
import json
from typing import List

from bench import Benchmark, load_benchmark, make_plan, read_json, result_path, write_replay
from spacy_rsft.io import atomic_output

REALIZED = "realized: accepted/proposed of each epoch, from the result (its stats file is gone)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="full")
    parser.add_argument("--from-results", default="", help="systems (NAME or NAME@variant, comma-separated) whose "
                        "results without a training folder get a replay file from their realized acceptance")
    args = parser.parse_args()
    bench = load_benchmark()
    for stats in sorted((bench.root / "training" / args.scale).glob("*/seed*/sampler_stats.jsonl")):
        out, name = stats.parent, stats.parent.parent.name
        if name not in bench.systems:
            continue
        seed = int(out.name[len("seed"):])
        target = result_path(bench.root, args.scale, bench.systems[name], seed)
        if target.with_suffix(".replay.jsonl").exists() or not target.exists():
            continue
        finished = out / "train.json"
        if not finished.exists() or finished.stat().st_mtime < stats.stat().st_mtime:
            print(f"{name}/seed{seed}: still training, left alone")
            continue
        print(f"{name}/seed{seed}: wrote {write_replay(out, target).relative_to(bench.root)}")
    if args.from_results:
        from_results(bench, args.scale, args.from_results.split(","))


def from_results(bench: Benchmark, scale: str, names: List[str]) -> None:
    """A replay file from the realized acceptance of the named systems' results that have
    none (see the module's docstring)."""
    unknown = [n for n in names if not any(s.name == n or s.file == n for s in bench.systems.values())]
    if unknown:
        raise SystemExit(f"--from-results: no system {', '.join(unknown)} in systems.yml")
    for system in (s for s in bench.systems.values() if s.name in names or s.file in names):
        for target in sorted(result_path(bench.root, scale, system, 0).parent.glob("seed*.json")):
            replay = target.with_suffix(".replay.jsonl")
            result = read_json(target)
            # the unit count is in the noise detection (runs on NoiseBench: the controls' runs)
            if replay.exists() or not result or not isinstance(result.get("noise_detection"), dict):
                continue
            seed = int(target.stem[len("seed"):])
            train = make_plan(bench, system, bench.scale(scale), seed, "model").config["corpora"]["train"]
            units = {"unit": train.get("unit", "example"), "context": train.get("context", "document"),
                     "span_kinds": train.get("span_kinds", "both")}
            if units["unit"] == "span":
                print(f"{system.name}/seed{seed}: span units, their groups are not in the result; left alone")
                continue
            lines = realized_lines(result, units)
            with atomic_output(replay) as tmp:
                tmp.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf8")
            print(f"{system.name}/seed{seed}: wrote {replay.relative_to(bench.root)} (realized acceptance)")


def realized_lines(result: dict, units: dict) -> list:
    """Replay lines: the warm-up epochs at 1.0, then each sampled epoch's realized share."""
    sampler = result["sampler"]
    proposed = result["noise_detection"]["epochs"][0]["all"]["units"]
    shares = [1.0] * (sampler["epochs"] - sampler["sampled_epochs"]) + list(sampler["acceptance"])
    return [dict(epoch=epoch, **units, proposed=proposed, mean_acceptance={"all": share}, source=REALIZED)
            for epoch, share in enumerate(shares)]


if __name__ == "__main__":
    main()
