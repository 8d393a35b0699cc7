"""Evaluate an NER + entity-linking pipeline end to end: raw text in (the gold docs' text,
tokenized by the pipeline), entities and links out. The same numbers for any pipeline
(rsft_ner + rsft_entity_linker, spaCy's ner + entity_linker):

- NER P/R/F (spaCy's ner scorer) and, for rsft_ner, the ECE of its entity confidences;
- the end-to-end strong-match InKB micro P/R/F of the links (a link counts when its span and
  its KB id both equal a gold one; spacy_rsft.scorers.score_links_end_to_end);
- words/s and links/s of `nlp.pipe` over the whole set (one pass, after one warm-up doc).

usage: python scripts/e2e_evaluate.py MODEL_DIR DATA.spacy [--output metrics.json]
"""
import argparse
import json
import time
from typing import Dict, List

import spacy
from spacy.tokens import Doc, DocBin
from spacy.training import Example

from bench import write_json
from spacy_rsft.annotations import NIL
from spacy_rsft.scorers import score_links_end_to_end, score_ner

NER_FACTORIES = ("ner", "rsft_ner")


def evaluate(nlp, refs: List[Doc], name: str = "the pipeline") -> Dict:
    """NER and end-to-end link scores of `nlp` from the reference docs' raw text, with the
    words/s of one `nlp.pipe` pass over them."""
    factories = {pipe: nlp.get_pipe_meta(pipe).factory for pipe in nlp.pipe_names}
    if not any(f in NER_FACTORIES for f in factories.values()):
        raise SystemExit(f"{name}: no NER component ({', '.join(NER_FACTORIES)}) in {nlp.pipe_names}; "
                         "use el_evaluate.py for a linker on gold mentions.")
    texts = [ref.text for ref in refs]
    list(nlp.pipe(texts[:1]))  # load lazily built parts (tokenizer caches, KB tables) outside the timing
    start = time.perf_counter()
    predicted = list(nlp.pipe(texts))
    seconds = time.perf_counter() - start
    examples = [Example(p, r) for p, r in zip(predicted, refs)]
    spans_key = next((nlp.get_pipe(n).cfg.get("spans_key") for n, f in factories.items() if f == "rsft_ner"), None)
    scores = score_ner(examples, spans_key=spans_key)
    scores.update(score_links_end_to_end(examples))
    n_words = sum(len(doc) for doc in predicted)
    n_links = sum(1 for doc in predicted for ent in doc.ents if ent.kb_id_ and ent.kb_id_ != NIL)
    scores.update({
        "words": n_words,
        "seconds": round(seconds, 2),
        "words_per_second": round(n_words / seconds, 1),
        "predicted_links": n_links,
        "pipeline": nlp.pipe_names,
    })
    return scores


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("data")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    nlp = spacy.load(args.model)
    refs = list(DocBin().from_disk(args.data).get_docs(nlp.vocab))
    scores = evaluate(nlp, refs, args.model)
    print(json.dumps({k: v for k, v in scores.items() if k != "ents_per_type"}, indent=1))
    if args.output:
        write_json(args.output, scores)


if __name__ == "__main__":
    main()
