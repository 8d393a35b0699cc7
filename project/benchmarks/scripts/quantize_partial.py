"""int8 with some Linear layers left in fp32: dev F1 and words/s of one trained rsft_ner for
fp32, the two `quantize` modes (`int8-all`: every Linear layer; `int8`: all but the FFN
down-projections; per-channel weight scales, chosen by the component's own
`quantized_layers`), int8 with the whole FFN kept in fp32, all with torch's default scheme
(7-bit activations, 8-bit weights); and the two modes with the package's scheme (8-bit
activations, 7-bit weights: `int8_scheme`, what `quantize` does since it was added). The speed is measured
round-robin in one process (median of --rounds), swapping the transformer in place.

usage: python scripts/quantize_partial.py MODEL_DIR DEV.spacy OUTPUT.json [--rounds 3]
"""
import argparse
import copy
import re
import statistics
import time
import warnings
from pathlib import Path

import spacy
import torch
from spacy.tokens import DocBin
from spacy.training import Corpus
from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

from bench import write_json
from quantize_layers import FFN_OUT
from spacy_rsft.pipeline.quantization import hf_shims, int8_scheme, quantized_layers

# Variant name -> (the Linear layers it quantizes, the scheme: torch's default with 7-bit
# activations and 8-bit weights, or the package's with 8-bit activations and 7-bit weights).
VARIANTS = {
    "int8, all Linear layers": (lambda fp32: quantized_layers(fp32, "int8-all"), "torch"),
    "int8, FFN output projections fp32": (lambda fp32: quantized_layers(fp32, "int8"), "torch"),
    "int8, FFN fp32": (lambda fp32: [n for n in quantized_layers(fp32, "int8-all") if not re.search(FFN_OUT + "|intermediate", n)], "torch"),
    "int8, all Linear layers, 8-bit activations 7-bit weights": (lambda fp32: quantized_layers(fp32, "int8-all"), "ours"),
    "int8, FFN output projections fp32, 8-bit activations 7-bit weights": (lambda fp32: quantized_layers(fp32, "int8"), "ours"),
}


def quantized(fp32: torch.nn.Module, names, scheme: str = "torch") -> torch.nn.Module:
    """torch's dynamic int8 (7-bit activations: `reduce_range`; 8-bit weights) or the
    package's (`int8_scheme`: 8-bit activations, 7-bit weights)."""
    qconfig, mapping = int8_scheme() if scheme == "ours" else (per_channel_dynamic_qconfig, None)
    chosen = {n: qconfig for n in names}
    return quantize_dynamic(copy.deepcopy(fp32), chosen, dtype=torch.qint8, mapping=mapping).eval()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", type=Path)
    parser.add_argument("dev", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
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
    models.update({name: quantized(shim._model, layers(shim._model), scheme) for name, (layers, scheme) in VARIANTS.items()})
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
        system["words_per_second"] = round(words / statistics.median(system["seconds"]))
        system["speed_vs_fp32"] = round(system["words_per_second"] / round(words / statistics.median(fp32["seconds"])), 3)
        system["ents_f_vs_fp32"] = round(system["ents_f"] - fp32["ents_f"], 2)
    print(report)
    write_json(args.output, report)


if __name__ == "__main__":
    main()
