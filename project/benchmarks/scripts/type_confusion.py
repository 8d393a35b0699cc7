"""Are a label set's wrong types random slips or one convention, and what do they cost on dev?

A loss can only flag a label the model finds surprising. If a label set mistypes one kind of
name the same way every time (a sports team named by its country labelled LOC where the clean
labels say ORG), a model trained on it learns that as the rule, and no ranking by its loss
finds those sentences. Three views, nothing trained:

- the labels: over the entities a noisy set spans exactly as the clean labels do, which clean
  type it gives which noisy type, and for each mistyped surface string how many of its
  same-span mentions the set types the same wrong way (one convention) or correctly;
- with `--folds FOLDS_DIR` (a cross-fitted system's fold models, `training/SCALE/_folds/ID`):
  for each mistyped entity, whether the fold model that never saw its article prefers the
  noisy type or the clean one (the type posterior over the entity's BILU tags, normalised over
  types), and what retyping every entity whose posterior argmax differs from its label with
  probability >= t would fix and break;
- with `--model NAME=PATH` (repeatable): each model's per-type scores on the clean dev set and
  how many gold entities it finds with the exact span but another type, by (gold, predicted).

    python scripts/type_confusion.py corpus/full/noisebench/noise_crowdbest.spacy \\
        corpus/full/noisebench/clean.spacy --dev corpus/full/noisebench/dev.spacy \\
        --folds training/full/_folds/f07b1ac2c85c5195 \\
        --model "oracle=training/full/nb_oracle@noise_crowdbest/seed2/model-best" \\
        --output results/full/type_confusion_crowd_seed2.json
"""
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Annotated, Dict, List, Optional, Sequence, Tuple

import numpy
import spacy
import typer
from spacy.scorer import Scorer
from spacy.tokens import Doc, DocBin
from spacy.training import Example

from bench import write_json
from type_signal import bilu_prefixes, out_of_fold_log_probs, unannotated

THRESHOLDS = (0.5, 0.7, 0.9, 0.95)


def main(
    noisy_train: Annotated[Path, typer.Argument(help="The noisy training DocBin")],
    clean_train: Annotated[Path, typer.Argument(help="The same docs with the clean labels")],
    dev: Annotated[Optional[Path], typer.Option(help="The clean dev DocBin, for --model")] = None,
    folds: Annotated[Optional[Path], typer.Option(help="A cross-fitted system's fold models folder (folds.json, modelN/)")] = None,
    model: Annotated[Optional[List[str]], typer.Option(help="NAME=PATH of a trained pipeline to score on --dev (repeatable)")] = None,
    output: Annotated[Optional[Path], typer.Option(help="Write the numbers here as JSON")] = None,
) -> None:
    vocab = spacy.blank("en").vocab
    noisy, clean = read_docs(noisy_train, vocab), read_docs(clean_train, vocab)
    result: Dict = {"noisy_train": str(noisy_train), "labels": label_confusion(noisy, clean)}
    if folds is not None:
        result["folds"] = {"folds": str(folds), **out_of_fold_types(folds, noisy, clean)}
    if model:
        if dev is None:
            raise typer.BadParameter("--model needs --dev, the clean dev set to score on")
        result["dev"] = {name: dev_confusion(Path(path), dev) for name, path in (m.split("=", 1) for m in model)}
    print(json.dumps(result, indent=1))
    if output is not None:
        write_json(output, result)


def read_docs(path: Path, vocab) -> List[Doc]:
    return list(DocBin().from_disk(path).get_docs(vocab))


def same_span_pairs(noisy: Sequence[Doc], clean: Sequence[Doc]):
    """(doc index, noisy entity, clean label) for every noisy entity whose span the clean
    labels also mark as an entity."""
    for d, (doc, gold) in enumerate(zip(noisy, clean)):
        gold_types = {(e.start, e.end): e.label_ for e in gold.ents}
        for ent in doc.ents:
            if (ent.start, ent.end) in gold_types:
                yield d, ent, gold_types[(ent.start, ent.end)]


