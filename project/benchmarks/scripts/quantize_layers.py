"""Which layers int8 costs accuracy in: dev F1 of one trained rsft_ner with only some of its
transformer's Linear layers quantized (per-tensor weight scales, torch's default), one group
at a time: each kind of projection alone, every layer but one, all but the FFN.

usage: python scripts/quantize_layers.py MODEL_DIR DEV.spacy OUTPUT.json
"""
import copy
import json
import re
import sys
import warnings
from typing import Dict, List

import spacy
import torch
from spacy.tokens import DocBin
from spacy.training import Example
from torch.ao.quantization import quantize_dynamic

from spacy_rsft.pipeline.quantization import hf_shims

KINDS = ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
         "intermediate.dense", r"\d\.output\.dense", "pooler"]
FFN_OUT = r"\d\.output\.dense"


def layer_groups(names: List[str], n_layers: int) -> Dict[str, List[str]]:
    groups = {"all": names}
    for kind in KINDS:
        groups[f"only {kind}"] = [n for n in names if re.search(kind, n)]
    for layer in range(n_layers):
        groups[f"all but layer {layer}"] = [n for n in names if f"layer.{layer}." not in n]
    groups["all but FFN out"] = [n for n in names if not re.search(FFN_OUT, n)]
    groups["all but FFN"] = [n for n in names if not re.search(FFN_OUT + "|intermediate", n)]
    return {name: members for name, members in groups.items() if members}


def main() -> None:
    model_dir, dev, output = sys.argv[1], sys.argv[2], sys.argv[3]
    warnings.filterwarnings("ignore")  # torch.ao's deprecation notices
    nlp = spacy.load(model_dir)
    examples = [Example(nlp.make_doc(d.text), d) for d in DocBin().from_disk(dev).get_docs(nlp.vocab)]
    shim = hf_shims(nlp.get_pipe("rsft_ner").model)[0]
    fp32 = shim._model
    names = [n for n, m in fp32.named_modules() if isinstance(m, torch.nn.Linear)]

    def f1() -> float:
        return round(100 * nlp.evaluate(examples)["ents_f"], 2)

    results = {"fp32": f1()}
    for group, members in layer_groups(names, fp32.config.num_hidden_layers).items():
        shim._model = quantize_dynamic(copy.deepcopy(fp32), set(members), dtype=torch.qint8).eval()
        results[group] = f1()
        print(f"{group}: {len(members)} layers quantized, F1 {results[group]} ({results[group] - results['fp32']:+.2f})", flush=True)
    shim._model = fp32
    with open(output, "w", encoding="utf8") as file_:
        json.dump(results, file_, indent=1)


if __name__ == "__main__":
    main()
