"""Collect the benchmark's finished systems into results.md, results.json and PNG curves.

usage: python scripts/bench_report.py BENCH_DIR REPORT_DIR [--data-dir DIR]
                                      [--seed-dirs DIR ...] [--title TEXT]

BENCH_DIR holds one folder per system (bench_train.py's train.json, inference_speed.py's
speed.json, el_evaluate.py's / el-baseline's metrics.json). Systems that have not run yet
are listed as missing, so the report can be written after any part of the benchmark.
--seed-dirs: the same benchmark run with other seeds (for the spread of uniform vs RSFT).
"""
import argparse
import json
import os
import platform
import statistics
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Dict, List, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from spacy_rsft.io import atomic_output  # noqa: E402

NER_SYSTEMS = [
    ("ner_cnn", "spaCy `ner`, CNN tok2vec (anchor)"),
    ("ner_trf", "spacy-transformers MiniLM + spaCy `ner` (anchor)"),
    ("ner_uniform", "`rsft_ner`, uniform reader"),
    ("ner_hard", "`rsft_ner`, RSFT `hard`"),
    ("ner_denoise", "`rsft_ner`, RSFT `denoise`"),
    ("ner_balanced", "`rsft_ner`, RSFT `balanced`"),
]
RSFT_TARGETS = ["ner_hard", "ner_denoise", "ner_balanced"]
# The noise and imbalance experiments; the sent_* systems train on the same sets split
# into one example per sentence.
EXPERIMENT_SYSTEMS = [
    "noisy_uniform",
    "noisy_denoise",
    "sent_uniform",
    "noisy_sent_uniform",
    "noisy_sent_denoise",
    "rare_uniform",
    "rare_balanced",
]
# (clean uniform, noisy uniform, noisy denoise, train examples: clean, noisy) per granularity
NOISE_SETUPS = {
    "documents": ("ner_uniform", "noisy_uniform", "noisy_denoise", None, "train_noisy.spacy"),
    "sentences": ("sent_uniform", "noisy_sent_uniform", "noisy_sent_denoise", "train_sents.spacy", "train_noisy_sents.spacy"),
}
LABELS = ["PER", "LOC", "ORG", "MISC"]
EL_SYSTEMS = [
    ("el_inlinks", "prior baseline: most in-links"),
    ("el_prior", "prior baseline: train p(e\\|m), then in-links"),
    ("el_spacy", "spaCy `entity_linker` (anchor)"),
    ("el_uniform", "`rsft_entity_linker`, uniform reader"),
    ("el_hard", "`rsft_entity_linker`, RSFT `hard`"),
]
FULL_REPRODUCE = (
    "Reproduce: `cd project && python -m spacy project run benchmark` (every finished system is\n"
    "skipped; `python -m spacy project run bench-report` rewrites this file at any point), or\n"
    "`python -m spacy_rsft benchmark` from the repository root. Systems listed as *not run yet*\n"
    "had not finished when this report was written."
)
VERSIONS = ["spacy", "spacy-transformers", "transformers", "torch", "thinc", "spacy-rsft"]


def read_json(path: Path) -> Optional[Dict]:
    return json.loads(path.read_text(encoding="utf8")) if path.exists() else None


def atomic_write(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf8")


def save_figure(fig, path: Path) -> None:
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)


