"""Write training/report.md and its PNG plots from the training logs, the sampler's
per-epoch stats and the evaluation metrics.

usage: python scripts/report.py TRAINING_DIR [--mislabeled FILE] [--clean FILE --train FILE] [--target NAME]

With the clean labels of the training set (--clean: JSONL of the training sentences with their
clean entities; --train: the DocBin trained on), the report says how well the rejection found
the mislabeled units, per sampled epoch (spacy_rsft.sampling.detection).
"""
import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from spacy_rsft.io import atomic_output  # noqa: E402
from spacy_rsft.sampling.detection import unit_noise_detection  # noqa: E402

RUNS = [("uniform", "ner_uniform"), ("rsft", "ner_rsft")]


def read_jsonl(path: Path) -> List[Dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf8").splitlines() if line.strip()]


def read_json(path: Path) -> Dict:
    return json.loads(path.read_text(encoding="utf8")) if path.exists() else {}


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf8")


def save_figure(fig, path: Path) -> None:
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def plot_f1_curves(logs: Dict[str, List[Dict]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, rows in logs.items():
        # spaCy's ConsoleLogger.v3 output_file: {"step", "scores": {"ents_f": 0-100}, ...}
        points = [(r["step"], r["scores"]["ents_f"]) for r in rows if (r.get("scores") or {}).get("ents_f") is not None]
        if points:
            ax.plot(*zip(*points), marker="o", label=name)
    ax.set_xlabel("update steps")
    ax.set_ylabel("dev entity F1")
    ax.set_title("Dev F1 against update steps")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def plot_acceptance(stats: List[Dict], path: Path, target: str) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    epochs = [s["epoch"] for s in stats]
    left.plot(epochs, [s["acceptance_rate"] for s in stats], marker="o")
    left.set_ylim(0, 1.05)
    left.set_xlabel("epoch")
    left.set_ylabel("acceptance rate")
    left.set_title(f"Sampler acceptance per epoch ({target})")
    left.grid(alpha=0.3)
    sampled = [s for s in stats if not s["warmup"] and (s.get("accepted_losses") or s.get("losses"))]
    if sampled:
        last = sampled[-1]
        accepted, rejected = split_losses(last)
        right.hist(accepted, bins=30, alpha=0.7, label="accepted")
        right.hist(rejected, bins=30, alpha=0.7, label="rejected")
        right.set_yscale("log")  # units: thousands accepted, a few rejected
        right.set_title(f"Losses at epoch {last['epoch']}")
        right.legend()
    unit = stats[0].get("unit", "example") if stats else "example"
    right.set_xlabel(f"{unit} loss (mean token cross-entropy)")
    right.set_ylabel(f"{unit}s")
    save_figure(fig, path)


def split_losses(epoch: Dict):
    """The accepted and the rejected units' losses of one epoch's stats (example units
    list them; finer units give every unit's loss and the accepted indices)."""
    if epoch.get("accepted_losses") is not None:
        return epoch["accepted_losses"], epoch.get("rejected_losses", [])
    losses, accepted = epoch["losses"], set(epoch["accepted_indices"])
    kept = [v for i, v in enumerate(losses) if v is not None and i in accepted]
    dropped = [v for i, v in enumerate(losses) if v is not None and i not in accepted]
    return kept, dropped


def plot_per_label(metrics: Dict[str, Dict], path: Path) -> None:
    labels = sorted({label for m in metrics.values() for label in (m.get("ents_per_type") or {})})
    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.8 / max(len(metrics), 1)
    for k, (name, m) in enumerate(metrics.items()):
        per_type = m.get("ents_per_type") or {}
        ax.bar([i + k * width for i in range(len(labels))], [100 * per_type.get(l, {}).get("f", 0.0) for l in labels], width, label=name)
    ax.set_xticks([i + width * (len(metrics) - 1) / 2 for i in range(len(labels))])
    ax.set_xticklabels(labels)
    ax.set_ylabel("dev F1")
    ax.set_title("Per-label F1")
    ax.legend()
    save_figure(fig, path)


def plot_el(el: Dict[str, Dict], path: Path) -> None:
    keys = [("nel_inkb_accuracy", "in-KB accuracy"), ("nel_nil_p", "NIL precision"), ("nel_nil_r", "NIL recall")]
    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.8 / max(len(el), 1)
    for k, (name, m) in enumerate(el.items()):
        ax.bar([i + k * width for i in range(len(keys))], [100 * (m.get(key) or 0.0) for key, _ in keys], width, label=name)
    ax.set_xticks([i + width * (len(el) - 1) / 2 for i in range(len(keys))])
    ax.set_xticklabels([label for _, label in keys])
    ax.set_ylim(0, 105)
    ax.set_title("Entity linking on the dev set")
    ax.legend(loc="lower right")
    save_figure(fig, path)


def mislabeled_rates(stats: List[Dict], mislabeled: List[int]) -> Optional[Dict[str, float]]:
    sampled = [s for s in stats if not s["warmup"]]
    if not sampled or not mislabeled:
        return None
    bad = set(mislabeled)
    n = sampled[0]["proposed"]
    acc_bad = sum(len(bad.intersection(s["accepted_indices"])) for s in sampled) / (len(bad) * len(sampled))
    acc_clean = sum(len(set(s["accepted_indices"]) - bad) for s in sampled) / ((n - len(bad)) * len(sampled))
    return {"mislabeled": acc_bad, "clean": acc_clean, "epochs": len(sampled)}


def clean_and_noisy_docs(clean_path: Path, train_path: Path, lang: str = "en"):
    """The training docs as trained on, and the same docs with the clean labels."""
    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.blank(lang)
    noisy = list(DocBin().from_disk(train_path).get_docs(nlp.vocab))
    rows = read_jsonl(clean_path)
    if len(rows) != len(noisy):
        raise SystemExit(f"{clean_path} has {len(rows)} sentences and {train_path} {len(noisy)} docs: not the same training set.")
    clean = []
    for doc, row in zip(noisy, rows):
        copy = doc.copy()
        spans = [copy.char_span(e["start"], e["end"], label=e["label"]) for e in row["entities"]]
        if any(span is None for span in spans) or copy.text != row["text"]:
            raise SystemExit(f"{clean_path}: a sentence or entity does not match {train_path} ({row['text'][:60]!r}).")
        copy.ents = spans
        clean.append(copy)
    return clean, noisy


def detection_lines(stats: List[Dict], units: Dict, clean, noisy) -> List[str]:
    """Per sampled epoch: how many of the units with wrong labels (outside tokens inside a
    clean entity, for the demo's missed entities) were rejected, and how cleanly."""
    found = unit_noise_detection(stats, units, clean, noisy)
    kind = "outside" if units["unit"] == "span" else "all"
    what = "tokens outside the labelled entities" if kind == "outside" else f"{units['unit']} units"
    lines = [
        "", f"How well rejection found the noise ({what}; noisy: inside an entity the labels miss):", "",
        "| epoch | units | noisy | rejected | precision | recall | AUROC of the loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in found["epochs"]:
        d = row[kind]
        auroc = "n/a" if d["loss_auroc"] is None else f"{d['loss_auroc']:.3f}"
        lines.append(f"| {row['epoch']} | {d['units']} | {d['noisy']} | {d['rejected']} | {fmt(d['precision'])} | {fmt(d['recall'])} | {auroc} |")
    return lines


def fmt(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("training_dir", type=Path)
    parser.add_argument("--mislabeled", type=Path, default=None)
    parser.add_argument("--clean", type=Path, default=None)
    parser.add_argument("--train", type=Path, default=None)
    parser.add_argument("--target", default="rsft")
    args = parser.parse_args()
    out = args.training_dir
    metrics = {name: read_json(out / f"{prefix}_metrics.json") for name, prefix in RUNS}
    logs = {name: read_jsonl(out / f"{prefix}_log.jsonl") for name, prefix in RUNS}
    stats = {name: read_jsonl(out / f"{prefix}_stats.jsonl") for name, prefix in RUNS}
    mislabeled = json.loads(args.mislabeled.read_text()) if args.mislabeled and args.mislabeled.exists() else []

    plot_f1_curves(logs, out / "f1_vs_steps.png")
    plot_acceptance(stats["rsft"], out / "acceptance.png", args.target)
    plot_per_label(metrics, out / "per_label.png")

    lines = ["# spacy-rsft training report", ""]
    lines += ["## NER on the dev set", "", "| reader | ents P | ents R | ents F | words/s |", "|---|---|---|---|---|"]
    for name, _ in RUNS:
        m = metrics[name]
        label = name if name == "uniform" else f"rsft ({args.target})"
        lines.append(f"| {label} | {fmt(m.get('ents_p'))} | {fmt(m.get('ents_r'))} | {fmt(m.get('ents_f'))} | {m.get('speed', 0):.0f} |")
    labels = sorted({l for m in metrics.values() for l in (m.get("ents_per_type") or {})})
    lines += ["", "| label | " + " | ".join(f"{n} F" for n, _ in RUNS) + " |", "|---|" + "---|" * len(RUNS)]
    for label in labels:
        cells = [fmt((metrics[n].get("ents_per_type") or {}).get(label, {}).get("f")) for n, _ in RUNS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "![Dev F1 against steps](f1_vs_steps.png)", "", "![Per-label F1](per_label.png)", ""]
    unit = (stats["rsft"][0].get("unit") or "example") if stats["rsft"] else "example"
    lines += ["## The sampler", "", f"| epoch | {unit} units proposed | accepted | rate | mean loss accepted | mean loss rejected |", "|---|---|---|---|---|---|"]
    for s in stats["rsft"]:
        mla, mlr = s["mean_loss_accepted"], s["mean_loss_rejected"]
        lines.append(
            f"| {s['epoch']}{' (warm-up)' if s['warmup'] else ''} | {s['proposed']} | {s['accepted']} | {s['acceptance_rate']:.2f} | "
            f"{'n/a' if mla is None else f'{mla:.3f}'} | {'n/a' if mlr is None else f'{mlr:.3f}'} |"
        )
    units_path = out / "ner_rsft_stats.units.json"
    units = read_json(units_path)
    rates = mislabeled_rates(stats["rsft"], mislabeled) if units.get("unit", "example") == "example" else None
    if units and args.clean and args.train:
        lines += detection_lines(stats["rsft"], units, *clean_and_noisy_docs(args.clean, args.train))
    if rates:
        lines += [
            "",
            f"Deliberately mislabeled training sentences ({len(mislabeled)}) were accepted in "
            f"{100 * rates['mislabeled']:.1f}% of the {rates['epochs']} sampled epochs; the clean "
            f"ones in {100 * rates['clean']:.1f}%.",
        ]
    lines += ["", "![Acceptance](acceptance.png)", ""]
    el = {"rsft_entity_linker": read_json(out / "el_metrics.json"), "prior baseline": read_json(out / "el_prior_metrics.json")}
    if any(el.values()):
        plot_el(el, out / "el_accuracy.png")
        lines += [
            "## Entity linking on the dev set (gold entities)", "",
            "| system | in-KB accuracy | NIL P | NIL R | candidate recall | link F (micro) |",
            "|---|---|---|---|---|---|",
        ]
        for name, m in el.items():
            lines.append(
                f"| {name} | {fmt(m.get('nel_inkb_accuracy'))} | {fmt(m.get('nel_nil_p'))} | {fmt(m.get('nel_nil_r'))} "
                f"| {fmt(m.get('nel_candidate_recall'))} | {fmt(m.get('nel_micro_f'))} |"
            )
        lines += ["", "![Entity linking](el_accuracy.png)", ""]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    print(f"Wrote {out / 'report.md'}")


if __name__ == "__main__":
    main()
