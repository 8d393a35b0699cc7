"""Inference words/s of the ner+el pipeline with one shared transformer, with a transformer
per component, and of rsft_ner alone, in the same run (round-robin, median of N).

The pipelines are built from init-config's configs and initialized, not trained: speed does
not depend on the weights, except through how many entities the NER finds (an untrained one
finds many spurious ones). So that every pipeline links the same mentions, the docs carry
AIDA's gold entities and rsft_ner's `_set_ents` is replaced by a no-op here: it does all its
other work (transformer, tags, decoding, its span group) and leaves `doc.ents`, the gold
mentions, to the linker.

usage: python scripts/shared_speed.py [--docs 100] [--runs 3] [--output results/full/shared_speed.json]
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import spacy
from spacy.tokens import DocBin
from spacy.training import Example
from spacy.util import load_model_from_config, registry

from spacy_rsft.cli.init_config import make_config
from spacy_rsft.io import atomic_output
from spacy_rsft.pipeline.ner import RsftEntityRecognizer

# keep the gold entities (see the module docstring)
RsftEntityRecognizer._set_ents = lambda self, doc, predicted: None

ROOT = Path(__file__).resolve().parents[1]
KB = ROOT / "corpus" / "aida" / "kb" / "kb"
CANDIDATES = ROOT / "corpus" / "aida" / "inputs" / "doc_candidates.jsonl"
DATA = ROOT / "corpus" / "full" / "aida" / "testa.spacy"


def build(pipeline: str, shared: bool, refs):
    config = make_config(pipeline, shared=shared)
    config["paths"]["kb"] = str(KB)
    if "rsft_entity_linker" in config["components"]:
        config["components"]["rsft_entity_linker"]["candidate_generator"] = {
            "@misc": "spacy-rsft.doc_candidates.v1", "path": str(CANDIDATES)}
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    examples = [Example(nlp.make_doc(ref.text), ref) for ref in refs[:20]]
    nlp.initialize(lambda: examples)
    return nlp


def with_gold_ents(nlp, refs):
    docs = []
    for ref in refs:
        doc = nlp.make_doc(ref.text)
        doc.ents = [e for e in (doc.char_span(g.start_char, g.end_char, label=g.label_) for g in ref.ents) if e is not None]
        docs.append(doc)
    return docs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--output", default=str(ROOT / "results" / "full" / "shared_speed.json"))
    args = parser.parse_args()
    registry.ensure_populated()
    refs = list(DocBin().from_disk(DATA).get_docs(spacy.blank("en").vocab))[: args.docs]
    pipelines = {
        "rsft_ner alone": build("ner", True, refs),
        "ner+el, one shared transformer": build("ner+el", True, refs),
        "ner+el, a transformer per component": build("ner+el", False, refs),
    }
    words = sum(len(ref) for ref in refs)
    mentions = sum(len(ref.ents) for ref in refs)
    times = {name: [] for name in pipelines}
    for _ in range(args.runs):  # round-robin: each round runs every pipeline once
        for name, nlp in pipelines.items():
            docs = with_gold_ents(nlp, refs)
            start = time.perf_counter()
            list(nlp.pipe(docs, batch_size=32))
            times[name].append(time.perf_counter() - start)
    alone = words / statistics.median(times["rsft_ner alone"])
    result = {
        "docs": len(refs), "words": words, "mentions": mentions, "runs": args.runs,
        "pipelines": {name: {"words_per_second_median": round(words / statistics.median(t), 1),
                             "ratio_to_rsft_ner_alone": round(words / statistics.median(t) / alone, 3),
                             "seconds": [round(x, 2) for x in t]} for name, t in times.items()},
    }
    print(json.dumps(result, indent=1))
    with atomic_output(args.output) as tmp:
        tmp.write_text(json.dumps(result, indent=1), encoding="utf8")


if __name__ == "__main__":
    main()
