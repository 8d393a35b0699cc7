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

from spacy_rsft.sampling import detection

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
    report = out / "filter_report.jsonl"
    if report.exists():  # a two-pass system: what the filter rejected before training
        result["filter"] = filter_summary(report, plan.clean_train, plan.inputs["train"])
        # iterative cross-fitting (filter_rounds): what each earlier round decided
        earlier = sorted(out.glob("filter_report.round*.jsonl"))
        if earlier:
            result["filter_rounds"] = [filter_summary(path, plan.clean_train, plan.inputs["train"]) for path in earlier]
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
        # [step, resident MB, peak MB so far] at every evaluation (train.py records them since
        # this stop; earlier runs have none): does memory grow with the steps?
        "memory_curve": [[e["step"], e["rss_mb"], e["peak_rss_mb_so_far"]] for e in evaluations if "rss_mb" in e],
        # [step, heap in use, heap free but kept, mmapped, torch tensors Python holds] (MB)
        "heap_curve": [
            [e["step"], e["heap_in_use_mb"], e["heap_free_mb"], e["heap_mmapped_mb"], e["tensor_mb"]]
            for e in evaluations if "heap_in_use_mb" in e
        ],
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


def unit_noise_detection(epochs: List[Dict], units: Dict, clean_path: Path, noisy_path: Path) -> Dict:
    """spacy_rsft's `unit_noise_detection` on the clean and noisy training files."""
    import spacy
    from spacy.tokens import DocBin

    vocab = spacy.blank("en").vocab
    clean = list(DocBin().from_disk(clean_path).get_docs(vocab))
    noisy = list(DocBin().from_disk(noisy_path).get_docs(vocab))
    return detection.unit_noise_detection(epochs, units, clean, noisy)


def filter_summary(report: Path, clean_path: Optional[Path], noisy_path: Path) -> Dict:
    """What `spacy_rsft filter` rejected (count, share) and, with the clean labels, how well:
    precision and recall of "rejected" and the AUROC of the loss for "labels differ from the
    clean ones" (the reader's detection report, for one decision made before training)."""
    lines = read_stats(report)
    rejected = numpy.asarray([line["rejected"] for line in lines], dtype=bool)
    summary: Dict = {"units": len(lines), "rejected": int(rejected.sum()),
                     "share": round(float(rejected.mean()), 4) if lines else None}
    token_pass = bool(lines) and "masked_tokens" in lines[0]  # `filter --mask-outside-top`
    if token_pass:
        summary["tokens_masked"] = sum(len(line["masked_tokens"]) for line in lines)
    if clean_path is None:
        return summary
    import spacy
    from spacy.tokens import DocBin

    vocab = spacy.blank("en").vocab
    clean = list(DocBin().from_disk(clean_path).get_docs(vocab))
    noisy = list(DocBin().from_disk(noisy_path).get_docs(vocab))
    units = {"unit": "sentence", "doc": [line["doc"] for line in lines], "start": [line["start"] for line in lines],
             "end": [line["end"] for line in lines], "entity": [0] * len(lines)}
    flags = detection.noisy_units(units, clean, noisy)
    losses = numpy.asarray([numpy.nan if line["loss"] is None else line["loss"] for line in lines], dtype="float64")
    known = ~numpy.isnan(losses)
    summary.update({
        "noisy": int(flags.sum()),
        "precision": float((flags & rejected).sum() / rejected.sum()) if rejected.any() else None,
        "recall": float((flags & rejected).sum() / flags.sum()) if flags.any() else None,
        "loss_auroc": detection.auroc(losses[known], flags[known]),
    })
    if token_pass:
        summary.update(token_pass_detection(lines, clean, noisy))
    return summary


def token_pass_detection(lines: List[Dict], clean: List, noisy: List) -> Dict:
    """How well the token pass found the entities the noisy labels miss in the kept sentences:
    of its masked tokens, the share inside a clean entity (precision), and of the kept
    sentences' "O" tokens inside a clean entity, the share it masked (recall)."""
    masked_missed = masked = missed = 0
    for line in lines:
        if line["rejected"]:
            continue
        chosen = set(line["masked_tokens"])
        for t in range(line["start"], line["end"]):
            if noisy[line["doc"]][t].ent_iob_ != "O":
                continue
            in_clean_entity = clean[line["doc"]][t].ent_type_ != ""
            missed += in_clean_entity
            masked += t in chosen
            masked_missed += in_clean_entity and t in chosen
    return {"token_precision": masked_missed / masked if masked else None,
            "token_recall": masked_missed / missed if missed else None}


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
