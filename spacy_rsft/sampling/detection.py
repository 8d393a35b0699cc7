"""How well rejection finds label noise, when the clean labels are known (a benchmark, the
demo): which units carry noise, and per sampled epoch the precision, recall and AUROC of
"rejected" against "noisy". Reads what the reader writes with `stats_path` (the per-epoch
stats and the unit table, STATS.units.json).
"""
from typing import Dict, List, Optional

import numpy
from spacy.tokens import Doc


def noisy_units(units: Dict, clean: List[Doc], noisy: List[Doc]) -> numpy.ndarray:
    """Which units carry label noise: an entity unit whose span and label are not a clean
    entity; an outside token inside a clean entity; a sentence or example whose entities
    differ from the clean ones.

    units (Dict): The reader's unit table (doc, start, end, entity per unit; unit kind).
    clean (List[Doc]): The training docs with the clean labels, in the reader's order.
    noisy (List[Doc]): The same docs with the labels trained on.
    RETURNS (numpy.ndarray): One bool per unit.
    """
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
    that a random positive scores above a random negative. None without both classes."""
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


def unit_noise_detection(epochs: List[Dict], units: Dict, clean: List[Doc], noisy: List[Doc]) -> Dict:
    """How well rejection finds the units whose labels differ from the clean ones, per
    sampled epoch: precision and recall of "rejected", the AUROC of the rejection
    probability (1 - acceptance; flat below the rejection quantile, so it also reflects how
    much was rejected) and the AUROC of the loss the sampler ranks by (`loss_auroc`: how
    well the ranking itself separates noisy from clean units), over all units and per kind
    (entity spans, outside tokens) for span units.

    epochs (List[Dict]): The reader's per-epoch stats (the STATS jsonl).
    units (Dict): The unit table (STATS.units.json).
    clean, noisy (List[Doc]): See `noisy_units`.
    RETURNS (Dict): {"unit", "context", "epochs": [{"epoch", KIND: {...}}]}.
    """
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
