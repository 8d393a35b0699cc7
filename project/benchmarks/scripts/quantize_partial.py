"""int8 with some Linear layers (or input columns) left in fp32: dev F1 and words/s of one
trained rsft_ner for fp32; every Linear layer, all but the FFN down-projections (the earlier
`int8` mode), and all but the whole FFN, with torch's default scheme (7-bit activations,
8-bit weights) and the package's (8-bit activations, 7-bit weights: `int8_scheme`); and,
with --outliers, only the package's scheme and every Linear layer with its outlier input
columns in fp32 (`split_outliers`: what the `int8` mode does since) at two ratios. The speed
is measured round-robin in one process (median of --rounds), swapping the transformer in
place.

usage: python scripts/quantize_partial.py MODEL_DIR DEV.spacy OUTPUT.json [--rounds 3] [--outliers [--columns 8,16]]
"""
import argparse
import copy
import re
import statistics
import time
import warnings
from pathlib import Path
from typing import Dict, List, Tuple

import spacy
import torch
from spacy.tokens import DocBin
from spacy.training import Corpus
from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

from bench import write_json
from quantize_layers import FFN_OUT
from spacy_rsft.pipeline.quantization import OUTLIER_COLUMNS, hf_shims, int8_scheme, quantized_layers, split_outliers

def without_down_projections(fp32: torch.nn.Module):
    """Every Linear layer but the FFN down-projections (in > out features): what the
    `int8` mode quantized before it kept outlier columns in fp32 instead."""
    return [n for n in quantized_layers(fp32) if not fp32.get_submodule(n).in_features > fp32.get_submodule(n).out_features]


# Variant name -> (the Linear layers it quantizes, the scheme: torch's default with 7-bit
# activations and 8-bit weights, or the package's with 8-bit activations and 7-bit weights).
VARIANTS = {
    "int8, all Linear layers": (quantized_layers, "torch"),
    "int8, FFN output projections fp32": (without_down_projections, "torch"),
    "int8, FFN fp32": (lambda fp32: [n for n in quantized_layers(fp32) if not re.search(FFN_OUT + "|intermediate", n)], "torch"),
    "int8, all Linear layers, 8-bit activations 7-bit weights": (quantized_layers, "ours"),
    "int8, FFN output projections fp32, 8-bit activations 7-bit weights": (without_down_projections, "ours"),
}


# With --outliers: the package's scheme on every Linear layer, with the K outlier input
# columns of the layers where they stand out (the largest column maximum at least RATIO x the
# (K+1)-th largest) kept in fp32; K is OUTLIER_COLUMNS (8) unless --columns lists others.
def outlier_variants(columns: List[int], ratio: float = 3.0) -> Dict[str, Tuple[float, int]]:
    name = "int8, all Linear layers, 8-bit activations 7-bit weights, outlier columns fp32 (ratio {:g})"
    return {name.format(ratio) + ("" if k == OUTLIER_COLUMNS else f", {k} columns"): (ratio, k) for k in columns}


def quantized(fp32: torch.nn.Module, names, scheme: str = "torch", tokenizer=None, ratio: float = 0.0,
              columns: int = OUTLIER_COLUMNS) -> torch.nn.Module:
    """torch's dynamic int8 (7-bit activations: `reduce_range`; 8-bit weights) or the
    package's (`int8_scheme`: 8-bit activations, 7-bit weights), optionally with outlier
    columns split out (`split_outliers`)."""
    qconfig, mapping = int8_scheme() if scheme == "ours" else (per_channel_dynamic_qconfig, None)
    chosen = {n: qconfig for n in names}
    model = quantize_dynamic(copy.deepcopy(fp32), chosen, dtype=torch.qint8, mapping=mapping).eval()
    if ratio:
        split_outliers(model, fp32, tokenizer, list(names), k=columns, ratio=ratio)
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", type=Path)
    parser.add_argument("dev", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--rounds", type=int, default=3, help="Speed rounds (0: dev F1 only)")
    parser.add_argument("--outliers", action="store_true", help="Only fp32, the two package modes and the outlier-column variants")
    parser.add_argument("--columns", default=str(OUTLIER_COLUMNS), help="With --outliers: outlier columns per layer, comma-separated")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # torch.ao's deprecation notices
    nlp = spacy.load(args.model)
    gold = list(DocBin().from_disk(args.dev).get_docs(nlp.vocab))
    # The dev set's own tokens, as `spacy evaluate` reads them (make_doc would re-tokenize
    # and lose points to misalignment).
    examples = list(Corpus(args.dev)(nlp))
    texts = [d.text for d in gold]
    words = sum(len(d) for d in gold)
    shim = hf_shims(nlp.get_pipe("rsft_ner").model)[0]
    models = {"fp32": shim._model}
    variants = {n: v for n, v in VARIANTS.items() if not args.outliers or v[1] == "ours"}
    models.update({name: quantized(shim._model, layers(shim._model), scheme) for name, (layers, scheme) in variants.items()})
    if args.outliers:
        tokenizer = shim._hfmodel.tokenizer
        columns = [int(k) for k in args.columns.split(",")]
        models.update({name: quantized(shim._model, quantized_layers(shim._model), "ours", tokenizer, ratio, k)
                       for name, (ratio, k) in outlier_variants(columns).items()})
    report = {"model": str(args.model), "dev": str(args.dev), "words": words, "rounds": args.rounds, "systems": {}}
    for name, model in models.items():
        shim._model = model
        scores = nlp.evaluate(examples)
        report["systems"][name] = {"ents_f": round(100 * scores["ents_f"], 2), "seconds": []}
        print(name, report["systems"][name]["ents_f"], flush=True)
    for _ in range(args.rounds):  # round-robin: every variant sees the same machine load
        for name, model in models.items():
            shim._model = model
            start = time.perf_counter()
            for _doc in nlp.pipe(texts, batch_size=64):
                pass
            report["systems"][name]["seconds"].append(round(time.perf_counter() - start, 2))
    fp32 = report["systems"]["fp32"]
    for name, system in report["systems"].items():
        system["ents_f_vs_fp32"] = round(system["ents_f"] - fp32["ents_f"], 2)
        if system["seconds"]:
            system["words_per_second"] = round(words / statistics.median(system["seconds"]))
            system["speed_vs_fp32"] = round(system["words_per_second"] / round(words / statistics.median(fp32["seconds"])), 3)
    print(report)
    write_json(args.output, report)


if __name__ == "__main__":
    main()
