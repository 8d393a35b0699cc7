"""Where training memory goes: resident memory (RSS) of `spacy train` step by step, for
each value of the rsft components' `release_memory` setting, one fresh process per value.

usage: python scripts/train_memory.py CONFIG OUTPUT.json [--steps 300] [--settings 0,1,20]
                                      [spacy train overrides, e.g. --paths.train X]

Each setting trains CONFIG for --steps updates (evaluating as the config says) in its own
subprocess, with `release_memory` set to it on every rsft component (0: glibc keeps what it
frees; N: it goes back to the OS every N updates and after every evaluation), and records
the RSS before every update and after every evaluation (with saving), the highest RSS
between two probes (sampled every 0.1 s), and words/s.

`ab` is the speed comparison in one process, so that whatever else the machine does slows
both alike: release after every update in odd blocks of 10 updates, never in even ones,
and the median seconds per update of each (`speed` in the result).

Numbered settings and `ab` switch off what the components do by default since the `mmap`
measurement (`spacy_rsft.util.map_large_blocks`), so that they measure glibc's own
allocator. `mmap` trains with release_memory 0 and glibc's mmap threshold fixed at 1 MB:
every block of 1 MB or more (a transformer's activations and gradients) is mapped on its
own and unmapped when freed, so the heap keeps only small objects and cannot fragment
around tensors. glibc's default threshold adapts upwards to the largest block freed so far
(up to 32 MB), which puts nearly every tensor of this model on the heap. `abmmap` is its
speed comparison in one process: the 1 MB threshold in odd blocks, 32 MB in even ones.
`mmapN` (e.g. `mmap20`) is `mmap` with release_memory N: what is left in the heap is also
trimmed every N updates.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List

from bench import write_json
from train import heap_record

PROBE = "spacy-rsft-bench.rss_probe.v1"
NAMED_SETTINGS = ("ab", "mmap", "abmmap")
LOGGER = "spacy-rsft-bench.rss_logger.v1"
_probes: List[Dict] = []


def rss_mb() -> float:
    with open("/proc/self/statm") as file_:
        return int(file_.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Sampler(threading.Thread):
    """The highest RSS seen since the last probe, sampled every 0.1 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.high = 0.0
        self.start_time = time.perf_counter()

    def run(self) -> None:
        while True:
            self.high = max(self.high, rss_mb())
            time.sleep(0.1)

    def take(self) -> float:
        high, self.high = self.high, rss_mb()
        return round(high, 1)


MMAP_SMALL, MMAP_LARGE = 1 << 20, 32 << 20


def set_mmap_threshold(size: int) -> None:
    """Fix glibc's mmap threshold; the components then leave it as set here."""
    from spacy_rsft import util

    util._large_blocks_mapped = True
    if not util.set_mmap_threshold(size):
        raise RuntimeError("mallopt(M_MMAP_THRESHOLD) failed")


def mmap_release(setting: str) -> int:
    """release_memory of a named setting: N for `mmapN`, else 0."""
    return int(setting[4:]) if setting.startswith("mmap") and setting[4:].isdigit() else 0


def is_named(setting: str) -> bool:
    return setting in NAMED_SETTINGS or (setting.startswith("mmap") and setting[4:].isdigit())


