"""What `filter --mask-outside P` would mask in the sentences a cross-fitted filter kept, for
several P, judged by NoiseBench's clean labels: of the "O" tokens whose out-of-fold entity
probability (1 - p(O)) is at least P, how many are tokens of a clean entity the noisy labels
miss (precision), how many of those missed-entity tokens it finds (recall, also per clean
label), and how many sentences it touches. A random choice of as many "O" tokens (the control)
finds missed-entity tokens at their base rate, also printed. Nothing is trained; the fold
models score the training set once.

    python scripts/outside_whatif.py "training/full/nb_crossfit_dfold_cpu@noise_distant/seed0/filter_report.jsonl" \\
        corpus/full/noisebench/noise_distant.spacy corpus/full/noisebench/clean.spacy \\
        training/full/_folds/570d525868823ce4 --output results/full/outside_whatif_crossfit_dfold_cpu_distant_seed0.json
"""
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional

import numpy
import spacy
import srsly
import typer
from spacy.tokens import Doc, DocBin

from bench import write_json
from spacy_rsft.cli.filter import fold_token_losses, read_folds
from spacy_rsft.sampling.units import loss_token_mask


def main(
    report: Path = typer.Argument(..., help="filter_report.jsonl of a cross-fitted run (which sentences it kept)"),
    noisy_train: Path = typer.Argument(..., help="The noisy training DocBin the filter read"),
    clean_train: Path = typer.Argument(..., help="The same docs with the clean labels"),
    folds_dir: Path = typer.Argument(..., help="The run's fold folder (folds.json, model0, model1, ...)"),
    thresholds: str = typer.Option("0.1,0.2,0.3,0.5,0.7,0.9", help="Comma-separated entity probabilities P"),
    output: Optional[Path] = typer.Option(None, help="Write the numbers here as JSON"),
) -> None:
    vocab = spacy.blank("en").vocab
    noisy = list(DocBin().from_disk(noisy_train).get_docs(vocab))
    clean = list(DocBin().from_disk(clean_train).get_docs(vocab))
    folds = read_folds(folds_dir / "folds.json", len(noisy))
    losses = fold_token_losses(str(folds_dir / "model{fold}" / "model-best"), folds, noisy)
    kept = kept_tokens(list(srsly.read_jsonl(report)), noisy)
    # the candidates: "O" tokens of the kept sentences, scored; what the clean labels call them
    flat_loss, flat_clean, flat_sent = [], [], []
    for d, (doc, gold) in enumerate(zip(noisy, clean)):
        candidate = loss_token_mask(doc, "outside") & kept[d] & ~numpy.isnan(losses[d])
        for t in numpy.flatnonzero(candidate):
            flat_loss.append(float(losses[d][t]))
            flat_clean.append(gold[t].ent_type_ or None)
            flat_sent.append((d, doc[t].sent.start))
    p_entity = -numpy.expm1(-numpy.asarray(flat_loss))  # 1 - p(O)
    missed = numpy.asarray([label is not None for label in flat_clean])
    out: Dict = {"report": str(report), "folds": str(folds_dir), "outside_tokens_kept": int(missed.size),
                 "missed_entity_tokens": int(missed.sum()),
                 "missed_by_label": dict(Counter(label for label in flat_clean if label).most_common()),
                 "base_rate": round(float(missed.mean()), 4) if missed.size else None, "thresholds": []}
    for p in [float(x) for x in thresholds.split(",") if x]:
        out["thresholds"].append(judge(p, p_entity, missed, flat_clean, flat_sent))
    print(f"{out['outside_tokens_kept']} O tokens in the kept sentences, {out['missed_entity_tokens']} of them in a "
          f"clean entity ({out['missed_by_label']}); a blind choice finds them at {out['base_rate']}")
    for row in out["thresholds"]:
        print(f"P >= {row['p']}: {row['masked']} tokens in {row['sentences']} sentences, precision {row['precision']}, "
              f"recall {row['recall']} (by label {row['recall_by_label']})")
    if output is not None:
        write_json(output, out)


def kept_tokens(lines: List[Dict], docs: List[Doc]) -> List[numpy.ndarray]:
    """Per doc, which tokens lie in a sentence the filter kept."""
    kept = [numpy.zeros((len(doc),), dtype=bool) for doc in docs]
    for line in lines:
        if not line["rejected"]:
            kept[line["doc"]][line["start"] : line["end"]] = True
    return kept


def judge(p: float, p_entity: numpy.ndarray, missed: numpy.ndarray, clean_labels: List[Optional[str]],
          sentences: List[tuple]) -> Dict:
    """What masking the tokens with entity probability >= p would mask and find."""
    chosen = p_entity >= p
    found = chosen & missed
    by_label = Counter(clean_labels[i] for i in numpy.flatnonzero(found))
    total = Counter(label for label in clean_labels if label)
    return {"p": p, "masked": int(chosen.sum()), "sentences": len({sentences[i] for i in numpy.flatnonzero(chosen)}),
            "precision": round(float(found.sum() / chosen.sum()), 4) if chosen.any() else None,
            "recall": round(float(found.sum() / missed.sum()), 4) if missed.any() else None,
            "recall_by_label": {label: round(by_label[label] / n, 3) for label, n in total.most_common()}}


if __name__ == "__main__":
    typer.run(main)
