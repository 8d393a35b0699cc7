"""What running the transformer's spans in length buckets is worth (spacy_rsft/models/
bucketing.py), side by side with spacy-transformers in the same run.

Inference: words/s with `nlp.pipe` (batch 64) over CoNLL dev, round-robin, median of --runs,
for spacy-transformers' MiniLM + `ner` (configs/spacy_ner_trf.cfg), `rsft_ner` with its spans
padded as spacy-transformers pads them (bucketing off), `rsft_ner` (bucketed, the default)
and `rsft_ner` in both int8 modes (`int8`, `int8-all`), and `int8` with its own dense layers
(the tagger's head) on thinc's BLIS gemm instead of torch's (spacy_rsft/pipeline/cpu_ops.py). Also the share of padding the transformer computes in each mode.

Training: `rsft_ner` updates over 1,000-word batches of CoNLL train in one process, bucketing
on and off (--compare gemm: the dense layers on torch's BLAS and on BLIS) in alternate blocks of --block updates (so whatever else the machine does slows
both alike); the median seconds per update of each, the first update of each block left out.

The pipelines are initialized, not trained: speed does not depend on the weights except
through how many entities are found, which costs little next to the transformer.

usage: python scripts/bucket_speed.py [--runs 3] [--updates 40 (0: inference only)] [--compare buckets|gemm]
       [--train-only] [--output results/full/bucket_speed.json]
"""
import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import spacy
from spacy.tokens import DocBin
from spacy.training import Example
from spacy.training.batchers import minibatch_by_words
from spacy.util import load_config, load_model_from_config
from spacy_transformers.layers import TransformerModel
from thinc.api import NumpyOps

from bench import write_json
from spacy_rsft.cli.init_config import make_config
from spacy_rsft.cli.quantize import quantize_pipeline
from spacy_rsft.models import bucketing
from spacy_rsft.pipeline.cpu_ops import use_torch_gemm

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "corpus" / "full" / "conll" / "train.spacy"
DEV = ROOT / "corpus" / "full" / "conll" / "valid.spacy"


def set_bucketing(nlp, on: bool) -> None:
    for _, component in nlp.pipeline:
        model = getattr(component, "model", None)
        for node in model.walk() if model is not None else []:
            if isinstance(node, TransformerModel):
                node.attrs[bucketing.ATTR] = on


def padding_share(nlp, texts: List[str], on: bool) -> float:
    """Padded wordpieces over all wordpieces the transformer computes, counted by wrapping
    the Hugging Face wrapper's forward."""
    counts = {"real": 0, "computed": 0}
    node = next(n for _, c in nlp.pipeline for n in c.model.walk() if isinstance(n, TransformerModel))
    hf = node.layers[0]
    original = hf._func

    def count(layer, wordpieces, is_train):
        counts["real"] += int(wordpieces.attention_mask.sum())
        counts["computed"] += int(wordpieces.input_ids.size)
        return original(layer, wordpieces, is_train)

    hf._func = count
    set_bucketing(nlp, on)
    list(nlp.pipe(texts, batch_size=64))
    hf._func = original
    set_bucketing(nlp, True)
    return round(1 - counts["real"] / counts["computed"], 4)


def initialized(config, examples):
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    nlp.initialize(lambda: examples)
    return nlp


def build_pipelines(examples, tmp: Path) -> Dict:
    anchor = load_config(ROOT / "configs" / "spacy_ner_trf.cfg", interpolate=True)
    rsft = make_config("ner")
    rsft_nlp = initialized(rsft, examples)
    rsft_nlp.to_disk(tmp / "fp32")
    quantize_pipeline(tmp / "fp32", tmp / "int8")
    quantize_pipeline(tmp / "fp32", tmp / "int8-all", mode="int8-all")
    padded = spacy.load(tmp / "fp32")
    set_bucketing(padded, False)
    on_blis = spacy.load(tmp / "int8")
    set_dense_gemm(on_blis, False)  # the dense layers as before cpu_ops.py
    return {
        "spacy-transformers MiniLM + ner": initialized(anchor, examples),
        "rsft_ner fp32, padded as spacy-transformers": padded,
        "rsft_ner fp32, length buckets": rsft_nlp,
        "rsft_ner int8, length buckets": spacy.load(tmp / "int8"),
        "rsft_ner int8-all, length buckets": spacy.load(tmp / "int8-all"),
        "rsft_ner int8, length buckets, dense layers on thinc's BLIS": on_blis,
    }


def inference(pipelines: Dict, texts: List[str], runs: int) -> Dict:
    for nlp in pipelines.values():  # warm-up: lazy initialisation is not speed
        list(nlp.pipe(texts[:8]))
    words = sum(len(spacy.blank("en").make_doc(t)) for t in texts)
    seconds: Dict[str, List[float]] = {name: [] for name in pipelines}
    for _ in range(runs):
        for name, nlp in pipelines.items():
            start = time.perf_counter()
            for _ in nlp.pipe(texts, batch_size=64):
                pass
            seconds[name].append(time.perf_counter() - start)
    anchor = words / statistics.median(seconds["spacy-transformers MiniLM + ner"])
    return {
        name: {
            "words_per_second_median": round(words / statistics.median(values)),
            "ratio_to_spacy_transformers": round(words / statistics.median(values) / anchor, 3),
            "seconds": [round(v, 2) for v in values],
        }
        for name, values in seconds.items()
    }