def alternate_mmap(step: int, block: int) -> int:
    """`abmmap`: the 1 MB threshold in odd blocks, 32 MB in even ones. RETURNS 1 or 0."""
    value = 1 if (step // block) % 2 else 0
    set_mmap_threshold(MMAP_SMALL if value else MMAP_LARGE)
    return value


def alternate_release(nlp, step: int, block: int) -> int:
    """The speed comparison (`--settings ab`): release memory after every update in odd
    blocks of `block` updates, never in even ones. RETURNS the setting now in force."""
    value = 1 if (step // block) % 2 else 0
    for _, proc in nlp.pipeline:
        if hasattr(proc, "release_memory"):
            proc.release_memory = value
    return value


def speed_by_setting(probes: List[Dict], block: int) -> Dict:
    """Median seconds per update for each setting of the `ab` run. An update's time runs
    from its probe to the next one; the first update of a block (it still pays for the
    block before: faults after a release, or a heap to trim) and updates with an
    evaluation are left out."""
    evaluated = {p["step"] for p in probes if p["event"] == "evaluation"}
    updates = [p for p in probes if p["event"] == "update"]
    seconds: Dict[int, List[float]] = {0: [], 1: []}
    for this, after in zip(updates, updates[1:]):
        if this["step"] % block == 0 or this["step"] in evaluated or after["step"] != this["step"] + 1:
            continue
        seconds[this["release_memory"]].append(after["seconds"] - this["seconds"])
    medians = {str(k): round(statistics.median(v), 3) if v else None for k, v in seconds.items()}
    return {
        "seconds_per_update_median": medians,
        "updates_counted": {str(k): len(v) for k, v in seconds.items()},
        "release_vs_keep_time": round(medians["1"] / medians["0"], 3) if medians["0"] and medians["1"] else None,
    }


def train_one(config: str, overrides: Dict, setting, block: int = 10) -> Dict:
    from spacy import util
    from spacy.cli.train import train
    from spacy.training.loggers import console_logger_v3

    sampler = Sampler()
    sampler.start()

    @util.registry.callbacks(PROBE)
    def make_probe():
        def probe(nlp, args):
            record = {"event": "update", "step": args["step"], "seconds": round(time.perf_counter() - sampler.start_time, 3),
                      "rss_mb": round(rss_mb(), 1), "high_since_last_mb": sampler.take()}
            if setting == "ab":
                record["release_memory"] = alternate_release(nlp, args["step"], block)
            elif setting == "abmmap":  # the same record field: which half of the A/B
                record["release_memory"] = alternate_mmap(args["step"], block)
            _probes.append(record)

        return probe

    @util.registry.loggers(LOGGER)
    def make_logger():
        console = console_logger_v3(progress_bar=None, console_output=True, output_file=None)

        def setup(nlp, stdout=sys.stdout, stderr=sys.stderr):
            log_step, finalize = console(nlp, stdout, stderr)

            def log(info):
                log_step(info)
                if info is not None:
                    _probes.append(
                        {"event": "evaluation", "step": info["step"], "words": info["words"],
                         "seconds": round(time.perf_counter() - sampler.start_time, 2), "score": info["score"],
                         "rss_mb": round(rss_mb(), 1), "high_since_last_mb": sampler.take(), **heap_record()}
                    )

            return log, finalize

        return setup

    overrides = dict(overrides)
    overrides["training.before_update"] = {"@callbacks": PROBE}
    overrides["training.logger"] = {"@loggers": LOGGER}
    for name, component in util.load_config(config)["components"].items():
        if str(component.get("factory", "")).startswith("rsft_"):
            overrides[f"components.{name}.release_memory"] = setting if isinstance(setting, int) else mmap_release(setting)
    if str(setting).startswith("mmap"):
        set_mmap_threshold(MMAP_SMALL)
    elif setting != "abmmap":  # glibc's adaptive threshold: the components must not fix it
        from spacy_rsft import util

        util._large_blocks_mapped = True
    with tempfile.TemporaryDirectory() as output:
        start = time.perf_counter()
        train(Path(config), Path(output), overrides=overrides)
        seconds = time.perf_counter() - start
    updates = [p for p in _probes if p["event"] == "update"]
    speed = speed_by_setting(_probes, block) if setting in ("ab", "abmmap") else None
    evaluations = [p for p in _probes if p["event"] == "evaluation"]
    return {
        "setting": setting,
        "wall_seconds": round(seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "words_per_second": round(evaluations[-1]["words"] / evaluations[-1]["seconds"]) if evaluations else None,
        "probes": _probes,
        "updates": len(updates),
        "speed": speed,
    }


def summarize(run: Dict) -> Dict:
    """Peak RSS over each quarter of the run, so growth over steps shows as a rising row."""
    updates = [p for p in run["probes"] if p["event"] == "update"]
    quarters = [updates[i * len(updates) // 4 : (i + 1) * len(updates) // 4] for i in range(4)]
    return {
        "setting": run["setting"],
        "speed": run.get("speed"),
        "peak_rss_mb": run["peak_rss_mb"],
        "words_per_second": run["words_per_second"],
        "rss_before_first_update_mb": updates[0]["rss_mb"] if updates else None,
        "peak_by_quarter_mb": [max((p["high_since_last_mb"] for p in q), default=None) for q in quarters],
        "peak_after_evaluations_mb": max((p["high_since_last_mb"] for p in run["probes"] if p["event"] == "evaluation"), default=None),
        # [step, rss, glibc heap in use, heap free but kept, mmapped, torch tensors held] (MB)
        "heap_at_evaluations_mb": [
            [p["step"], p["rss_mb"], p.get("heap_in_use_mb"), p.get("heap_free_mb"), p.get("heap_mmapped_mb"), p.get("tensor_mb")]
            for p in run["probes"] if p["event"] == "evaluation"
        ],
    }


def main() -> None:
    from spacy.cli._util import parse_config_overrides

    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("output")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--settings", default="0,1", help="Comma-separated release_memory values")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    overrides = parse_config_overrides(list(rest))  # it empties the list it is given
    overrides["training.max_steps"] = args.steps
    if args.child is not None:  # one setting, in this fresh process; OUTPUT is its own file
        setting = args.child if is_named(args.child) else int(args.child)
        write_json(Path(args.output), train_one(args.config, overrides, setting))
        return
    runs = []
    for setting in args.settings.split(","):
        if not setting.isdigit() and not is_named(setting):
            sys.exit(f"--settings takes release_memory values (integers >= 0), {', '.join(NAMED_SETTINGS)} or mmapN; got {setting!r}")
        with tempfile.NamedTemporaryFile(suffix=".json") as result:
            command = [sys.executable, __file__, args.config, result.name, "--steps", str(args.steps), "--child", setting, *rest]
            subprocess.run(command, check=True)
            runs.append(json.loads(Path(result.name).read_text()))
    write_json(Path(args.output), {
        "config": args.config, "steps": args.steps, "overrides": rest,
        "summary": [summarize(run) for run in runs], "runs": runs,
    })


if __name__ == "__main__":
    main()
