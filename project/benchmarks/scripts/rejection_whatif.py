"""What other rejection rules would have rejected, on one finished run's own stats.

A rejecting run's sampler stats hold every unit's loss at every sampled epoch; with the clean
labels, which units were really noisy is known. For each sampled epoch this prints:

- the AUROC for "noisy" of the epoch's losses, of their mean over the epochs so far, of an
  exponential average (half weight per epoch) and of the mean of the per-epoch ranks (does a
  memory of earlier losses find the noisy units the model has since fitted?);
- precision and recall of rejecting the top k units of the epoch's losses for several k (is
  the rejection rate, not the ranking, what limits recall?);
- with `--by-kind` (sentence or example units), the recall of each top k per kind of noise:
  labels that only miss entities, only mistype them, only add spans, or a mix (which noise
  can a loss rank find at all?).

Nothing is trained: it reads STATS.jsonl and STATS.units.json of a run folder, e.g.

    python scripts/rejection_whatif.py "training/full/nb_denoise_sentmix@noise_distant/seed0" \
        corpus/full/noisebench/noise_distant.spacy corpus/full/noisebench/clean.spacy
"""
import json
from collections import Counter
from pathlib import Path
from typing import Annotated, List, Optional

import numpy
import spacy
import typer
from spacy.tokens import DocBin

from data import noise_kind
from spacy_rsft.sampling.detection import auroc, noisy_units


def main(
    run_dir: Annotated[Path, typer.Argument(help="A run folder with sampler_stats.jsonl and sampler_stats.units.json")],
    noisy_train: Annotated[Path, typer.Argument(help="The DocBin the run trained on")],
    clean_train: Annotated[Path, typer.Argument(help="The same docs with the clean labels")],
    ks: Annotated[str, typer.Option(help="Numbers of units to reject, comma-separated")] = "1000,1400,1800,2200,2600",
    by_kind: Annotated[bool, typer.Option("--by-kind", help="Recall of each top k per kind of noise (sentence or example units)")] = False,
) -> None:
    vocab = spacy.blank("en").vocab
    clean = list(DocBin().from_disk(clean_train).get_docs(vocab))
    noisy = list(DocBin().from_disk(noisy_train).get_docs(vocab))
    units = json.loads((run_dir / "sampler_stats.units.json").read_text(encoding="utf8"))
    flags = noisy_units(units, clean, noisy)
    print(f"{len(flags)} units, {int(flags.sum())} noisy ({flags.mean():.3f})")
    kinds = _kinds(units, clean, noisy) if by_kind else None
    if kinds is not None:
        print("noisy units by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(Counter(filter(None, kinds)).items())))
    history: List[numpy.ndarray] = []
    for line in (run_dir / "sampler_stats.jsonl").read_text(encoding="utf8").splitlines():
        stats = json.loads(line)
        losses = _losses(stats)
        if losses is None:
            continue
        history.append(losses)
        print(f"epoch {stats['epoch']}: rejected {stats['proposed'] - stats['accepted']}; "
              + _aurocs(history, flags) + "; " + _top_k(losses, flags, [int(k) for k in ks.split(",")], kinds))


def _kinds(units: dict, clean, noisy) -> List[Optional[str]]:
    """Each unit's kind of noise (None: its labels are the clean ones)."""
    if units["unit"] not in ("sentence", "example"):
        raise ValueError(f"--by-kind needs sentence or example units; this run's units are {units['unit']!r}")
    return [noise_kind(clean[d], noisy[d], start, end) for d, start, end in zip(units["doc"], units["start"], units["end"])]


def _losses(stats: dict):
    """The epoch's unit losses (NaN: not scored yet); None before the first scored epoch."""
    raw = stats.get("losses")
    if raw is None:
        return None
    losses = numpy.asarray([numpy.nan if x is None else x for x in raw], dtype=float)
    return None if numpy.isnan(losses).all() else losses


def _aurocs(history: List[numpy.ndarray], flags: numpy.ndarray) -> str:
    stacked = numpy.vstack(history)
    scored = ~numpy.isnan(stacked)
    mean = numpy.where(scored, stacked, 0).sum(0) / numpy.maximum(scored.sum(0), 1)
    ema = numpy.nan_to_num(history[0])
    for losses in history[1:]:
        ema = 0.5 * ema + 0.5 * numpy.nan_to_num(losses)
    ranks = numpy.vstack([numpy.argsort(numpy.argsort(numpy.nan_to_num(h))) for h in history]).mean(0)
    scores = {"epoch": numpy.nan_to_num(history[-1]), "mean": mean, "ema": ema, "rank": ranks}
    return "AUROC " + " ".join(f"{name} {auroc(s, flags):.3f}" for name, s in scores.items())


def _top_k(losses: numpy.ndarray, flags: numpy.ndarray, ks: List[int], kinds: Optional[List] = None) -> str:
    order = numpy.argsort(-numpy.nan_to_num(losses), kind="mergesort")
    totals = Counter(filter(None, kinds)) if kinds else Counter()
    cells = []
    for k in ks:
        chosen = flags[order[:k]]
        cell = f"top {k}: P {chosen.mean():.2f} R {chosen.sum() / flags.sum():.2f}"
        if totals:
            found = Counter(kinds[u] for u in order[:k] if kinds[u])
            cell += " (" + " ".join(f"{kind} {found[kind] / n:.2f}" for kind, n in sorted(totals.items())) + ")"
        cells.append(cell)
    return ", ".join(cells)


if __name__ == "__main__":
    typer.run(main)
