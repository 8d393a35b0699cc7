"""What a token pass over the sentences a cross-fitted filter kept could find: masking single
"O" tokens where the out-of-fold model expects an entity the labels miss, instead of whole
sentences. Judged by NoiseBench's clean labels, two ways of choosing the tokens:
- by an absolute bar: every "O" token whose entity probability, 1 - p(O), is at least P;
- per label L, by rank: the k "O" tokens with the highest p(L) (the sum over L's BILU tags),
  so that a label the model gives little probability anywhere (distant labels miss 68% of
  MISC) is not drowned by the others.
For each: how many of the chosen tokens lie in a clean entity the noisy labels leave "O"
(precision; a blind choice finds them at the base rate, printed too) and how many of those
missed-entity tokens it finds (recall, per clean label). It also counts, per label, the
tokens the kept sentences label L: what the model still learns L from. Nothing is trained;
the fold models predict the training set once.

    python scripts/outside_whatif.py "training/full/nb_crossfit_dfold_cpu@noise_distant/seed0/filter_report.jsonl" \\
        corpus/full/noisebench/noise_distant.spacy corpus/full/noisebench/clean.spacy \\
        training/full/_folds/570d525868823ce4 --output results/full/outside_whatif_crossfit_dfold_cpu_distant_seed0.json
"""
from collections import Counter
from pathlib import Path
from typing import Annotated, Dict, List, Optional, Sequence

import numpy
import spacy
import srsly
import typer
from spacy.tokens import Doc, DocBin

from bench import write_json
from spacy_rsft.cli.filter import fold_label_probs, read_folds
from spacy_rsft.sampling.units import loss_token_mask


def main(
    report: Annotated[Path, typer.Argument(help="filter_report.jsonl of a cross-fitted run (which sentences it kept)")],
    noisy_train: Annotated[Path, typer.Argument(help="The noisy training DocBin the filter read")],
    clean_train: Annotated[Path, typer.Argument(help="The same docs with the clean labels")],
    folds_dir: Annotated[Path, typer.Argument(help="The run's fold folder (folds.json, model0, model1, ...)")],
    thresholds: Annotated[str, typer.Option(help="Comma-separated entity probabilities P")] = "0.1,0.2,0.3,0.5,0.7,0.9",
    ks: Annotated[str, typer.Option(help="Comma-separated numbers of tokens to take per label")] = "50,100,200,400",
    output: Annotated[Optional[Path], typer.Option(help="Write the numbers here as JSON")] = None,
) -> None:
    vocab = spacy.blank("en").vocab
    noisy = list(DocBin().from_disk(noisy_train).get_docs(vocab))
    clean = list(DocBin().from_disk(clean_train).get_docs(vocab))
    # the filter's own out-of-fold label probabilities (those of `--mask-outside-top`)
    doc_probs, labels = fold_label_probs(str(folds_dir / "model{fold}" / "model-best"),
                                         read_folds(folds_dir / "folds.json", len(noisy)), noisy)
    kept = kept_tokens(list(srsly.read_jsonl(report)), noisy)
    # the candidates: the "O" tokens of the kept sentences, what the model gives each label
    # there, and what the clean labels call them
    rows, clean_labels, sentences = [], [], []
    for d, (doc, gold) in enumerate(zip(noisy, clean)):
        for t in numpy.flatnonzero(loss_token_mask(doc, "outside") & kept[d]):
            rows.append(doc_probs[d][t])
            clean_labels.append(gold[t].ent_type_ or None)
            sentences.append((d, doc[t].sent.start))
    probs = numpy.asarray(rows, dtype="float64").reshape(len(rows), len(labels))
    p = {label: probs[:, j] for j, label in enumerate(labels)}
    p_entity = probs.sum(axis=1)  # 1 - p(O)
    missed = numpy.asarray([label is not None for label in clean_labels], dtype=bool)
    out: Dict = {"report": str(report), "folds": str(folds_dir), "outside_tokens_kept": int(missed.size),
                 "missed_entity_tokens": int(missed.sum()),
                 "missed_by_label": dict(Counter(label for label in clean_labels if label).most_common()),
                 "labelled_by_label": labelled_tokens(noisy, kept, labels),
                 "base_rate": round(float(missed.mean()), 4) if missed.size else None,
                 "thresholds": [judge(p_entity >= bar, missed, clean_labels, sentences, p=bar)
                                for bar in floats(thresholds)],
                 "per_label": {label: [judge(top(p[label], int(k)), missed, clean_labels, sentences, k=int(k),
                                             label=label) for k in floats(ks)] for label in labels}}
    print(f"{out['outside_tokens_kept']} O tokens in the kept sentences, {out['missed_entity_tokens']} of them in a "
          f"clean entity ({out['missed_by_label']}; labelled in them: {out['labelled_by_label']}); "
          f"a blind choice finds them at {out['base_rate']}")
    for row in out["thresholds"]:
        print(f"P >= {row['p']}: {row['chosen']} tokens in {row['sentences']} sentences, precision {row['precision']}, "
              f"recall {row['recall']} (by label {row['recall_by_label']})")
    for label, rows in out["per_label"].items():
        print(f"top by p({label}): " + "; ".join(f"{r['k']}: {r['found_label']} missed {label}, {r['found']} missed any"
                                                  for r in rows))
    if output is not None:
        write_json(output, out)


def floats(values: str) -> List[float]:
    return [float(x) for x in values.split(",") if x]


def kept_tokens(lines: List[Dict], docs: List[Doc]) -> List[numpy.ndarray]:
    """Per doc, which tokens lie in a sentence the filter kept."""
    kept = [numpy.zeros((len(doc),), dtype=bool) for doc in docs]
    for line in lines:
        if not line["rejected"]:
            kept[line["doc"]][line["start"] : line["end"]] = True
    return kept


def labelled_tokens(docs: List[Doc], kept: List[numpy.ndarray], labels: Sequence[str]) -> Dict[str, int]:
    """Per label, the tokens the kept sentences label with it."""
    counts = Counter(token.ent_type_ for doc, mask in zip(docs, kept) for token in doc if mask[token.i])
    return {label: counts[label] for label in labels}


def top(scores: numpy.ndarray, k: int) -> numpy.ndarray:
    """The k highest scores (ties by order)."""
    chosen = numpy.zeros(scores.shape, dtype=bool)
    chosen[numpy.argsort(-scores, kind="stable")[:k]] = True
    return chosen


def judge(chosen: numpy.ndarray, missed: numpy.ndarray, clean_labels: List[Optional[str]],
          sentences: List[tuple], **key) -> Dict:
    """What masking the chosen tokens would mask and find: overall, per clean label, and of
    the label `key["label"]` where the choice ranked by it."""
    found = chosen & missed
    by_label = Counter(clean_labels[i] for i in numpy.flatnonzero(found))
    total = Counter(label for label in clean_labels if label)
    row = {**key, "chosen": int(chosen.sum()), "sentences": len({sentences[i] for i in numpy.flatnonzero(chosen)}),
           "found": int(found.sum()),
           "precision": round(float(found.sum() / chosen.sum()), 4) if chosen.any() else None,
           "recall": round(float(found.sum() / missed.sum()), 4) if missed.any() else None,
           "recall_by_label": {label: round(by_label[label] / n, 3) for label, n in total.most_common()}}
    if "label" in key:
        row["found_label"] = by_label[key["label"]]
    return row


if __name__ == "__main__":
    typer.run(main)