def load_system(bench_dir: Path, name: str) -> Optional[Dict]:
    """Everything recorded for one system, or None when it has not finished."""
    folder = bench_dir / name
    train = read_json(folder / "train.json")
    metrics = read_json(folder / "metrics.json")
    if train is None and metrics is None:
        return None
    result: Dict = {"name": name}
    if train is not None:
        best = best_evaluation(train)
        result.update(
            {
                "steps": train["steps"],
                "best_step": train["best_step"],
                "train_wall_seconds": train["wall_seconds"],
                "train_words_per_second": train["train_words_per_second"],
                "train_peak_rss_mb": train["peak_rss_mb"],
                "curve": [(e["step"], e["score"], e["seconds"]) for e in train["evaluations"]],
                "best_scores": flat_scores(best["scores"]) if best else {},
            }
        )
    speed = read_json(folder / "speed.json")
    if speed is not None:
        result["inference_words_per_second"] = speed["words_per_second_median"]
        result["inference_words_per_second_runs"] = speed["words_per_second_runs"]
        result["inference_peak_rss_mb"] = speed["peak_rss_mb"]
    if metrics is not None:
        result["metrics"] = metrics
    stats = folder / "sampler_stats.jsonl"
    if stats.exists():
        epochs = [json.loads(line) for line in stats.read_text(encoding="utf8").splitlines() if line.strip()]
        # epochs the target actually sampled (past warm-up); 0 means it trained as uniform
        result["sampled_epochs"] = sum(1 for e in epochs if not e.get("warmup"))
    return result


def best_evaluation(train: Dict) -> Optional[Dict]:
    evaluations = train["evaluations"]
    return max(evaluations, key=lambda e: (e["score"], -e["step"])) if evaluations else None


def flat_scores(scores: Dict) -> Dict[str, float]:
    """Micro P/R/F and per-label F of spaCy's ents scores, in percent."""
    flat = {key: 100 * scores[key] for key in ("ents_f", "ents_p", "ents_r") if scores.get(key) is not None}
    for label, values in (scores.get("ents_per_type") or {}).items():
        flat[f"{label}_f"] = 100 * values["f"]
    return flat


def steps_to_reach(curve: List, score: float) -> Optional[int]:
    """First evaluated step with at least this score."""
    for step, value, _ in curve:
        if value >= score - 1e-12:
            return step
    return None


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def minutes(seconds: Optional[float]) -> str:
    return "–" if seconds is None else f"{seconds / 60:.1f} min"


