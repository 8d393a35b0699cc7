"""How well one `spacy_rsft filter` decision found NoiseBench's label noise, and what other
rates would have found: from the filter's report (every sentence's loss and decision) and the
clean labels of the same docs. Per number of rejected sentences k (the filter's own first):
precision and recall of the top k, and the recall of each kind of noise (only missing
entities, only a wrong type, spurious, mixed); then the loss AUROC. Nothing is scored again.

    python scripts/filter_whatif.py "training/full/nb_crossfit@noise_crowdbest/seed2/filter_report.jsonl" \\
        corpus/full/noisebench/noise_crowdbest.spacy corpus/full/noisebench/clean.spacy --ks 600,800,1000 \\
        --output results/full/filter_whatif_crossfit_crowd_seed2.json
"""
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional

import numpy
import spacy
import srsly
import typer
from spacy.tokens import DocBin

from bench import write_json
from data import noise_kind
from spacy_rsft.sampling.detection import auroc

KINDS = ("missing", "type", "spurious", "mixed")


def main(
    report: Path = typer.Argument(..., help="filter_report.jsonl of a two-pass run"),
    noisy_train: Path = typer.Argument(..., help="The noisy training DocBin the filter read"),
    clean_train: Path = typer.Argument(..., help="The same docs with the clean labels"),
    ks: str = typer.Option("", help="Comma-separated numbers of top-ranked sentences to judge as well"),
    output: Optional[Path] = typer.Option(None, help="Write the numbers here as JSON"),
) -> None:
    vocab = spacy.blank("en").vocab
    noisy = list(DocBin().from_disk(noisy_train).get_docs(vocab))
    clean = list(DocBin().from_disk(clean_train).get_docs(vocab))
    lines = list(srsly.read_jsonl(report))
    kinds = [noise_kind(clean[line["doc"]], noisy[line["doc"]], line["start"], line["end"]) for line in lines]
    losses = numpy.asarray([-numpy.inf if line["loss"] is None else line["loss"] for line in lines])
    flags = numpy.asarray([k is not None for k in kinds])
    chosen = int(sum(line["rejected"] for line in lines))
    out: Dict = {"report": str(report), "units": len(lines), "noisy": int(flags.sum()),
                 "noisy_by_kind": dict(Counter(k for k in kinds if k)), "rejected": chosen,
                 "loss_auroc": round(auroc(losses[numpy.isfinite(losses)], flags[numpy.isfinite(losses)]), 4),
                 "top_k": [top_k(losses, kinds, k) for k in [chosen] + [int(k) for k in ks.split(",") if k]]}
    for row in out["top_k"]:
        by_kind = ", ".join(f"{kind} {row['recall_' + kind]:.2f}" for kind in KINDS if f"recall_{kind}" in row)
        print(f"top {row['k']:>5}: precision {row['precision']:.3f} recall {row['recall']:.3f} ({by_kind})")
    print(f"loss AUROC {out['loss_auroc']:.3f}; {out['noisy']} noisy of {out['units']}: {out['noisy_by_kind']}")
    if output is not None:
        write_json(output, out)


def top_k(losses: numpy.ndarray, kinds: List[Optional[str]], k: int) -> Dict:
    """Precision and recall of the k highest losses, overall and per kind of noise."""
    order = numpy.argsort(-losses, kind="stable")[:k]
    picked = Counter(kinds[i] for i in order)
    total = Counter(kinds)
    noisy = sum(n for kind, n in total.items() if kind)
    found = sum(n for kind, n in picked.items() if kind)
    row = {"k": k, "precision": round(found / k, 4) if k else None, "recall": round(found / noisy, 4) if noisy else None}
    for kind in KINDS:
        if total[kind]:
            row[f"recall_{kind}"] = round(picked[kind] / total[kind], 4)
    return row


if __name__ == "__main__":
    typer.run(main)