def label_confusion(noisy: Sequence[Doc], clean: Sequence[Doc], top: int = 15) -> Dict:
    """Clean type -> noisy type over same-span entities, and how consistently each mistyped
    surface string is mistyped."""
    confusion: Counter = Counter()
    by_text: Dict[Tuple[str, str], Counter] = defaultdict(Counter)
    for _, ent, gold in same_span_pairs(noisy, clean):
        confusion[(gold, ent.label_)] += 1
        by_text[(ent.text, gold)][ent.label_] += 1
    wrong = sum(n for (g, p), n in confusion.items() if g != p)
    # a mistyped mention is "conventional" when its string, with that clean type, is given
    # the same wrong type in most of its same-span mentions
    conventional = 0
    strings = []
    for (text, gold), labels in by_text.items():
        mistyped = sum(n for label, n in labels.items() if label != gold)
        if not mistyped:
            continue
        if max(n for label, n in labels.items() if label != gold) > labels[gold]:
            conventional += mistyped
        strings.append({"text": text, "clean": gold, "noisy": dict(labels), "mistyped": mistyped})
    strings.sort(key=lambda s: -s["mistyped"])
    return {
        "same_span_entities": sum(confusion.values()),
        "mistyped": wrong,
        "mistyped_by_pair": {f"{g}->{p}": n for (g, p), n in confusion.most_common() if g != p},
        "mistyped_where_the_string_is_mostly_mistyped": conventional,
        "top_strings": strings[:top],
    }


def out_of_fold_types(folds_dir: Path, noisy: Sequence[Doc], clean: Sequence[Doc]) -> Dict:
    """What the fold model that never saw an article thinks of its mistyped entities."""
    log_probs, tags = out_of_fold_log_probs(folds_dir, noisy)
    types = sorted({tag[2:] for tag in tags if tag != "O"})
    index = {tag: i for i, tag in enumerate(tags)}
    # (noisy type, clean type, the posterior's argmax and its probability) per same-span entity
    rows = []
    for d, ent, gold in same_span_pairs(noisy, clean):
        post = type_posterior(log_probs[d][ent.start : ent.end], types, index)
        rows.append((ent.label_, gold, post[types.index(gold)] > post[types.index(ent.label_)],
                     types[int(post.argmax())], float(post.max())))
    wrong = [row for row in rows if row[0] != row[1]]
    retyping = {}
    for t in THRESHOLDS:
        changed = [(label, gold, best) for label, gold, _, best, p in rows if best != label and p >= t]
        retyping[str(t)] = {"retyped": len(changed), "fixed": sum(g == b for _, g, b in changed),
                            "broken": sum(l == g for l, g, _ in changed)}
    return {"same_span_entities": len(rows), "mistyped": len(wrong),
            "mistyped_where_the_fold_model_prefers_the_clean_type": sum(bool(row[2]) for row in wrong),
            "retyping_at_posterior": retyping}


def type_posterior(log_probs: numpy.ndarray, types: Sequence[str], index: Dict[str, int]) -> numpy.ndarray:
    """p(type | this span is one entity): each type's joint log-probability of the span's BILU
    tags, normalised over the types."""
    prefixes = bilu_prefixes(len(log_probs))
    joint = numpy.asarray([sum(log_probs[k, index[f"{p}-{t}"]] for k, p in enumerate(prefixes)) for t in types])
    return numpy.exp(joint - numpy.logaddexp.reduce(joint))


def dev_confusion(model: Path, dev: Path) -> Dict:
    """Per-type P/R/F on the clean dev set, and the gold entities found with the exact span
    but another type."""
    nlp = spacy.load(model)
    gold = read_docs(dev, nlp.vocab)
    predicted = list(nlp.pipe(unannotated(nlp.vocab, gold)))
    scores = Scorer.score_spans([Example(p, g) for p, g in zip(predicted, gold)], "ents")
    confusion: Counter = Counter()
    for p, g in zip(predicted, gold):
        types = {(e.start, e.end): e.label_ for e in p.ents}
        for ent in g.ents:
            other = types.get((ent.start, ent.end))
            if other is not None and other != ent.label_:
                confusion[f"{ent.label_}->{other}"] += 1
    return {"model": str(model), "f": scores["ents_f"], "p": scores["ents_p"], "r": scores["ents_r"],
            "per_type": {t: {k: round(v, 4) for k, v in s.items()} for t, s in scores["ents_per_type"].items()},
            "mistyped": sum(confusion.values()), "mistyped_by_pair": dict(confusion.most_common())}


if __name__ == "__main__":
    typer.run(main)