def set_dense_gemm(nlp, on_torch: bool) -> None:
    """The rsft components' own dense layers on torch's BLAS (the default) or thinc's BLIS."""
    for _, component in nlp.pipeline:
        if on_torch:
            use_torch_gemm(component.model)
        else:
            for node in component.model.walk():
                node.ops = NumpyOps()


# What --compare alternates in training: (name of A, name of B, set(nlp, is_A)).
TRAINING_COMPARISONS = {
    "buckets": ("length buckets", "padded", set_bucketing),
    "gemm": ("dense layers on torch's BLAS", "dense layers on thinc's BLIS", set_dense_gemm),
}


def training(n_docs: int, updates: int, block: int, compare: str = "buckets") -> Dict:
    first, second, switch = TRAINING_COMPARISONS[compare]
    nlp = load_model_from_config(make_config("ner"), auto_fill=True, validate=True)
    train_docs = list(DocBin().from_disk(TRAIN).get_docs(nlp.vocab))[:n_docs]
    examples = [Example(nlp.make_doc(doc.text), doc) for doc in train_docs]
    nlp.initialize(lambda: examples[:50])
    optimizer = nlp.create_optimizer()
    batches = minibatch_by_words(examples * 10, size=1000, tolerance=0.2, discard_oversize=False)
    seconds: Dict[str, List[float]] = {first: [], second: []}
    words: Dict[str, int] = {first: 0, second: 0}
    for step, batch in zip(range(updates), batches):
        mode = first if (step // block) % 2 == 0 else second
        switch(nlp, mode == first)
        start = time.perf_counter()
        nlp.update(batch, sgd=optimizer, losses={})
        elapsed = time.perf_counter() - start
        if step % block:  # the first update of a block is left out
            seconds[mode].append(elapsed)
            words[mode] += sum(len(eg.reference) for eg in batch)
    medians = {mode: statistics.median(values) for mode, values in seconds.items()}
    return {
        "compared": compare,
        "updates_counted": {mode: len(values) for mode, values in seconds.items()},
        "seconds_per_update_median": {mode: round(m, 3) for mode, m in medians.items()},
        "words_per_second": {mode: round(words[mode] / sum(seconds[mode])) for mode in seconds},
        # > 1: the second mode takes longer per update
        "time_ratio": {"of": second, "to": first, "value": round(medians[second] / medians[first], 3)},
    }


def measure_inference(examples, texts: List[str], runs: int) -> Dict:
    with tempfile.TemporaryDirectory() as tmp:
        pipelines = build_pipelines(examples, Path(tmp))
        speed = inference(pipelines, texts, runs)
        padding = {"padded": padding_share(pipelines["rsft_ner fp32, length buckets"], texts, False),
                   "length buckets": padding_share(pipelines["rsft_ner fp32, length buckets"], texts, True)}
    return {
        "dev": str(DEV.relative_to(ROOT)), "docs": len(texts), "runs": runs, "batch_size": 64,
        "call_cost": bucketing.CALL_COST,
        "inference": speed,
        "padding_share_of_computed_wordpieces": padding,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--updates", type=int, default=40)
    parser.add_argument("--block", type=int, default=5)
    parser.add_argument("--compare", choices=sorted(TRAINING_COMPARISONS), default="buckets",
                        help="What the training part alternates")
    parser.add_argument("--train-only", action="store_true", help="Skip the inference part")
    parser.add_argument("--output", default=str(ROOT / "results" / "full" / "bucket_speed.json"))
    args = parser.parse_args()
    for path in (TRAIN, DEV):
        if not path.exists():
            raise SystemExit(f"{path} is missing: run `python -m spacy project run data .` first.")
    blank = spacy.blank("en")
    train_docs = list(DocBin().from_disk(TRAIN).get_docs(blank.vocab))[:400]
    texts = [doc.text for doc in DocBin().from_disk(DEV).get_docs(blank.vocab)]
    examples = [Example(blank.make_doc(doc.text), doc) for doc in train_docs[:50]]
    output = Path(args.output)
    result = {} if args.train_only else measure_inference(examples, texts, args.runs)
    if result:
        print(json.dumps(result, indent=1), flush=True)
        write_json(output, result)  # kept if the training part fails
    if not args.updates:  # --updates 0: inference only
        return
    result["training"] = training(len(train_docs), args.updates, args.block, args.compare)
    print(json.dumps(result["training"], indent=1))
    write_json(output, result)


if __name__ == "__main__":
    main()
