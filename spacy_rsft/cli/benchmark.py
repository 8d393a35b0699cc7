"""`python -m spacy_rsft benchmark`: the project's `benchmark` workflow at full scale or
--quick, or only its uniform-vs-RSFT comparisons (--spread), for one or more seeds, then
the report.

Every system is its own project command with its own outputs, so an interrupted run
resumes where it stopped: weasel skips the commands whose outputs are up to date.
"""
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

# --quick: a tenth of the data (bench-data writes the *_10pct files), batches of 500 words,
# 50 updates (one epoch of the subset) and one speed run per system: a check that every
# command of the benchmark works, in under 15 minutes on 2 CPU cores (measured: 788 s).
# One epoch is all warm-up for the loss-based targets, so hard and denoise equal uniform
# there: the comparison is --spread's job.
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
# --spread: the uniform-vs-RSFT comparisons only (SEED_COMMANDS), on the same tenth of the
# data but for about as many epochs as the full run (100 updates of ~420 words: 2 epochs
# of the subset; the full run is 2.2 epochs), for every seed: the seed-to-seed spread that
# the full scale cannot afford on 2 cores.
SPREAD_VARS = dict(QUICK_VARS, bench_max_steps=100, bench_warmup_steps=10)
# The uniform-vs-RSFT comparisons the issue asks a spread for: efficiency (hard, denoise
# against uniform), label noise and imbalance. bench-data must have run.
SEED_COMMANDS = [
    "bench-noise-data",
    "bench-ner-uniform",
    "bench-ner-hard",
    "bench-ner-denoise",
    "bench-noisy-uniform",
    "bench-noisy-denoise",
    "bench-rare-uniform",
    "bench-rare-balanced",
]
SCALES = ("full", "quick", "spread")


def benchmark_overrides(scale: str, seed: int, data_dir: str = None) -> Dict[str, object]:
    """weasel variable overrides for one seed of the full, the quick or the spread benchmark."""
    if scale not in SCALES:
        raise ValueError(f"benchmark scale must be one of {SCALES}, not {scale!r}")
    scale_vars = {"full": {}, "quick": QUICK_VARS, "spread": SPREAD_VARS}[scale]
    overrides: Dict[str, object] = {f"vars.{k}": v for k, v in scale_vars.items()}
    overrides["vars.seed"] = seed
    if scale != "full":
        overrides["vars.bench_dir"] = f"training/benchmark_{scale}_seed{seed}"
    elif seed != 0:
        overrides["vars.bench_dir"] = f"training/benchmark_seed{seed}"
    else:
        overrides["vars.bench_dir"] = "training/benchmark"  # the project's own default
    overrides["vars.bench_report_dir"] = "benchmarks" if scale == "full" else f"benchmarks/{scale}"
    if data_dir is not None:
        overrides["vars.data_dir"] = data_dir
    return overrides


TITLES = {
    "quick": "spacy-rsft benchmark, --quick (a tenth of the data, one epoch each: checks the benchmark, not the systems)",
    "spread": "spacy-rsft benchmark, --spread (a tenth of the data, 2 epochs, uniform vs RSFT over seeds)",
}


def run_benchmark(project_dir: Path, scale: str, seeds: List[int], data_dir: str = None) -> Path:
    """Run the workflow (full, quick) or bench-data and the comparisons (spread) for the
    first seed, the comparisons for the others, and write the report.
    RETURNS (Path): The report directory."""
    from weasel.cli.run import project_run

    if not seeds:
        seeds = [0]
    for i, seed in enumerate(seeds):
        overrides = benchmark_overrides(scale, seed, data_dir)
        if i > 0:
            commands = SEED_COMMANDS
        elif scale == "spread":
            commands = ["bench-data"] + SEED_COMMANDS
        else:
            commands = ["benchmark"]  # the workflow
        for command in commands:
            project_run(project_dir, command, overrides=overrides)
    first = benchmark_overrides(scale, seeds[0], data_dir)
    report_dir = Path(str(first["vars.bench_report_dir"]))
    cmd = [sys.executable, "scripts/bench_report.py", str(first["vars.bench_dir"]), str(report_dir)]
    if data_dir is not None:
        cmd += ["--data-dir", data_dir]
    if len(seeds) > 1:
        cmd += ["--seed-dirs"] + [str(benchmark_overrides(scale, s)["vars.bench_dir"]) for s in seeds[1:]]
    if scale in TITLES:
        seed_arg = f" --seeds {','.join(str(s) for s in seeds)}" if len(seeds) > 1 else ""
        cmd += ["--title", TITLES[scale], "--reproduce", f"python -m spacy_rsft benchmark project --{scale}{seed_arg}"]
    subprocess.run(cmd, cwd=project_dir, check=True)
    return project_dir / report_dir
