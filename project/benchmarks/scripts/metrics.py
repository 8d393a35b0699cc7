"""A run's result: what the report needs from the files one run wrote (train.json, the
linkers' metrics.json, the sampler's stats), summarized once, right after the run, while
its data and models are on disk. A new per-run metric goes here, as a function of the
plan and the run folder, added to `summarize`.
"""
import json
import os
import platform
import statistics
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Dict, List, Optional

import numpy

from bench import Plan, read_json

VERSIONS = ["spacy", "spacy-transformers", "transformers", "torch", "thinc", "spacy-rsft"]


def summarize(plan: Plan, out: Path, gpu_id: int = -1) -> Dict:
    result: Dict = {
        "system": plan.system.name,
        "scale": plan.scale.name,
        "seed": plan.seed,
        "settings": {k: v for k, v in plan.overrides.items() if not k.startswith("paths.")},
        "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(gpu_id),
        "versions": package_versions(),
    }
    train_report = plan.inputs["train"].with_suffix(".json") if "train" in plan.inputs else None
    if train_report is not None and train_report.exists():
        result["train_data"] = read_json(train_report)  # what data.py changed in the train set
    train = read_json(out / "train.json")
    if train is not None:
        result.update(training_summary(train))
    metrics = read_json(out / "metrics.json")
    if metrics is not None:
        result["metrics"] = metrics
    # linkers calibrated on held-out data; end-to-end pipelines' linker on the gold mentions
    for name in ("metrics_uncalibrated", "calibration", "metrics_gold"):
        extra = read_json(out / f"{name}.json")
        if extra is not None:
            result[name] = extra
    epochs = read_stats(out / "sampler_stats.jsonl")
    if epochs:
        result["sampler"] = sampler_summary(epochs)
        units_path = out / "sampler_stats.units.json"
        if plan.clean_train is not None and units_path.exists():
            units = json.loads(units_path.read_text(encoding="utf8"))
            result["noise_detection"] = unit_noise_detection(epochs, units, plan.clean_train, plan.inputs["train"])
    return result


def training_summary(train: Dict) -> Dict:
    """Steps, time, throughput, memory, the dev curve and the best evaluation's scores."""
    evaluations = train["evaluations"]
    best = max(evaluations, key=lambda e: (e["score"], -e["step"])) if evaluations else None
    return {
        "steps": train["steps"],
        "best_step": train["best_step"],
        "train_wall_seconds": train["wall_seconds"],
        "train_words_per_second": train["train_words_per_second"],
        "train_peak_rss_mb": train["peak_rss_mb"],
        "curve": [[e["step"], e["score"], e["seconds"]] for e in evaluations],
        "best_scores": flat_scores(best["scores"]) if best else {},
    }


def flat_scores(scores: Dict) -> Dict[str, float]:
    """Micro P/R/F and per-label F of spaCy's ents scores, in percent."""
    flat = {key: 100 * scores[key] for key in ("ents_f", "ents_p", "ents_r") if scores.get(key) is not None}
    for label, values in (scores.get("ents_per_type") or {}).items():
        flat[f"{label}_f"] = 100 * values["f"]
    return flat


