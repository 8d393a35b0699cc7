"""Issue 15's table in one run: every pipeline a user would choose between, trained, with
its speed, accuracy, memory and size measured together.

Rows: spaCy's CNN `ner`; spacy-transformers MiniLM + spaCy `ner`; `rsft_ner` fp32 and int8;
spaCy's `ner` + `entity_linker` (shared CNN tok2vec); our `ner+el` (one shared transformer)
fp32 and int8. The int8 rows are `python -m spacy_rsft quantize` copies of the fp32 models,
written for this run.

- words/s: `nlp.pipe` (batch 64) over CoNLL dev's raw text, all pipelines loaded in this
  process and run round-robin (run 1 of each, then run 2 of each, ...), median of --runs;
  each row's ratio to the spacy-transformers row (of the medians, and the median of each
  round's ratio);
- accuracy: NER P/R/F from raw text on CoNLL dev (NER pipelines) or AIDA testa (ner+el
  pipelines, with the end-to-end InKB micro F1), through e2e_evaluate.evaluate;
- inference peak RSS: a fresh process per pipeline (footprint.py's `--run-one`);
- size on disk, and the training run's peak RSS (its train.json, where the model was trained).

usage: python scripts/inference_table.py [--models training/inference_table]
           [--ner-el training/full/e2e_rsft/seed0/model-best] [--runs 3]
           [--output results/full/inference_table.json] [--rows "rsft_ner fp32,rsft_ner int8"]
The models come from `python scripts/run.py ner --scale inference_table --jobs 2` and
`python scripts/run.py e2e --scale inference_table` (see systems.yml).
"""
import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Dict, Optional

import spacy
from spacy.tokens import DocBin

from bench import read_json, write_json
from e2e_evaluate import evaluate
from footprint import folder_mb, inference_peak_rss
from speed import measure
from spacy_rsft.cli.quantize import quantize_pipeline

ROOT = Path(__file__).resolve().parents[1]
CONLL_DEV = ROOT / "corpus" / "full" / "conll" / "valid.spacy"
AIDA_TESTA = ROOT / "corpus" / "full" / "aida" / "testa.spacy"
ANCHOR = "spacy-transformers MiniLM + ner"
QUALITY = ("ents_f", "ents_p", "ents_r", "nel_e2e_inkb_f", "nel_e2e_inkb_p", "nel_e2e_inkb_r")


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def model_paths(models: Path, ner_el: Path, tmp: Path) -> Dict[str, Dict]:
    """Each row's model folder and the data its accuracy is measured on; writes the int8 copies."""
    rows = {
        "spaCy CNN ner": {"model": models / "ner_cnn" / "seed0" / "model-best", "data": CONLL_DEV},
        ANCHOR: {"model": models / "ner_trf" / "seed0" / "model-best", "data": CONLL_DEV},
        "rsft_ner fp32": {"model": models / "ner_uniform" / "seed0" / "model-best", "data": CONLL_DEV},
        "rsft_ner int8": {"model": tmp / "rsft_ner_int8", "data": CONLL_DEV, "trained_as": "rsft_ner fp32"},
        "spaCy ner + entity_linker": {"model": models / "e2e_spacy" / "seed0" / "model-best", "data": AIDA_TESTA},
        "ner+el fp32": {"model": ner_el, "data": AIDA_TESTA},
        "ner+el int8": {"model": tmp / "ner_el_int8", "data": AIDA_TESTA, "trained_as": "ner+el fp32"},
    }
    for name, row in rows.items():
        source = rows[row["trained_as"]]["model"] if "trained_as" in row else row["model"]
        if not source.exists():
            raise SystemExit(f"{name}: {source} is missing; train it first (see this script's docstring).")
    quantize_pipeline(rows["rsft_ner fp32"]["model"], rows["rsft_ner int8"]["model"])
    quantize_pipeline(ner_el, rows["ner+el int8"]["model"])
    return rows


def training_peak_rss(model: Path) -> Optional[int]:
    """The peak RSS train.py recorded for the run that wrote `model` (model-best's parent)."""
    record = read_json(model.parent / "train.json")
    return None if record is None else record.get("peak_rss_mb")


def quality(nlp, data: Path, name: str) -> Dict:
    refs = list(DocBin().from_disk(data).get_docs(nlp.vocab))
    scores = evaluate(nlp, refs, name)
    return {key: round(100 * scores[key], 2) for key in QUALITY if scores.get(key) is not None}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=Path, default=ROOT / "training" / "inference_table")
    parser.add_argument("--ner-el", type=Path, default=ROOT / "training" / "full" / "e2e_rsft" / "seed0" / "model-best")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--memory-repeats", type=int, default=3,
                        help="fresh processes per row for the inference peak RSS (the median is reported)")
    parser.add_argument("--output", type=Path, default=ROOT / "results" / "full" / "inference_table.json")
    parser.add_argument("--rows", default=None,
                        help="comma-separated row names to measure (default: all); the spacy-transformers row is always kept")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:  # holds the int8 copies until the end
        rows = all_rows = model_paths(args.models, args.ner_el, Path(tmp))
        if args.rows:
            kept = {ANCHOR, *args.rows.split(",")}
            unknown = kept - set(rows)
            if unknown:
                raise SystemExit(f"--rows: unknown row(s) {sorted(unknown)}; the rows are {list(rows)}")
            rows = {name: row for name, row in rows.items() if name in kept}
        table = {}
        for name, row in rows.items():
            trained = all_rows[row.get("trained_as", name)]["model"]
            table[name] = {
                "model": shown(trained),
                "precision": "int8" if "trained_as" in row else "fp32",
                "quality_data": shown(row["data"]),
                "disk_mb": folder_mb(row["model"]),
                "train_peak_rss_mb": training_peak_rss(trained),
            }
            peaks = inference_peak_rss(row["model"], args.memory_repeats)
            table[name].update(inference_peak_rss_mb=round(statistics.median(peaks)), inference_peak_rss_mb_runs=peaks)
            print(name, table[name], flush=True)
        pipelines = {name: spacy.load(row["model"]) for name, row in rows.items()}
        for name, nlp in pipelines.items():  # also the warm-up of the timed runs
            table[name].update(quality(nlp, rows[name]["data"], name))
            print(name, {k: table[name].get(k) for k in QUALITY}, flush=True)
        texts = [doc.text for doc in DocBin().from_disk(CONLL_DEV).get_docs(pipelines[ANCHOR].vocab)]
        speeds = measure(pipelines, texts, args.runs, args.batch_size)
    anchor = speeds[ANCHOR]
    for name, speed in speeds.items():
        # the ratio of the medians, and the median of each round's ratio (the rounds drift
        # together, so the paired ratio is the steadier of the two)
        per_round = [mine / theirs for mine, theirs in zip(speed["words_per_second_runs"], anchor["words_per_second_runs"])]
        table[name].update(speed, ratio_to_spacy_transformers=round(speed["words_per_second_median"] / anchor["words_per_second_median"], 3),
                           ratio_per_round=[round(r, 3) for r in per_round],
                           ratio_per_round_median=round(statistics.median(per_round), 3))
        print(name, table[name]["ratio_to_spacy_transformers"], table[name]["ratio_per_round"], flush=True)
    report = {"speed_data": shown(CONLL_DEV), "runs": args.runs, "batch_size": args.batch_size,
              "pipelines": table}
    write_json(args.output, report)
    print(f"Wrote {args.output}")


if __name__ == "__main__":
    main()
