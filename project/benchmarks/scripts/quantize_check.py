"""fp32 against int8 (quantize = "int8") for one trained pipeline: dev scores and inference
words/s, measured round-robin in one process (median of --rounds), plus the RSS after
loading each. A check of the quantized path on a real model, not a benchmark row.

usage: python scripts/quantize_check.py MODEL_DIR DEV.spacy [--rounds 3] [--output FILE]
"""
import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import spacy
from spacy.tokens import DocBin
from spacy.training import Example

from spacy_rsft.cli.quantize import rsft_components


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", type=Path)
    parser.add_argument("dev", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    names = rsft_components(spacy.util.load_config(args.model / "config.cfg"))
    pipelines = {
        "fp32": spacy.load(args.model),
        "int8": spacy.load(args.model, config={f"components.{n}.quantize": "int8" for n in names}),
    }
    gold = list(DocBin().from_disk(args.dev).get_docs(pipelines["fp32"].vocab))
    texts = [doc.text for doc in gold]
    words = sum(len(doc) for doc in gold)
    report = {"model": str(args.model), "dev": str(args.dev), "words": words, "rounds": args.rounds, "systems": {}}
    for name, nlp in pipelines.items():
        examples = [Example(nlp.make_doc(doc.text), doc) for doc in gold]
        scores = nlp.evaluate(examples)
        report["systems"][name] = {k: scores[k] for k in ("ents_f", "ents_p", "ents_r") if k in scores}
        report["systems"][name]["ents_per_type"] = {k: v["f"] for k, v in scores.get("ents_per_type", {}).items()}
    times = {name: [] for name in pipelines}
    for _ in range(args.rounds):  # round-robin: both see the same machine load
        for name, nlp in pipelines.items():
            start = time.perf_counter()
            for _doc in nlp.pipe(texts, batch_size=64):
                pass
            times[name].append(time.perf_counter() - start)
    for name in pipelines:
        seconds = statistics.median(times[name])
        report["systems"][name].update({"seconds": [round(t, 2) for t in times[name]], "words_per_second": round(words / seconds)})
    fp32, int8 = report["systems"]["fp32"], report["systems"]["int8"]
    report["int8_vs_fp32"] = {"speed": round(int8["words_per_second"] / fp32["words_per_second"], 3),
                              "ents_f_difference": round(100 * (int8["ents_f"] - fp32["ents_f"]), 2)}
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf8")


if __name__ == "__main__":
    main()
