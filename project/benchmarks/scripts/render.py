"""Render a scale's results.json into results.md and one plot per report group.

usage: python scripts/render.py results/SCALE

A new table or plot goes here; a new number first goes into a run's result (metrics.py) or
into collect.py, so that results.json keeps everything the markdown shows.
"""
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from spacy_rsft.io import atomic_output  # noqa: E402

LABELS = ["PER", "LOC", "ORG", "MISC"]


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def minutes(seconds: Optional[float]) -> str:
    return "–" if seconds is None else f"{seconds / 60:.1f} min"


def pct(scores: Dict, key: str) -> str:
    """A 0-1 score as a percentage, "–" where it is missing."""
    return fmt(100 * scores[key], 1) if scores.get(key) is not None else "–"


def first_run(system: Dict) -> Optional[Dict]:
    runs = system.get("runs") or {}
    return runs[min(runs, key=int)] if runs else None


def ner_rows(systems: Dict[str, Dict], names: List[str]) -> List[str]:
    lines = [
        "| system | dev F1 | P | R | PER | LOC | ORG | MISC | best step | train time | train words/s | infer words/s | peak RSS (train) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        system, run = systems[name], first_run(systems[name])
        if run is None or not run.get("best_scores"):
            lines.append(f"| {system['title']} | not run yet |" + " |" * 11)
            continue
        b, speed = run["best_scores"], system.get("speed") or {}
        lines.append(
            f"| {system['title']} | **{fmt(b.get('ents_f'), 2)}** | {fmt(b.get('ents_p'))} | {fmt(b.get('ents_r'))} | "
            + " | ".join(fmt(b.get(f"{label}_f")) for label in LABELS)
            + f" | {fmt(run.get('best_step'))} / {fmt(run.get('steps'))} | {minutes(run.get('train_wall_seconds'))} | "
            f"{fmt(run.get('train_words_per_second'))} | {fmt(speed.get('words_per_second_median'))} | "
            f"{fmt(run.get('train_peak_rss_mb'))} MB |"
        )
    return lines


def el_rows(systems: Dict[str, Dict], names: List[str]) -> List[str]:
    """In-KB accuracy as trained (the ranking alone); the rest after calibration on the
    held-out train documents where the run was calibrated (temperature, NIL threshold)."""
    lines = [
        "| system | in-KB accuracy | micro F | NIL P | NIL R | candidate recall | ECE, as trained → calibrated | T, NIL threshold | mentions/s | train time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        system, run = systems[name], first_run(systems[name])
        m = (run or {}).get("metrics")
        if not m:
            lines.append(f"| {system['title']} | not run yet | | | | | | | | |")
            continue
        raw = run.get("metrics_uncalibrated") or m
        ece = pct(m, "nel_ece") if raw is m else f"{pct(raw, 'nel_ece')} → {pct(m, 'nel_ece')}"
        cal = next(iter((run.get("calibration") or {}).values()), None)
        fitted = f"{cal['temperature']:.2f}, {cal.get('threshold')}" if cal else "–"
        lines.append(
            f"| {system['title']} | **{pct(raw, 'nel_inkb_accuracy')}** | {pct(m, 'nel_micro_f')} | {pct(m, 'nel_nil_p')} | "
            f"{pct(m, 'nel_nil_r')} | {pct(m, 'nel_candidate_recall')} | {ece} | {fitted} | "
            f"{fmt(m.get('mentions_per_second'))} | {minutes(run.get('train_wall_seconds'))} |"
        )
    return lines


def e2e_rows(systems: Dict[str, Dict], names: List[str]) -> List[str]:
    """End to end from raw text (after calibration where the run was calibrated: the NIL
    threshold changes which links are made), and the same pipeline's linker on the gold
    mentions."""
    lines = [
        "| system | InKB micro F1, end to end | P | R | NER F1 | NER ECE | in-KB accuracy, gold mentions | link ECE, gold mentions | words/s, end to end | train time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        system, run = systems[name], first_run(systems[name])
        m = (run or {}).get("metrics")
        if not m:
            lines.append(f"| {system['title']} | not run yet | | | | | | | | |")
            continue
        gold = run.get("metrics_gold") or {}
        raw = run.get("metrics_uncalibrated")
        f1 = pct(m, "nel_e2e_inkb_f") if raw is None else f"{pct(raw, 'nel_e2e_inkb_f')} → {pct(m, 'nel_e2e_inkb_f')}"
        lines.append(
            f"| {system['title']} | **{f1}** | {pct(m, 'nel_e2e_inkb_p')} | {pct(m, 'nel_e2e_inkb_r')} | {pct(m, 'ents_f')} | "
            f"{pct(m, 'ents_ece')} | {pct(gold, 'nel_inkb_accuracy')} | {pct(gold, 'nel_ece')} | "
            f"{fmt(m.get('words_per_second'))} | {minutes(run.get('train_wall_seconds'))} |"
        )
    return lines


def plot_group(systems: Dict[str, Dict], names: List[str], title: str, path: Path) -> bool:
    curves = {n: first_run(systems[n]).get("curve") for n in names if first_run(systems[n]) and first_run(systems[n]).get("curve")}
    if not curves:
        return False
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, curve in curves.items():
        ax.plot([c[0] for c in curve], [100 * c[1] for c in curve], marker="o", label=name)
    ax.set_xlabel("update steps")
    ax.set_ylabel("dev score (spaCy's weighted score, %)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return True


def plot_reliability(systems: Dict[str, Dict], names: List[str], title: str, path: Path) -> bool:
    """Reliability diagram of the linkers' kb_score on dev: accuracy against mean confidence
    per bin (the diagonal is perfect calibration), after calibration where it ran."""
    binned = {n: ((first_run(systems[n]) or {}).get("metrics") or {}).get("nel_reliability") for n in names}
    binned = {n: b for n, b in binned.items() if b}
    if not binned:
        return False
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    for name, bins in binned.items():
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o", label=name)
    ax.set_xlabel("kb_score (mean confidence in the bin)")
    ax.set_ylabel("share of links right")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return True


def group_section(results: Dict, group: str, spec: Dict, figures: Path) -> List[str]:
    systems = results["systems"]
    names = [n for n in spec.get("also", []) if n in systems]
    names += [n for n, s in systems.items() if s["group"] == group]
    own = [n for n, s in systems.items() if s["group"] == group]
    if not own:
        return []
    lines = ["", f"## {spec['title']}", ""]
    for name in own:  # what data.py did to the training set
        data = (first_run(systems[name]) or {}).get("train_data")
        if data and name == own[-1]:
            lines += [f"Training set: `{json.dumps({k: v for k, v in data.items() if k != 'input'})}`", ""]
    suites = {systems[n]["suite"] for n in own}
    is_el = suites == {"el"}
    if suites == {"e2e"}:
        lines += e2e_rows(systems, names)
    else:
        lines += el_rows(systems, names) if is_el else ner_rows(systems, names)
    if plot_group(systems, names, spec["title"], figures / f"{group}.png"):
        lines += ["", f"![{group}: dev score against update steps](figures/{group}.png)"]
    if is_el and plot_reliability(systems, names, f"{spec['title']}: reliability of kb_score", figures / f"{group}_reliability.png"):
        lines += ["", f"![{group}: reliability of kb_score on dev](figures/{group}_reliability.png)"]
    return lines


def updates_to_baseline_best(eff: Dict) -> str:
    """"420 vs 660 (31.0 min vs 52.0 min)": the updates, and where recorded the wall-clock, the system
    and its baseline took to reach the baseline's best dev score."""
    if not eff:
        return "–"
    if not eff.get("steps"):
        return f"not reached ({eff['baseline_steps']})"
    text = f"{eff['steps']} vs {eff['baseline_steps']}"
    if eff.get("seconds") is not None and eff.get("baseline_seconds") is not None:
        text += f" ({minutes(eff['seconds'])} vs {minutes(eff['baseline_seconds'])})"
    return text


def comparison_section(results: Dict) -> List[str]:
    # a system whose baseline is not in this scale has no difference to show
    rows = [(n, s) for n, s in results["systems"].items() if (s.get("comparison") or {}).get("difference")]
    if not rows:
        return []
    lines = [
        "",
        "## Each system against its baseline (same data, same seed; only the reader's target differs)",
        "",
        "| system | baseline | difference (mean) | sd | paired t (df) | per seed | updates (wall-clock) to the baseline's best | share of the gap to the reference recovered | epochs past warm-up |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, system in rows:
        c = system["comparison"]
        d = c["difference"]
        t = f"{d['t']:+.2f} ({d['df']})" if d.get("t") is not None else "–"
        eff = c.get("steps_to_baseline_best") or {}
        steps = updates_to_baseline_best(eff)
        gap = ", ".join("–" if g is None else f"{100 * g:.0f}%" for g in c.get("gap_recovered", [])) or "–"
        sampled = (first_run(system).get("sampler") or {}).get("sampled_epochs")
        lines.append(
            f"| {name} | {c['baseline']} | {d['mean']:+.2f} | {fmt(d.get('sd'), 2)} | {t} | "
            f"{', '.join(f'{x:+.2f}' for x in d['values'])} | {steps} | {gap} | {fmt(sampled)} |"
        )
    lines += [
        "",
        "A target with 0 epochs past warm-up trained exactly as uniform: the run was too short for it to act.",
        "The wall-clock is each run's own, from its start to that evaluation, shown only where both trained on the same kind "
        "of machine; it compares the two only where they also ran side by side (the machine's other work changes it).",
    ]
    return lines


def detection_section(results: Dict) -> List[str]:
    lines: List[str] = []
    for name, system in results["systems"].items():
        detection = (first_run(system) or {}).get("noise_detection")
        if not detection:
            continue
        if isinstance(detection, list):  # carried over from the first release's report
            lines += carried_detection(name, detection)
            continue
        if not any(d["rejected"] for row in detection["epochs"] for k, d in row.items() if k != "epoch"):
            continue  # nothing was rejected (uniform): nothing to tell
        lines += [
            "",
            f"### How well `{name}` found the noisy units ({detection['unit']}s)",
            "",
            "A unit is noisy when its labels differ from the clean ones; per sampled epoch, the precision "
            "and recall of \"rejected\", the AUROC of the rejection probability (flat below the rejection "
            "quantile) and the AUROC of the loss the sampler ranks by (how well the ranking separates noisy "
            "from clean units).",
            "",
            "| epoch | units | kind | noisy | rejected | precision | recall | AUROC (rejection) | AUROC (loss) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        pct = lambda v: "–" if v is None else f"{100 * v:.1f}%"  # noqa: E731
        for row in detection["epochs"]:
            for kind, d in row.items():
                if kind == "epoch":
                    continue
                lines.append(
                    f"| {row['epoch']} | {d['units']:,} | {kind} | {d['noisy']:,} | {d['rejected']:,} | "
                    f"{pct(d['precision'])} | {pct(d['recall'])} | {fmt(d['auroc'], 3)} | {fmt(d.get('loss_auroc'), 3)} |"
                )
    return lines


def filter_section(results: Dict) -> List[str]:
    """What the two-pass systems' filter rejected before training, per run, and how well."""
    rows = [(name, seed, run["filter"]) for name, system in results["systems"].items()
            for seed, run in sorted(system["runs"].items()) if run.get("filter")]
    if not rows:
        return []
    lines = [
        "",
        "### What the filter of the two-pass systems rejected",
        "",
        "`spacy_rsft filter` scored every training sentence once with the first run's model and masked "
        "the ones it rejected before the second run trained; a sentence is noisy when its labels differ "
        "from the clean ones. Precision and recall of \"rejected\", and the AUROC of the loss it ranked by.",
        "",
        "| system | seed | sentences | noisy | rejected | precision | recall | AUROC (loss) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    pct = lambda v: "–" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    for name, seed, f in rows:
        lines.append(f"| {name} | {seed} | {f['units']:,} | {f.get('noisy', 0):,} | {f['rejected']:,} | "
                     f"{pct(f.get('precision'))} | {pct(f.get('recall'))} | {fmt(f.get('loss_auroc'), 3)} |")
    return lines


def carried_detection(name: str, rows: List[Dict]) -> List[str]:
    lines = [
        "",
        f"### Did `{name}` reject the noisier examples?",
        "",
        "Examples with more than the median share of corrupted entities (the noisier half) against the rest, per sampled epoch.",
        "",
        "| epoch | accepted: noisier half | accepted: cleaner half | corrupted share of accepted | of rejected |",
        "|---|---|---|---|---|",
    ]
    pct = lambda v: "–" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    for row in rows:
        lines.append(
            f"| {row['epoch']} | {pct(row['accept_rate_noisier_half'])} | {pct(row['accept_rate_cleaner_half'])} | "
            f"{pct(row['corrupted_share_accepted'])} | {pct(row['corrupted_share_rejected'])} |"
        )
    return lines


def spread_section(results: Dict) -> List[str]:
    rows = [(n, s["spread"]) for n, s in results["systems"].items() if s.get("spread")]
    if not rows:
        return []
    lines = ["", "## Spread over seeds", "", "| system | mean | sd | per seed |", "|---|---|---|---|"]
    for name, s in rows:
        lines.append(f"| {name} | {s['mean']:.2f} | {fmt(s['sd'], 2)} | {', '.join(f'{x:.2f}' for x in s['values'])} |")
    return lines


def header(results: Dict) -> List[str]:
    machines = "; ".join(f"{m['cpus']} CPU cores, {m['platform']}, Python {m['python']}" for m in results["machines"]) or "–"
    versions = "; ".join(", ".join(f"{k} {v}" for k, v in vs.items()) for vs in results["versions"]) or "–"
    speed = results.get("speed") or {}
    lines = [
        f"# {results['title']}",
        "",
        f"Rendered by `scripts/render.py` from `results.json` (no timestamp: a rerun that changes no run changes no byte). "
        f"Runs made on: {machines}. Versions: {versions}; each run's date is in its result file.",
        "",
        f"Reproduce: `{results['reproduce']}` (runs whose results are here are skipped; `--force` in",
        "`scripts/run.py` reruns one).",
        f"Scale settings (spaCy config overrides per suite): `{json.dumps(results['scale']['settings'])}`; seeds {results['scale']['seeds']}" + (f", per suite {results['scale']['suite_seeds']}" if results['scale'].get('suite_seeds') else "") + ".",
        "",
        "Dev score: the best evaluation (spaCy's `model-best`); P, R and per-label F1 are of the same evaluation.",
    ]
    if speed.get("measured"):
        lines.append(f"Inference words/s: `nlp.pipe`, batch {speed['batch_size']}, median of {speed['runs']} over the dev set, the systems measured round-robin in one process.")
    return lines


def render(results: Dict, out_dir: Path) -> str:
    figures = out_dir / "figures"
    lines = header(results)
    for group, spec in results["groups"].items():
        lines += group_section(results, group, spec, figures)
    lines += comparison_section(results)
    lines += detection_section(results)
    lines += filter_section(results)
    lines += spread_section(results)
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = Path(sys.argv[1])
    results = json.loads((out_dir / "results.json").read_text(encoding="utf8"))
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    text = render(results, out_dir)
    with atomic_output(out_dir / "results.md") as tmp:
        tmp.write_text(text, encoding="utf8")
    print(f"Wrote {out_dir / 'results.md'}")


if __name__ == "__main__":
    main()