def ner_table(systems: Dict[str, Dict], rows) -> List[str]:
    lines = [
        "| system | dev F1 | P | R | PER | LOC | ORG | MISC | best step | train time | train words/s | infer words/s (median of 3) | peak RSS train / infer |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, title in rows:
        s = systems.get(name)
        if s is None or "best_scores" not in s:
            lines.append(f"| {title} | not run yet | | | | | | | | | | | |")
            continue
        b = s["best_scores"]
        rss = f"{fmt(s.get('train_peak_rss_mb'))} / {fmt(s.get('inference_peak_rss_mb'))} MB"
        lines.append(
            f"| {title} | **{fmt(b.get('ents_f'), 2)}** | {fmt(b.get('ents_p'))} | {fmt(b.get('ents_r'))} | "
            + " | ".join(fmt(b.get(f"{label}_f")) for label in LABELS)
            + f" | {fmt(s['best_step'])} / {fmt(s['steps'])} | {minutes(s['train_wall_seconds'])} | "
            f"{fmt(s['train_words_per_second'])} | {fmt(s.get('inference_words_per_second'))} | {rss} |"
        )
    return lines


def efficiency(systems: Dict[str, Dict]) -> Dict:
    uniform = systems.get("ner_uniform")
    if not uniform or "curve" not in uniform:
        return {}
    target_score = max(score for _, score, _ in uniform["curve"])
    uniform_steps = steps_to_reach(uniform["curve"], target_score)
    out = {"uniform_best_f1": 100 * target_score, "uniform_steps": uniform_steps, "targets": {}}
    for name in RSFT_TARGETS:
        s = systems.get(name)
        if not s or "curve" not in s:
            continue
        steps = steps_to_reach(s["curve"], target_score)
        out["targets"][name] = {
            "sampled_epochs": s.get("sampled_epochs"),
            "steps": steps,
            "ratio": round(steps / uniform_steps, 3) if steps and uniform_steps else None,
            "best_f1": 100 * max(score for _, score, _ in s["curve"]),
        }
    return out


def noise_summary(systems: Dict[str, Dict], setup: str = "documents") -> Dict:
    clean, noisy, denoise = (systems.get(n) for n in NOISE_SETUPS[setup][:3])
    if not (clean and noisy and denoise):
        return {}
    f_clean, f_noisy, f_denoise = (s["best_scores"]["ents_f"] for s in (clean, noisy, denoise))
    cost = f_clean - f_noisy
    return {
        "clean_uniform_f1": f_clean,
        "noisy_uniform_f1": f_noisy,
        "noisy_denoise_f1": f_denoise,
        "f1_cost_of_noise": cost,
        "recovered_share": (f_denoise - f_noisy) / cost if cost > 0 else None,
    }


def noise_acceptance(bench_dir: Path, noise_report: Optional[Dict], setup: str = "documents") -> List[Dict]:
    """Did `denoise` reject the noisier examples? Per sampled epoch: the acceptance rate of
    the examples with more than the median share of corrupted entities vs the others, and
    the mean corrupted share of the accepted vs the rejected examples."""
    _, _, system, clean_name, noisy_name = NOISE_SETUPS[setup]
    stats_path = bench_dir / system / "sampler_stats.jsonl"
    noisy_path = bench_dir / "data" / noisy_name
    if noise_report is None or not stats_path.exists() or not noisy_path.exists():
        return []
    clean_path = Path(noise_report["input"]) if clean_name is None else bench_dir / "data" / clean_name
    import numpy
    import spacy
    from spacy.tokens import DocBin

    vocab = spacy.blank("en").vocab
    clean = list(DocBin().from_disk(clean_path).get_docs(vocab))
    noisy = list(DocBin().from_disk(noisy_path).get_docs(vocab))
    share = numpy.zeros(len(clean))
    has_ents = numpy.zeros(len(clean), dtype=bool)
    for i, (before, after) in enumerate(zip(clean, noisy)):
        gold = {(e.start, e.end, e.label_) for e in before.ents}
        kept = {(e.start, e.end, e.label_) for e in after.ents}
        has_ents[i] = bool(gold)
        share[i] = len(gold - kept) / len(gold) if gold else 0.0
    noisier = has_ents & (share > numpy.median(share[has_ents]))
    cleaner = has_ents & ~noisier
    rows = []
    for line in stats_path.read_text(encoding="utf8").splitlines():
        epoch = json.loads(line)
        if epoch["warmup"] or not epoch["scored"]:
            continue
        accepted = numpy.zeros(len(clean), dtype=bool)
        accepted[epoch["accepted_indices"]] = True
        rows.append(
            {
                "epoch": epoch["epoch"],
                "accept_rate_noisier_half": float(accepted[noisier].mean()),
                "accept_rate_cleaner_half": float(accepted[cleaner].mean()),
                "corrupted_share_accepted": float(share[accepted & has_ents].mean()),
                "corrupted_share_rejected": float(share[~accepted & has_ents].mean()) if (~accepted & has_ents).any() else None,
            }
        )
    return rows


def target_checks(results: Dict) -> List[Dict]:
    """The issue's targets, each with the measured value and whether it was met."""
    systems, checks = results["systems"], []

    def best_f1(name: str) -> Optional[float]:
        return (systems.get(name) or {}).get("best_scores", {}).get("ents_f")

    ours, trf, cnn = best_f1("ner_uniform"), best_f1("ner_trf"), best_f1("ner_cnn")
    if ours is not None and trf is not None and cnn is not None:
        margin = ours - max(trf, cnn)
        checks.append({"target": "rsft_ner dev F1 at least 1 point above both anchors", "value": f"{margin:+.2f} F1 over the better anchor", "met": margin >= 1.0})
    speeds = [(systems.get(n) or {}).get("inference_words_per_second") for n in ("ner_uniform", "ner_trf")]
    if None not in speeds:
        checks.append({"target": "rsft_ner inference words/s at least the spacy-transformers pipeline's", "value": f"{speeds[0]:,} vs {speeds[1]:,} ({speeds[0] / speeds[1]:.2f}x)", "met": speeds[0] >= speeds[1]})
    eff = results["efficiency"].get("targets") or {}
    ratios = [e["ratio"] for e in eff.values() if e["ratio"] is not None]
    if eff:
        best = min(ratios) if ratios else None
        value = f"best target needs {100 * best:.0f}% of uniform's updates" if best is not None else "no target reached uniform's best"
        checks.append({"target": "an RSFT target reaches uniform's best dev F1 with at most 60% of its updates", "value": value, "met": best is not None and best <= 0.6})
    for key, unit in (("noise", "10-sentence documents"), ("noise_sentences", "sentences")):
        noise = results.get(key)
        if noise and noise.get("recovered_share") is not None:
            checks.append({"target": f"denoise recovers at least half of the F1 that 30% noise costs uniform (examples: {unit})", "value": f"{100 * noise['recovered_share']:.0f}% recovered", "met": noise["recovered_share"] >= 0.5})
    el = {n: ((systems.get(n) or {}).get("metrics") or {}).get("nel_inkb_accuracy") for n, _ in EL_SYSTEMS}
    ours_el = max((v for n, v in el.items() if n in ("el_uniform", "el_hard") and v is not None), default=None)
    others = [v for n, v in el.items() if n in ("el_inlinks", "el_prior", "el_spacy") and v is not None]
    if ours_el is not None and others:
        checks.append({"target": "EL in-KB accuracy at least 0.90, above the priors and spaCy's entity_linker", "value": f"{ours_el:.3f} vs best other {max(others):.3f}", "met": ours_el >= 0.9 and ours_el > max(others)})
    return checks


def plot_curves(systems: Dict[str, Dict], names: List[str], path: Path, title: str) -> bool:
    present = [n for n in names if systems.get(n) and systems[n].get("curve")]
    if not present:
        return False
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name in present:
        steps = [step for step, _, _ in systems[name]["curve"]]
        scores = [100 * score for _, score, _ in systems[name]["curve"]]
        ax.plot(steps, scores, marker="o", label=name)
    ax.set_xlabel("update steps")
    ax.set_ylabel("dev F1" if not name.startswith("el_") else "dev score")
    ax.set_title(title)
    low = min(100 * score for n in present for step, score, _ in systems[n]["curve"] if step > 0)
    ax.set_ylim(max(0, low - 5), 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
    return True


def seed_spread(dirs: List[Path]) -> Dict[str, Dict]:
    """Best dev F1 of every NER system over the seed runs: mean, sd, values and the run
    folder of each value."""
    values: Dict[str, List[float]] = {}
    runs: Dict[str, List[str]] = {}
    for folder in dirs:
        for name in [n for n, _ in NER_SYSTEMS] + EXPERIMENT_SYSTEMS:
            s = load_system(folder, name)
            if s and s.get("best_scores"):
                values.setdefault(name, []).append(round(s["best_scores"]["ents_f"], 2))
                runs.setdefault(name, []).append(str(folder))
    return {
        name: {
            "mean": statistics.mean(v),
            "sd": statistics.stdev(v) if len(v) > 1 else None,
            "values": v,
            "runs": runs[name],
        }
        for name, v in values.items()
    }


# (RSFT system, its uniform baseline) for the paired differences over seeds
PAIRS = [
    ("ner_hard", "ner_uniform"),
    ("ner_denoise", "ner_uniform"),
    ("ner_balanced", "ner_uniform"),
    ("noisy_denoise", "noisy_uniform"),
    ("noisy_sent_denoise", "noisy_sent_uniform"),
    ("rare_balanced", "rare_uniform"),
]


def paired_differences(spread: Dict[str, Dict]) -> Dict[str, Dict]:
    """RSFT minus uniform best dev F1, seed by seed, where both ran for the same seeds."""
    out = {}
    for rsft, uniform in PAIRS:
        a, b = spread.get(rsft), spread.get(uniform)
        if not a or not b:
            continue
        baseline = dict(zip(b["runs"], b["values"]))
        diffs = [round(x - baseline[run], 2) for run, x in zip(a["runs"], a["values"]) if run in baseline]
        if len(diffs) < 2:
            continue
        mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
        # paired t statistic, n - 1 degrees of freedom: with 3 seeds |t| must pass 4.3 for
        # two-sided p < 0.05
        t = mean / (sd / len(diffs) ** 0.5) if sd > 0 else None
        out[f"{rsft} - {uniform}"] = {"mean": mean, "sd": sd, "t": t, "df": len(diffs) - 1, "values": diffs}
    return out


def package_versions() -> Dict[str, str]:
    out = {}
    for name in VERSIONS:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bench_dir", type=Path)
    parser.add_argument("report_dir", type=Path)
    parser.add_argument("--data-dir", default="../../shared/data")
    parser.add_argument("--seed-dirs", type=Path, nargs="*", default=[])
    parser.add_argument("--title", default="spacy-rsft benchmark")
    parser.add_argument("--reproduce", default=None, help="The command that reproduces this report (default: the full workflow)")
    args = parser.parse_args()
    names = [n for n, _ in NER_SYSTEMS] + EXPERIMENT_SYSTEMS
    names += [n for n, _ in EL_SYSTEMS]
    systems = {n: s for n in names if (s := load_system(args.bench_dir, n)) is not None}
    # Prefer the round-robin speeds (every system measured under the same conditions) to
    # the per-system ones taken right after each training run.
    round_robin = read_json(args.bench_dir / "speed_round_robin.json")
    if round_robin:  # one source for the whole column: drop the per-run measurements
        for system in systems.values():
            system.pop("inference_words_per_second", None)
    for name, speed in ((round_robin or {}).get("systems") or {}).items():
        if name in systems:
            systems[name]["inference_words_per_second"] = speed["words_per_second_median"]
            systems[name]["inference_words_per_second_runs"] = speed["words_per_second_runs"]
            systems[name]["inference_speed_source"] = "round-robin"
    data = {
        "noise": read_json(args.bench_dir / "data" / "noise.json"),
        "imbalance": read_json(args.bench_dir / "data" / "imbalance.json"),
    }
    results = {
        "title": args.title,
        "reproduce": f"Reproduce: `{args.reproduce}` (finished systems are skipped)." if args.reproduce else None,
        "written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "versions": package_versions(),
        "bench_dir": str(args.bench_dir),
        "data_dir": args.data_dir,
        "systems": systems,
        "data": data,
        "efficiency": efficiency(systems),
        "noise": noise_summary(systems),
        "noise_acceptance": noise_acceptance(args.bench_dir, data["noise"]),
        "noise_sentences": noise_summary(systems, "sentences"),
        "noise_acceptance_sentences": noise_acceptance(args.bench_dir, data["noise"], "sentences"),
        "seed_spread": seed_spread([args.bench_dir] + args.seed_dirs) if args.seed_dirs else {},
    }
    results["paired_differences"] = paired_differences(results["seed_spread"])
    results["targets"] = target_checks(results)
    args.report_dir.mkdir(parents=True, exist_ok=True)
    plots = {
        "ner": plot_curves(systems, [n for n, _ in NER_SYSTEMS], args.report_dir / "ner_f1_vs_steps.png", "CoNLL-2003 dev F1"),
        "noise": plot_curves(systems, list(NOISE_SETUPS["documents"][:3]), args.report_dir / "noise_f1_vs_steps.png", "30% label noise in train (dev is clean)"),
        "noise_sentences": plot_curves(systems, list(NOISE_SETUPS["sentences"][:3]), args.report_dir / "noise_sentences_f1_vs_steps.png", "30% label noise, one example per sentence"),
        "imbalance": plot_curves(systems, ["ner_uniform", "rare_uniform", "rare_balanced"], args.report_dir / "imbalance_f1_vs_steps.png", "10% of the MISC sentences in train"),
    }
    atomic_write(args.report_dir / "results.json", json.dumps(results, indent=1, default=str) + "\n")
    atomic_write(args.report_dir / "results.md", render(results, plots))
    print(f"Wrote {args.report_dir / 'results.md'}")


def render(results: Dict, plots: Dict[str, bool]) -> str:
    systems = results["systems"]
    v = results["versions"]
    lines = [
        f"# {results['title']}",
        "",
        f"Written {results['written']} from `{results['bench_dir']}` by `scripts/bench_report.py`; "
        f"machine: {results['machine']['cpus']} CPU cores, {results['machine']['platform']}, Python "
        f"{results['machine']['python']}; " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        "",
        results.get("reproduce") or FULL_REPRODUCE,
        "",
        "## NER: CoNLL-2003 train → valid (dev), the same step budget, batcher and dev set",
        "",
        "Dev F1 of the best checkpoint (spaCy's `model-best`; P, R and the per-label F1 are of the",
        "same evaluation); train words/s counts the words of the batches the updates saw.",
        "Inference words/s: `nlp.pipe`, batch 64, median of 3 over the dev set; "
        + ("measured round-robin in one process (`bench-speed`)." if any(
            s.get("inference_speed_source") == "round-robin" for s in systems.values())
           else "measured right after each training run."),
        "",
    ]
    lines += ner_table(systems, NER_SYSTEMS)
    if plots["ner"]:
        lines += ["", "![dev F1 against update steps](ner_f1_vs_steps.png)"]
    eff = results["efficiency"]
    lines += ["", "## RSFT evidence", "", "### Efficiency: updates to reach uniform's best dev F1", ""]
    if eff:
        lines.append(f"Uniform's best dev F1: {eff['uniform_best_f1']:.2f}, first reached at step {eff['uniform_steps']}.")
        lines.append("")
        lines += [
            "| target | steps to reach it | share of uniform's steps | its own best F1 | epochs past warm-up |",
            "|---|---|---|---|---|",
        ]
        for name, e in eff["targets"].items():
            ratio = f"{100 * e['ratio']:.0f}%" if e["ratio"] is not None else "not reached"
            lines.append(f"| {name} | {fmt(e['steps'])} | {ratio} | {e['best_f1']:.2f} | {fmt(e.get('sampled_epochs'))} |")
        if any(e.get("sampled_epochs") == 0 for e in eff["targets"].values()):
            lines += ["", "A target with 0 epochs past warm-up trained exactly as uniform (every example accepted): the run was too short for it to act."]
    else:
        lines.append("Not run yet.")
    lines += ["", "### Label noise: 30% of the training entities corrupted, evaluated on the clean dev set", ""]
    if results["data"]["noise"]:
        d = results["data"]["noise"]
        lines.append(
            f"Corrupted {d['corrupted']:,} of {d['entities']:,} entities ({100 * d['corrupted_share']:.1f}%): "
            f"{d['type_swap']:,} type swaps, {d['boundary_shift']:,} boundary shifts, {d['deletion']:,} deletions (seed {d['seed']})."
        )
        lines.append("")
    lines += noise_section(results, plots, "documents")
    lines += [
        "",
        "#### The same, one training example per sentence",
        "",
        "`denoise` accepts or rejects whole examples. With 10-sentence documents nearly every document "
        "holds some corrupted entities, so the workflow `benchmark-sentences` splits the same sets into "
        "sentences (`bench-sent-data`) and trains again, the clean one included as the reference.",
        "",
    ]
    if any(name in systems for name in NOISE_SETUPS["sentences"][:3]):
        lines += noise_section(results, plots, "sentences")
    else:
        lines.append("Not run yet (`python -m spacy project run benchmark-sentences`).")
    lines += ["", "### Imbalance: only 10% of the MISC sentences kept in train", ""]
    if results["data"]["imbalance"]:
        d = results["data"]["imbalance"]
        lines += [f"Train entities before: {d['entities_before']}; after: {d['entities_after']}.", ""]
    lines += ner_table(systems, [("ner_uniform", "full train, uniform"), ("rare_uniform", "rare MISC, uniform"), ("rare_balanced", "rare MISC, `balanced`")])
    if plots["imbalance"]:
        lines += ["", "![imbalance](imbalance_f1_vs_steps.png)"]
    lines += [
        "",
        "## Entity linking: AIDA CoNLL-YAGO train → testa, gold mentions",
        "",
        "| system | in-KB accuracy | NIL P | NIL R | candidate recall | mentions/s | train time |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, title in EL_SYSTEMS:
        s = systems.get(name)
        m = (s or {}).get("metrics")
        if not m:
            lines.append(f"| {title} | not run yet | | | | | |")
            continue
        pct = lambda key: fmt(100 * m[key], 1) if m.get(key) is not None else "–"  # noqa: E731
        lines.append(
            f"| {title} | **{pct('nel_inkb_accuracy')}** | {pct('nel_nil_p')} | {pct('nel_nil_r')} | "
            f"{pct('nel_candidate_recall')} | {fmt(m.get('mentions_per_second'))} | {minutes(s.get('train_wall_seconds'))} |"
        )
    if results["targets"]:
        lines += ["", "## The targets", "", "| target | measured | met? |", "|---|---|---|"]
        for check in results["targets"]:
            lines.append(f"| {check['target']} | {check['value']} | {'yes' if check['met'] else '**no**'} |")
    spread = results["seed_spread"]
    if spread:
        lines += ["", "## Spread over seeds", "", "| system | mean dev F1 | sd | values |", "|---|---|---|---|"]
        for name, s in spread.items():
            lines.append(f"| {name} | {s['mean']:.2f} | {fmt(s['sd'], 2)} | {', '.join(f'{x:.2f}' for x in s['values'])} |")
    paired = results.get("paired_differences") or {}
    if paired:
        lines += [
            "",
            "Paired by seed (same seed, same data, only the reader's target differs): RSFT minus uniform.",
            "",
            "| comparison | mean difference | sd | paired t (df) | per seed |",
            "|---|---|---|---|---|",
        ]
        for name, d in paired.items():
            t = f"{d['t']:+.2f} ({d['df']})" if d.get("t") is not None else "–"
            lines.append(f"| {name} | {d['mean']:+.2f} | {fmt(d['sd'], 2)} | {t} | {', '.join(f'{x:+.2f}' for x in d['values'])} |")
    lines.append("")
    return "\n".join(lines)


def noise_section(results: Dict, plots: Dict[str, bool], setup: str) -> List[str]:
    """Table, recovered share and acceptance-by-corruption rows of one noise setup
    ("documents": results["noise"], ...; "sentences": results["noise_sentences"], ...)."""
    clean, noisy, denoise = NOISE_SETUPS[setup][:3]
    unit = setup
    key = "noise" if setup == "documents" else "noise_sentences"
    summary_key, acceptance_key = key, key.replace("noise", "noise_acceptance")
    lines = ner_table(results["systems"], [(clean, "clean train, uniform"), (noisy, "noisy train, uniform"), (denoise, "noisy train, `denoise`")])
    noise = results.get(summary_key)
    if noise:
        share = noise["recovered_share"]
        lines += [
            "",
            f"Noise costs uniform {noise['f1_cost_of_noise']:.2f} F1; `denoise` recovers "
            + (f"{100 * share:.0f}% of it" if share is not None else "– (noise cost nothing)")
            + f" ({noise['noisy_denoise_f1']:.2f} vs {noise['noisy_uniform_f1']:.2f}).",
        ]
    if results.get(acceptance_key):
        lines += [
            "",
            f"Did `denoise` reject the noisier {unit}? ({unit} with more than the median share of corrupted entities vs the rest)",
            "",
            f"| epoch | accepted: noisier half | accepted: cleaner half | corrupted share of accepted {unit} | of rejected {unit} |",
            "|---|---|---|---|---|",
        ]
        for row in results[acceptance_key]:
            rejected = row["corrupted_share_rejected"]
            lines.append(
                f"| {row['epoch']} | {100 * row['accept_rate_noisier_half']:.1f}% | {100 * row['accept_rate_cleaner_half']:.1f}% | "
                f"{100 * row['corrupted_share_accepted']:.1f}% | {fmt(100 * rejected if rejected is not None else None)}% |"
            )
    if plots.get(key):
        lines += ["", f"![noise]({key}_f1_vs_steps.png)"]
    return lines


if __name__ == "__main__":
    main()
