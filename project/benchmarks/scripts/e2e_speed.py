"""Inference speed of the trained end-to-end pipelines (suite e2e), in the same run
(round-robin, median of N): words/s of each whole pipeline from raw text, of the same
pipeline with its linker disabled, and from the difference the linker's own cost as the
mentions it links per second of its own time (the linker on top of a shared transformer, or
of spaCy's shared CNN tok2vec).

usage: python scripts/e2e_speed.py [--scale full] [--docs 100] [--runs 3] [--output results/full/e2e_speed.json]
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import spacy
from spacy.tokens import DocBin


from bench import load_benchmark, write_json

ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = {"e2e_spacy": "entity_linker", "e2e_rsft": "rsft_entity_linker"}


def timed(nlp, texts, disable=()):
    with nlp.select_pipes(disable=list(disable)):
        start = time.perf_counter()
        docs = list(nlp.pipe(texts, batch_size=32))
        return time.perf_counter() - start, docs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="full")
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    data = load_benchmark().scale(args.scale).data  # the scale's corpus folder
    refs = list(DocBin().from_disk(ROOT / "corpus" / data / "aida" / "testa.spacy").get_docs(spacy.blank("en").vocab))
    texts = [ref.text for ref in refs[: args.docs]]
    pipelines = {}
    for name, linker in SYSTEMS.items():
        model = ROOT / "training" / args.scale / name / "seed0" / "model-best"
        if not model.exists():
            raise SystemExit(f"{model} is missing: run `python scripts/run.py e2e --scale {args.scale}` first.")
        pipelines[name] = (spacy.load(model), linker)
        timed(pipelines[name][0], texts[:2])  # warm-up
    times = {name: {"whole": [], "without linker": []} for name in pipelines}
    mentions = {}
    for _ in range(args.runs):  # round-robin
        for name, (nlp, linker) in pipelines.items():
            seconds, docs = timed(nlp, texts)
            times[name]["whole"].append(seconds)
            mentions[name] = sum(len(doc.ents) for doc in docs)
            times[name]["without linker"].append(timed(nlp, texts, disable=[linker])[0])
    words = sum(len(nlp.make_doc(t)) for t in texts)
    result = {"docs": len(texts), "words": words, "runs": args.runs, "pipelines": {}}
    for name, t in times.items():
        whole, bare = statistics.median(t["whole"]), statistics.median(t["without linker"])
        result["pipelines"][name] = {
            "words_per_second_median": round(words / whole, 1),
            "words_per_second_without_linker": round(words / bare, 1),
            "mentions_linked": mentions[name],
            # the linker's own time: the whole pipeline's median minus the rest's
            "linker_mentions_per_second": round(mentions[name] / (whole - bare), 1) if whole > bare else None,
            "seconds": {k: [round(x, 2) for x in v] for k, v in t.items()},
        }
    spacy_wps = result["pipelines"]["e2e_spacy"]["words_per_second_median"]
    for entry in result["pipelines"].values():
        entry["ratio_to_spacy_pipeline"] = round(entry["words_per_second_median"] / spacy_wps, 3)
    print(json.dumps(result, indent=1))
    output = args.output or ROOT / "results" / args.scale / "e2e_speed.json"
    write_json(output, result)


if __name__ == "__main__":
    main()
