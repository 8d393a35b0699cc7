"""Size on disk and peak resident memory at inference of each pipeline the speed table
compares: spaCy's CNN `ner`, spacy-transformers MiniLM + `ner`, `rsft_ner` fp32 and `int8`
(initialized, as in bucket_speed.py: size and memory do not depend on the trained weights'
values), and, when given, a trained `ner+el` pipeline and its `int8` copy.

Each pipeline is loaded and run (`nlp.pipe` over CoNLL dev, batch 64) in a fresh process,
whose peak RSS (VmHWM) is what it costs a server; its folder's size is what it costs to
ship. `quantize` keeps fp32 weights on disk, so an int8 copy is the size of its original.

usage: python scripts/footprint.py [--ner-el MODEL_DIR] [--repeats 3] [--output results/full/footprint.json]
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import spacy
from spacy.tokens import DocBin
from spacy.training import Example
from spacy.util import load_config

from bench import write_json
from bucket_speed import DEV, ROOT, TRAIN, initialized
from spacy_rsft.cli.init_config import make_config
from spacy_rsft.cli.quantize import quantize_pipeline


def folder_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


def run_one(model: Path) -> Dict:
    """In this (fresh) process: load, annotate CoNLL dev, report peak RSS."""
    nlp = spacy.load(model)
    texts = [doc.text for doc in DocBin().from_disk(DEV).get_docs(nlp.vocab)]
    for _ in nlp.pipe(texts, batch_size=64):
        pass
    return {"peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> int:
    """This process's peak RSS: VmHWM, which a new program starts afresh (ru_maxrss carries
    the parent's peak over fork and exec, so every child would report at least the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # not Linux


def inference_peak_rss(model: Path, repeats: int = 1, env: Optional[Dict[str, str]] = None) -> List[int]:
    """Load and run the pipeline over CoNLL dev in a fresh process (`run_one`), `repeats`
    times; each process's peak RSS. Repeat where differences of less than about 150 MB
    matter: the peaks of identical runs spread by that much (794-933 MB for `rsft_ner` int8),
    with glibc keeping more or less of the freed activations from run to run.
    env: the processes' environment (default: this one's)."""
    peaks = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, __file__, "--run-one", str(model)], capture_output=True, text=True, env=env)
        if out.returncode != 0:
            raise SystemExit(f"{model}: the memory run failed\n{out.stderr[-2000:]}")
        peaks.append(json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"])
    return peaks


def median_peak(model: Path, repeats: int, env: Optional[Dict[str, str]] = None) -> Dict:
    """`inference_peak_rss` `repeats` times: the median peak and every process's."""
    peaks = inference_peak_rss(model, repeats, env)
    return {"peak_rss_mb": round(statistics.median(peaks)), "peak_rss_mb_runs": peaks}


def write_pipelines(tmp: Path, ner_el: Path = None) -> Dict[str, Path]:
    blank = spacy.blank("en")
    docs = list(DocBin().from_disk(TRAIN).get_docs(blank.vocab))[:50]
    examples = [Example(blank.make_doc(doc.text), doc) for doc in docs]
    paths = {}
    for name, config in (("spaCy CNN ner", load_config(ROOT / "configs" / "spacy_ner_cnn.cfg", interpolate=True)),
                         ("spacy-transformers MiniLM + ner", load_config(ROOT / "configs" / "spacy_ner_trf.cfg", interpolate=True)),
                         ("rsft_ner fp32", make_config("ner"))):
        paths[name] = tmp / name.replace(" ", "_")
        initialized(config, examples).to_disk(paths[name])
    paths["rsft_ner int8"] = tmp / "rsft_ner_int8"
    quantize_pipeline(paths["rsft_ner fp32"], paths["rsft_ner int8"])
    if ner_el is not None:
        paths["ner+el fp32 (trained)"] = ner_el
        paths["ner+el int8 (trained)"] = tmp / "ner_el_int8"
        quantize_pipeline(ner_el, paths["ner+el int8 (trained)"])
    return paths


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ner-el", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=ROOT / "results" / "full" / "footprint.json")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per pipeline (the median is reported)")
    parser.add_argument("--run-one", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one is not None:
        print(json.dumps(run_one(args.run_one)))
        return
    report = {"dev": str(DEV.relative_to(ROOT)), "pipelines": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in write_pipelines(Path(tmp), args.ner_el).items():
            report["pipelines"][name] = {"disk_mb": folder_mb(path), **median_peak(path, args.repeats)}
            print(name, report["pipelines"][name], flush=True)
    write_json(args.output, report)


if __name__ == "__main__":
    main()
