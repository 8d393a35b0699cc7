"""Evaluate any entity-linking pipeline (rsft_entity_linker or spaCy's entity_linker) on
gold entities with the same metrics: spaCy's link P/R/F plus in-KB accuracy and NIL P/R
(spacy-rsft.el_scorer.v1), and mentions/second.

usage: python scripts/el_evaluate.py MODEL_DIR DATA.spacy [--output metrics.json]
"""
import argparse
import json
import time
from typing import List

import spacy
from spacy.tokens import Doc, DocBin
from spacy.training import Example

from bench import write_json
from spacy_rsft.calibration import reliability_bins
from spacy_rsft.scorers import link_outcomes, score_links


def with_gold_mentions(nlp, ref: Doc) -> Doc:
    """A new doc of the reference's text with its gold entity spans (labels, no links)."""
    doc = nlp.make_doc(ref.text)
    spans = (doc.char_span(g.start_char, g.end_char, label=g.label_) for g in ref.ents)
    doc.ents = [span for span in spans if span is not None]
    return doc


def link_gold_mentions(nlp, docs: List[Doc]) -> List[Doc]:
    """Run every component except those that would overwrite the gold entities."""
    with nlp.select_pipes(disable=[n for n in nlp.pipe_names if n in ("ner", "rsft_ner", "entity_ruler")]):
        return list(nlp.pipe(docs))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("data")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    nlp = spacy.load(args.model)
    refs = list(DocBin().from_disk(args.data).get_docs(nlp.vocab))
    docs = [with_gold_mentions(nlp, ref) for ref in refs]
    n_mentions = sum(len(doc.ents) for doc in docs)
    start = time.perf_counter()
    predicted = link_gold_mentions(nlp, docs)
    seconds = time.perf_counter() - start
    examples = [Example(p, r) for p, r in zip(predicted, refs)]
    scores = score_links(examples)
    # kb_score against correctness, binned: the report's reliability plot
    scores["nel_reliability"] = reliability_bins(*link_outcomes(examples))
    scores.pop("nel_f_per_type", None)
    if "rsft_entity_linker" not in nlp.pipe_names:
        # Candidate recall and recall@k read the ranked candidates rsft_entity_linker keeps
        # on each entity; other linkers do not keep them, so the numbers would be zeros.
        for key in ("nel_candidate_recall", "nel_recall_at_1", "nel_recall_at_5"):
            scores[key] = None
    scores["mentions_per_second"] = round(n_mentions / seconds, 1)
    scores["mentions"] = n_mentions
    print(json.dumps({k: v for k, v in scores.items() if k != "nel_reliability"}, indent=1))
    if args.output:
        write_json(args.output, scores)


if __name__ == "__main__":
    main()
