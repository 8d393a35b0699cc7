"""How well one `spacy_rsft filter` decision found NoiseBench's label noise, and what other
rates would have found: from the filter's report (every sentence's loss and decision) and the
clean labels of the same docs. Per number of rejected sentences k (the filter's own first):
precision and recall of the top k, and the recall of each kind of noise (only missing
entities, only a wrong type, spurious, mixed); then the loss AUROC; then, for the filter's
own decision, the clean entities the noisy labels miss (no labelled span there) by their clean
label, in the sentences it masked and in those it kept: which missed entities a ranking by the
model's own loss does not see. Nothing is scored again.

    python scripts/filter_whatif.py "training/full/nb_crossfit@noise_crowdbest/seed2/filter_report.jsonl" \\
        corpus/full/noisebench/noise_crowdbest.spacy corpus/full/noisebench/clean.spacy --ks 600,800,1000 \\
        --output results/full/filter_whatif_crossfit_crowd_seed2.json
"""
from collections import Counter
from pathlib import Path
from typing import Annotated, Dict, List, Optional

import numpy
import spacy
import srsly
import typer
from spacy.tokens import DocBin

from bench import write_json
from data import ent_set, noise_kind
from spacy_rsft.sampling.detection import auroc

KINDS = ("missing", "type", "spurious", "mixed")


def main(
    report: Annotated[Path, typer.Argument(help="filter_report.jsonl of a two-pass run")],
    noisy_train: Annotated[Path, typer.Argument(help="The noisy training DocBin the filter read")],
    clean_train: Annotated[Path, typer.Argument(help="The same docs with the clean labels")],
    ks: Annotated[str, typer.Option(help="Comma-separated numbers of top-ranked sentences to judge as well")] = "",
    output: Annotated[Optional[Path], typer.Option(help="Write the numbers here as JSON")] = None,
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
    out["missed_entities"] = missed_entities(lines, clean, noisy)
    for row in out["top_k"]:
        by_kind = ", ".join(f"{kind} {row['recall_' + kind]:.2f}" for kind in KINDS if f"recall_{kind}" in row)
        print(f"top {row['k']:>5}: precision {row['precision']:.3f} recall {row['recall']:.3f} ({by_kind})")
    print(f"loss AUROC {out['loss_auroc']:.3f}; {out['noisy']} noisy of {out['units']}: {out['noisy_by_kind']}")
    for decision, counts in out["missed_entities"].items():
        print(f"missed clean entities in the {decision} sentences: {counts}")
    if output is not None:
        write_json(output, out)


def missed_entities(lines: List[Dict], clean: List, noisy: List) -> Dict[str, Dict[str, int]]:
    """Per decision ("masked", "kept"), the clean entities with no labelled span of the noisy
    labels at their place, counted by clean label (most first)."""
    counts = {"masked": Counter(), "kept": Counter()}
    for line in lines:
        doc, start, end = line["doc"], line["start"], line["end"]
        labelled = {span[:2] for span in ent_set(noisy[doc], start, end)}
        missed = [label for s, e, label in ent_set(clean[doc], start, end) if (s, e) not in labelled]
        counts["masked" if line["rejected"] else "kept"].update(missed)
    return {decision: dict(counter.most_common()) for decision, counter in counts.items()}


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
