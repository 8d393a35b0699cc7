"""Collect every run of one scale into results/SCALE/results.json: each system's runs by
seed, its speed, the comparison with its baseline (seed by seed, with the paired t where
there are several seeds) and the spread over seeds. Systems that have not run are listed as
such, so this can run after any part of the benchmark. render.py turns the file into
markdown and plots; nothing here formats.

usage: python scripts/collect.py --scale full
"""
import argparse
import statistics
from typing import Dict, List, Optional

from bench import Benchmark, Scale, load_benchmark, read_json, result_path, write_json


def score(result: Optional[Dict]) -> Optional[float]:
    """The number a system is ranked by, to the 2 decimals the report shows (differences are
    of the shown numbers): dev entity F1 (NER), in-KB accuracy in % (EL)."""
    if not result:
        return None
    if (result.get("best_scores") or {}).get("ents_f") is not None:
        return round(result["best_scores"]["ents_f"], 2)
    accuracy = (result.get("metrics") or {}).get("nel_inkb_accuracy")
    return round(100 * accuracy, 2) if accuracy is not None else None


def first_reaching(curve: List, target: float) -> Optional[List]:
    """The first [step, score, seconds] of the curve whose dev score (spaCy's weighted score,
    0-1) reaches target."""
    for point in curve:
        if point[1] >= target - 1e-12:
            return point
    return None


def paired(values: List[float]) -> Dict:
    """Mean, sd and the paired t statistic (n - 1 degrees of freedom) of per-seed differences;
    with 3 seeds |t| must pass 4.3 for two-sided p < 0.05."""
    out: Dict = {"values": values, "mean": statistics.mean(values), "sd": None, "t": None, "df": len(values) - 1}
    if len(values) > 1:
        out["sd"] = statistics.stdev(values)
        out["t"] = out["mean"] / (out["sd"] / len(values) ** 0.5) if out["sd"] > 0 else None
    return out


def same_device(run: Dict, other: Dict) -> bool:
    """Whether two runs trained on the same kind of machine: the same GPU (or none) and as
    many CPUs."""
    a, b = run.get("machine"), other.get("machine")
    return bool(a and b) and (a.get("gpu"), a.get("cpus")) == (b.get("gpu"), b.get("cpus"))


def comparison(runs: Dict[int, Dict], baseline: Dict[int, Dict], reference: Dict[int, Dict]) -> Dict:
    """The system against its baseline, seed by seed (only seeds both have), and the share of
    the baseline-to-reference gap it recovers."""
    seeds = sorted(set(runs) & set(baseline))
    if not seeds:
        return {}
    diffs = [round(score(runs[s]) - score(baseline[s]), 2) for s in seeds]
    out: Dict = {"seeds": seeds, "difference": paired(diffs)}
    first = seeds[0]
    curve, base_curve = runs[first].get("curve"), baseline[first].get("curve")
    if curve and base_curve:
        target = max(value for _, value, _ in base_curve)
        base_point, point = first_reaching(base_curve, target), first_reaching(curve, target)
        base_steps, steps = base_point[0], point[0] if point else None
        out["steps_to_baseline_best"] = {
            "seed": first,
            "baseline_steps": base_steps,
            "steps": steps,
            "ratio": round(steps / base_steps, 3) if steps and base_steps else None,
        }
        # wall-clock from the start of training to that evaluation, only where the two runs
        # trained on the same kind of machine (an H200's minutes against a CPU's mean nothing)
        if same_device(runs[first], baseline[first]):
            out["steps_to_baseline_best"]["baseline_seconds"] = round(base_point[2])
            out["steps_to_baseline_best"]["seconds"] = round(point[2]) if point else None
    shares = []
    for s in seeds:
        if s in reference and score(reference[s]) is not None:
            gap = score(reference[s]) - score(baseline[s])
            shares.append(round((score(runs[s]) - score(baseline[s])) / gap, 3) if gap > 0 else None)
    if shares:
        out["gap_recovered"] = shares
    return out


def collect(bench: Benchmark, scale: Scale) -> Dict:
    runs: Dict[str, Dict[int, Dict]] = {}
    for system in bench.systems_of(scale):
        found = {seed: read_json(result_path(bench.root, scale.name, system, seed)) for seed in scale.seeds_of(system.suite)}
        runs[system.name] = {seed: r for seed, r in found.items() if r is not None}
    speed = read_json(bench.root / "results" / scale.name / "speed.json") or {"measured": False}
    systems = {}
    for system in bench.systems_of(scale):
        mine = runs[system.name]
        if not mine and system.variant in bench.own_label_sets:
            continue  # a user's label set runs a few systems only: no empty rows for the rest
        entry: Dict = {"title": system.title, "suite": system.suite, "group": system.group, "runs": mine}
        entry["score"] = {seed: score(r) for seed, r in mine.items()}
        if len(mine) > 1:
            entry["spread"] = paired(list(entry["score"].values()))
        if system.name in (speed.get("systems") or {}):
            entry["speed"] = speed["systems"][system.name]
        if system.baseline and mine:
            entry["comparison"] = comparison(mine, runs.get(system.baseline, {}), runs.get(system.reference, {}))
            entry["comparison"].update({"baseline": system.baseline, "reference": system.reference})
        systems[system.name] = entry
    return {
        "title": f"spacy-rsft benchmark, scale {scale.name}",
        "scale": {"name": scale.name, "data": scale.data, "seeds": scale.seeds, "suite_seeds": scale.suite_seeds, "settings": scale.settings},
        "reproduce": f"cd project/benchmarks && python -m spacy project run benchmark . --vars.scale {scale.name}",
        # each run records its own machine and versions; these are the distinct ones
        "machines": distinct(r.get("machine") for s in runs.values() for r in s.values()),
        "versions": distinct(r.get("versions") for s in runs.values() for r in s.values()),
        "groups": bench.groups,
        "systems": systems,
        "speed": {k: v for k, v in speed.items() if k not in ("systems", "fingerprints")},
    }


def distinct(items) -> List[Dict]:
    out: List[Dict] = []
    for item in items:
        if item and item not in out:
            out.append(item)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="full")
    args = parser.parse_args()
    bench = load_benchmark()
    scale = bench.scale(args.scale)
    output = bench.root / "results" / scale.name / "results.json"
    write_json(output, collect(bench, scale))
    print(f"Wrote {output}")


if __name__ == "__main__":
    main()
