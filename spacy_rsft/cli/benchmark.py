"""`python -m spacy_rsft benchmark`: the project's `benchmark` workflow, at full scale or
--quick, for one or more seeds, then the report.

Every system is its own project command with its own outputs, so an interrupted run
resumes where it stopped: weasel skips the commands whose outputs are up to date.
"""
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

# A tenth of the data (bench-data writes the *_10pct files), smaller batches and short
# runs: 50 updates of 500 words are 1.2 epochs of the subset, so the loss-based targets
# act after their warm-up epoch; one speed run per system. Measured: the whole --quick
# workflow in under 15 minutes on 2 CPU cores (project/benchmarks/quick/results.md).
QUICK_VARS = {
    "bench_train": "corpus/conll/train_10pct.spacy",
    "bench_dev": "corpus/conll/valid_10pct.spacy",
    "bench_el_train": "corpus/aida/train_10pct.spacy",
    "bench_el_dev": "corpus/aida/testa_10pct.spacy",
    "bench_max_steps": 50,
    "bench_warmup_steps": 5,
    "bench_eval_frequency": 25,
    "bench_el_max_steps": 20,
    "bench_batch_size": 500,
    "bench_speed_runs": 1,
}
# Left out of --quick to keep it under 15 minutes: the noise experiment repeated with
# one example per sentence (three more runs). tests/test_benchmark.py runs its data step.
QUICK_SKIP = {"bench-sent-data", "bench-sent-uniform", "bench-noisy-sent-uniform", "bench-noisy-sent-denoise"}
# What the extra seeds rerun: the uniform-vs-RSFT comparisons (the anchors and the EL
# systems are run once).
SEED_COMMANDS = [
    "bench-noise-data",
    "bench-ner-uniform",
    "bench-ner-hard",
    "bench-ner-denoise",
    "bench-ner-balanced",
    "bench-noisy-uniform",
    "bench-noisy-denoise",
    "bench-rare-uniform",
    "bench-rare-balanced",
]


def benchmark_overrides(quick: bool, seed: int, data_dir: str = None) -> Dict[str, object]:
    """weasel variable overrides for one seed of the full or the quick benchmark."""
    overrides: Dict[str, object] = {f"vars.{k}": v for k, v in QUICK_VARS.items()} if quick else {}
    overrides["vars.seed"] = seed
    if quick:
        overrides["vars.bench_dir"] = f"training/benchmark_quick_seed{seed}"
    elif seed != 0:
        overrides["vars.bench_dir"] = f"training/benchmark_seed{seed}"
    else:
        overrides["vars.bench_dir"] = "training/benchmark"  # the project's own default
    overrides["vars.bench_report_dir"] = "benchmarks/quick" if quick else "benchmarks"
    if data_dir is not None:
        overrides["vars.data_dir"] = data_dir
    return overrides


def workflow_commands(project_dir: Path, quick: bool) -> List[str]:
    """The `benchmark` workflow's commands in order, less QUICK_SKIP for --quick."""
    from weasel.util import load_project_config

    commands = load_project_config(project_dir)["workflows"]["benchmark"]
    return [c for c in commands if not (quick and c in QUICK_SKIP)]


def run_benchmark(project_dir: Path, quick: bool, seeds: List[int], data_dir: str = None) -> Path:
    """Run the workflow for the first seed, the RSFT comparisons for the others, and
    write the report. RETURNS (Path): The report directory."""
    from weasel.cli.run import project_run

    if not seeds:
        seeds = [0]
    for i, seed in enumerate(seeds):
        overrides = benchmark_overrides(quick, seed, data_dir)
        commands = workflow_commands(project_dir, quick) if i == 0 else SEED_COMMANDS
        for command in commands:
            project_run(project_dir, command, overrides=overrides)
    first = benchmark_overrides(quick, seeds[0], data_dir)
    report_dir = Path(str(first["vars.bench_report_dir"]))
    cmd = [sys.executable, "scripts/bench_report.py", str(first["vars.bench_dir"]), str(report_dir)]
    if data_dir is not None:
        cmd += ["--data-dir", data_dir]
    if len(seeds) > 1:
        cmd += ["--seed-dirs"] + [str(benchmark_overrides(quick, s)["vars.bench_dir"]) for s in seeds[1:]]
    if quick:
        cmd += ["--title", "spacy-rsft benchmark, --quick (a tenth of the data, short runs: checks the benchmark, not the systems)"]
    subprocess.run(cmd, cwd=project_dir, check=True)
    return project_dir / report_dir