def read_stats(path: Path) -> List[Dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf8").splitlines() if line.strip()]


def sampler_summary(epochs: List[Dict]) -> Dict:
    """Epochs past warm-up (0: the target never acted, the run was uniform), acceptance per
    sampled epoch, and the loss-scoring cost as a share of the epoch it scored."""
    sampled = [e for e in epochs if not e.get("warmup")]
    overhead = [e["scoring_seconds"] / e["previous_epoch_seconds"] for e in sampled if e.get("previous_epoch_seconds")]
    return {
        "epochs": len(epochs),
        "sampled_epochs": len(sampled),
        "acceptance": [round(e["accepted"] / e["proposed"], 4) for e in sampled if e.get("proposed")],
        "scoring_overhead_median": statistics.median(overhead) if overhead else None,
    }


def noisy_units(units: Dict, clean: List, noisy: List) -> numpy.ndarray:
    """Which units carry label noise: an entity unit whose span and label are not a clean
    entity; an outside token inside a clean entity; a sentence or example whose entities
    differ from the clean ones."""
    flags = numpy.zeros((len(units["doc"]),), dtype=bool)
    for u, (d, start, end, entity) in enumerate(zip(units["doc"], units["start"], units["end"], units["entity"])):
        gold = {(e.start, e.end, e.label_) for e in clean[d].ents if start <= e.start and e.end <= end}
        labels = {(e.start, e.end, e.label_) for e in noisy[d].ents if start <= e.start and e.end <= end}
        if entity:
            flags[u] = not labels <= gold
        elif units["unit"] == "span":
            flags[u] = any(e.start <= start < e.end for e in clean[d].ents)
        else:
            flags[u] = gold != labels
    return flags


def auroc(scores: numpy.ndarray, positive: numpy.ndarray) -> Optional[float]:
    """Area under the ROC curve of `scores` for `positive` (ties count half): the chance
    that a random positive scores above a random negative."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return None
    order = numpy.argsort(scores, kind="mergesort")
    ranks = numpy.empty(len(scores))
    sorted_scores = scores[order]
    # average rank of each run of ties (1-based)
    _, first, counts = numpy.unique(sorted_scores, return_index=True, return_counts=True)
    for start, count in zip(first, counts):
        ranks[order[start : start + count]] = start + (count + 1) / 2
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def unit_noise_detection(epochs: List[Dict], units: Dict, clean_path: Path, noisy_path: Path) -> Dict:
    """How well rejection finds the units whose labels differ from the clean ones, per
    sampled epoch: precision and recall of "rejected", the AUROC of the rejection
    probability (1 - acceptance; flat below the rejection quantile, so it also reflects how
    much was rejected) and the AUROC of the loss the sampler ranks by (`loss_auroc`: how
    well the ranking itself separates noisy from clean units), over all units and per kind
    (entity spans, outside tokens) for span units."""
    import spacy
    from spacy.tokens import DocBin

    vocab = spacy.blank("en").vocab
    clean = list(DocBin().from_disk(clean_path).get_docs(vocab))
    noisy = list(DocBin().from_disk(noisy_path).get_docs(vocab))
    flags = noisy_units(units, clean, noisy)
    kinds = {"all": numpy.ones_like(flags)}
    if units["unit"] == "span":
        entity = numpy.asarray(units["entity"], dtype=bool)
        kinds.update({"entity": entity, "outside": ~entity})
    rows = []
    for epoch in epochs:
        if epoch.get("warmup") or "acceptance" not in epoch:
            continue
        acceptance = numpy.asarray(epoch["acceptance"], dtype="float64")
        losses = numpy.asarray([numpy.nan if v is None else v for v in epoch.get("losses", [])], dtype="float64")
        rejected = numpy.ones_like(flags)
        rejected[epoch["accepted_indices"]] = False
        row: Dict = {"epoch": epoch["epoch"]}
        for kind, members in kinds.items():
            f, r = flags[members], rejected[members]
            row[kind] = {
                "noisy": int(f.sum()),
                "units": int(members.sum()),
                "rejected": int(r.sum()),
                "precision": float((f & r).sum() / r.sum()) if r.any() else None,
                "recall": float((f & r).sum() / f.sum()) if f.any() else None,
                "auroc": auroc(1.0 - acceptance[members], f),
                "loss_auroc": _loss_auroc(losses, members, flags),
            }
        rows.append(row)
    return {"unit": units["unit"], "context": units.get("context"), "epochs": rows}


def _loss_auroc(losses: numpy.ndarray, members: numpy.ndarray, flags: numpy.ndarray) -> Optional[float]:
    """AUROC of the units' losses (those known) for noisy; None without per-unit losses."""
    if losses.shape != flags.shape:
        return None
    known = members & ~numpy.isnan(losses)
    return auroc(losses[known], flags[known])


def machine(gpu_id: int = -1) -> Dict:
    """Where the run trained: the platform, and the GPU when it trained on one."""
    out: Dict = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
    if gpu_id >= 0:
        import torch

        out["gpu"] = torch.cuda.get_device_name(gpu_id)
    return out


def package_versions() -> Dict[str, str]:
    out = {}
    for name in VERSIONS:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out
