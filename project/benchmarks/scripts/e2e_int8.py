"""The end-to-end pipeline (`ner+el`, one shared transformer) in fp32 and int8, in one
process: `python -m spacy_rsft quantize` writes the int8 copy, then each is evaluated from
raw text (`e2e_evaluate.evaluate`: NER P/R/F and ECE, end-to-end InKB P/R/F, words/s of one
`nlp.pipe` pass), alternately, --rounds times, so both see the same machine.

usage: python scripts/e2e_int8.py MODEL_DIR DATA.spacy [--rounds 2] [--output results/full/e2e_int8.json]
"""
import argparse
import json
import statistics
import tempfile
from pathlib import Path

import spacy
from spacy.tokens import DocBin

from bench import write_json
from e2e_evaluate import evaluate
from spacy_rsft.cli.quantize import quantize_pipeline

KEPT = ("ents_f", "ents_p", "ents_r", "ents_ece", "nel_e2e_inkb_f", "nel_e2e_inkb_p", "nel_e2e_inkb_r", "words_per_second", "words")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:  # kept until the end: the copy is what runs
        quantize_pipeline(args.model, Path(tmp) / "int8")
        pipelines = {"fp32": spacy.load(args.model), "int8": spacy.load(Path(tmp) / "int8")}
        refs = list(DocBin().from_disk(args.data).get_docs(pipelines["fp32"].vocab))
        runs = []
        for round_ in range(1, args.rounds + 1):
            for precision, nlp in pipelines.items():
                scores = evaluate(nlp, refs, f"{args.model} ({precision})")
                runs.append({"precision": precision, "round": round_, **{k: scores.get(k) for k in KEPT}})
                print(json.dumps(runs[-1]), flush=True)
    summary = {}
    for precision in pipelines:
        mine = [r for r in runs if r["precision"] == precision]
        summary[precision] = {"words_per_second_median": statistics.median(r["words_per_second"] for r in mine),
                              **{k: mine[0][k] for k in KEPT if k not in ("words_per_second", "words")}}
    summary["int8_vs_fp32"] = {
        "speed": round(summary["int8"]["words_per_second_median"] / summary["fp32"]["words_per_second_median"], 3),
        **{k: round(100 * (summary["int8"][k] - summary["fp32"][k]), 2)
           for k in ("ents_f", "nel_e2e_inkb_f") if summary["int8"].get(k) is not None},
    }
    report = {"model": str(args.model), "data": str(args.data), "rounds": args.rounds, "summary": summary, "runs": runs}
    print(json.dumps(summary, indent=1))
    if args.output:
        write_json(args.output, report)


if __name__ == "__main__":
    main()
