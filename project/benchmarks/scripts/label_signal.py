"""Which missed entities a per-label signal finds among the sentences a cross-fitted filter
kept. The filter ranks sentences by their largest outside-token loss, -log p(O). Fold models
trained on labels that miss most of one type (distant labels miss 68% of MISC) give an
unlabelled mention of that type little probability, so its sentence ranks low. Per label L,
this scores each sentence by the largest p(some L tag) over its outside tokens, under the
fold model that never saw it, and judges the score, within the kept sentences (or all), against
"the labels miss an L entity here" and against "the labels differ from clean": AUROC and how
many of the top k are such sentences. Nothing is trained.

    python scripts/label_signal.py "training/full/nb_crossfit_dfold_cpu@noise_distant/seed0/filter_report.jsonl" \\
        corpus/full/noisebench/noise_distant.spacy corpus/full/noisebench/clean.spacy \\
        training/full/_folds/570d525868823ce4 --output results/full/label_signal_crossfit_dfold_cpu_distant_seed0.json
"""
from pathlib import Path
from typing import Annotated, Dict, List, Optional, Sequence

import numpy
import spacy
import srsly
import typer
from spacy.tokens import Doc, DocBin

from bench import write_json
from data import ent_set, noise_kind
from spacy_rsft.sampling.detection import auroc
from type_signal import out_of_fold_log_probs

TOP_K = (50, 100, 200)


def main(
    report: Annotated[Path, typer.Argument(help="filter_report.jsonl of a cross-fitted run")],
    noisy_train: Annotated[Path, typer.Argument(help="The noisy training DocBin the filter read")],
    clean_train: Annotated[Path, typer.Argument(help="The same docs with the clean labels")],
    folds_dir: Annotated[Path, typer.Argument(help="The run's fold folder (folds.json, model0, model1, ...)")],
    scope: Annotated[str, typer.Option(help="Judge among the sentences the filter 'kept' or 'all'")] = "kept",
    output: Annotated[Optional[Path], typer.Option(help="Write the numbers here as JSON")] = None,
) -> None:
    if scope not in ("kept", "all"):
        raise typer.BadParameter(f"--scope must be 'kept' or 'all', not {scope!r}")
    vocab = spacy.blank("en").vocab
    noisy = list(DocBin().from_disk(noisy_train).get_docs(vocab))
    clean = list(DocBin().from_disk(clean_train).get_docs(vocab))
    log_probs, tags = out_of_fold_log_probs(folds_dir, noisy)
    labels = sorted({tag[2:] for tag in tags if tag != "O"})
    lines = [line for line in srsly.read_jsonl(report) if scope == "all" or not line["rejected"]]
    scores = [label_scores(log_probs[line["doc"]], noisy[line["doc"]], line["start"], line["end"], tags, labels)
              for line in lines]
    missed = [missed_labels(clean[line["doc"]], noisy[line["doc"]], line["start"], line["end"]) for line in lines]
    noisy_flags = [noise_kind(clean[line["doc"]], noisy[line["doc"]], line["start"], line["end"]) is not None
                   for line in lines]
    out: Dict = {"report": str(report), "folds": str(folds_dir), "scope": scope, "sentences": len(lines),
                 "noisy": int(sum(noisy_flags)),
                 "labels": {label: judge([s[label] for s in scores], [label in m for m in missed], noisy_flags)
                            for label in labels}}
    for label, row in out["labels"].items():
        print(f"{label}: {row['missed']} sentences miss one; AUROC {row['auroc_missed']} (noisy {row['auroc_noisy']}); "
              f"top {list(TOP_K)}: missing {row['top_k_missed']}, noisy {row['top_k_noisy']}")
    if output is not None:
        write_json(output, out)


def label_scores(log_probs: numpy.ndarray, doc: Doc, start: int, end: int, tags: Sequence[str],
                 labels: Sequence[str]) -> Dict[str, float]:
    """Per label, the largest probability of any of its tags over the sentence's tokens
    outside the labelled entities (0 when every token is inside one)."""
    inside = numpy.zeros((len(doc),), dtype=bool)
    for ent in doc.ents:
        inside[ent.start : ent.end] = True
    outside = [t for t in range(start, end) if not inside[t]]
    index = {tag: i for i, tag in enumerate(tags)}
    scores = {}
    for label in labels:
        columns = [index[tag] for tag in tags if tag != "O" and tag[2:] == label]
        per_token = numpy.logaddexp.reduce(log_probs[outside][:, columns], axis=1) if outside else numpy.zeros(0)
        scores[label] = float(numpy.exp(per_token.max())) if per_token.size else 0.0
    return scores


def missed_labels(clean: Doc, noisy: Doc, start: int, end: int) -> set:
    """The labels of the clean entities in the sentence with no labelled span at their place."""
    labelled = {span[:2] for span in ent_set(noisy, start, end)}
    return {label for s, e, label in ent_set(clean, start, end) if (s, e) not in labelled}


def judge(scores: List[float], missed: List[bool], noisy: List[bool]) -> Dict:
    """AUROC of the score against both flags, and how many of the top k carry each."""
    x, y_missed, y_noisy = numpy.asarray(scores), numpy.asarray(missed), numpy.asarray(noisy)
    order = numpy.argsort(-x, kind="stable")
    return {"missed": int(y_missed.sum()),
            "auroc_missed": round(auroc(x, y_missed), 4) if 0 < y_missed.sum() < len(x) else None,
            "auroc_noisy": round(auroc(x, y_noisy), 4) if 0 < y_noisy.sum() < len(x) else None,
            "top_k_missed": [int(y_missed[order[:k]].sum()) for k in TOP_K],
            "top_k_noisy": [int(y_noisy[order[:k]].sum()) for k in TOP_K]}


if __name__ == "__main__":
    typer.run(main)
