"""One system against its baseline on any seeds that both have run, beyond the scale's own:
each seed's scores, the paired differences with their t, and the share of the noise gap.
collect.py reports the scale's seeds (0-2 at full); this answers the question a later,
pre-set batch of seeds asks ("does the effect hold on seeds nobody chose on?") without
changing what results.json and the README's tables report.

usage: python scripts/paired.py nb_crossfit_dfold_tok003_sentmix@noise_distant \\
           nb_uniform@noise_distant --reference nb_clean --seeds 3,4 [--output FILE.json]

The share of the gap is taken against the reference's mean over every seed it has run (the
clean upper bound is not re-run per seed): (mean system - mean baseline) / (mean reference -
mean baseline), the baseline and system means over the seeds asked for.
"""
import statistics
from pathlib import Path
from typing import Annotated, Dict, List, Optional

import typer

from bench import Benchmark, System, load_benchmark, read_json, result_path, write_json
from collect import paired, score


def system_named(bench: Benchmark, name: str) -> System:
    if name not in bench.systems:
        raise typer.BadParameter(f"{name!r} is not a system of systems.yml (NAME@VARIANT for NoiseBench's)")
    return bench.systems[name]


def seed_scores(bench: Benchmark, scale: str, name: str, seeds: List[int]) -> Dict[int, float]:
    """The scores of the runs of one system (NAME or NAME@VARIANT) that exist, by seed."""
    system = system_named(bench, name)
    found = {seed: score(read_json(result_path(bench.root, scale, system, seed))) for seed in seeds}
    return {seed: value for seed, value in found.items() if value is not None}


def seeds_run(bench: Benchmark, scale: str, name: str) -> List[int]:
    """Every seed a system has a result for (seedN.json in its results folder)."""
    folder = result_path(bench.root, scale, system_named(bench, name), 0).parent
    return sorted(int(p.stem[len("seed"):]) for p in folder.glob("seed*.json") if p.stem[len("seed"):].isdigit())


def compare(system: Dict[int, float], baseline: Dict[int, float], reference: Dict[int, float]) -> Dict:
    """Seed-paired comparison of system and baseline, on the seeds both have."""
    seeds = sorted(set(system) & set(baseline))
    if not seeds:
        raise ValueError("the system and its baseline share no seed that has run")
    diffs = [round(system[s] - baseline[s], 2) for s in seeds]
    out: Dict = {
        "seeds": seeds,
        "system": [system[s] for s in seeds],
        "baseline": [baseline[s] for s in seeds],
        "difference": paired(diffs),
    }
    if reference:
        reference_mean = statistics.mean(reference.values())
        gap = reference_mean - statistics.mean(out["baseline"])
        out["reference_mean"] = reference_mean
        out["reference_seeds"] = sorted(reference)
        out["share_of_mean_gap"] = out["difference"]["mean"] / gap if gap > 0 else None
    return out


def main(
    system: Annotated[str, typer.Argument(help="The system, NAME@VARIANT for NoiseBench's")],
    baseline: Annotated[str, typer.Argument(help="Its baseline, the same way")],
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds to pair on")] = "0,1,2",
    reference: Annotated[Optional[str], typer.Option(help="The upper bound (NAME; @VARIANT taken from the system's if left out), for the share of the gap")] = None,
    scale: Annotated[str, typer.Option(help="The scale the runs belong to")] = "full",
    output: Annotated[Optional[Path], typer.Option(help="Also write the numbers here as JSON")] = None,
) -> Dict:
    bench = load_benchmark()
    wanted = [int(s) for s in seeds.split(",") if s.strip()]
    if reference and "@" not in reference and "@" in system and reference not in bench.systems:
        reference = f"{reference}@{system.split('@', 1)[1]}"
    result = compare(
        seed_scores(bench, scale, system, wanted),
        seed_scores(bench, scale, baseline, wanted),
        seed_scores(bench, scale, reference, seeds_run(bench, scale, reference)) if reference else {},
    )
    result.update({"system": system, "baseline": baseline, "reference": reference, "system_scores": result.pop("system"),
                   "baseline_scores": result.pop("baseline")})
    diff = result["difference"]
    print(f"{system} against {baseline}, seeds {result['seeds']}")
    for seed, mine, base in zip(result["seeds"], result["system_scores"], result["baseline_scores"]):
        print(f"  seed {seed}: {mine:.2f} against {base:.2f} ({mine - base:+.2f})")
    t = f"{diff['t']:.2f}" if diff["t"] is not None else "n/a"
    print(f"  difference {diff['mean']:+.2f} (sd {diff['sd'] or 0:.2f}, t {t} with {diff['df']} df)")
    if result.get("share_of_mean_gap") is not None:
        print(f"  share of the mean gap to {reference} ({result['reference_mean']:.2f}, seeds {result['reference_seeds']}): "
              f"{100 * result['share_of_mean_gap']:.1f}%")
    if output:
        write_json(output, result)
    return result


if __name__ == "__main__":
    typer.run(main)
