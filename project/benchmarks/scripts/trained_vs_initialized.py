"""Trained against initialized pipelines, alternately in one process at 1 thread: seconds of
`nlp.pipe` (batch 64) over the first 120 CoNLL dev docs, median of 3, and how many entities
each predicts. Why the initialized pipelines of bucket_speed.py give other ratios than the
trained ones of inference_table.py (docs/results.md, "Every pipeline in one run, trained").

usage: python scripts/trained_vs_initialized.py MODEL_DIR [MODEL_DIR ...]
(e.g. training/inference_table/ner_trf/seed0/model-best and an initialized copy written with
bucket_speed.initialized)
"""
import sys, time, statistics
import torch, spacy
from spacy.tokens import DocBin
torch.set_num_threads(1)
paths = sys.argv[1:]
nlps = [spacy.load(p) for p in paths]
texts = [d.text for d in DocBin().from_disk("corpus/full/conll/valid.spacy").get_docs(nlps[0].vocab)][:120]
for nlp in nlps: list(nlp.pipe(texts[:10]))
res = {p: [] for p in paths}
for _ in range(3):
    for p, nlp in zip(paths, nlps):
        t = time.perf_counter(); docs = list(nlp.pipe(texts, batch_size=64)); res[p].append(time.perf_counter() - t)
for p, nlp in zip(paths, nlps):
    n_ents = sum(len(d.ents) for d in nlp.pipe(texts[:120]))
    print(p, "median s", round(statistics.median(res[p]), 2), [round(x, 2) for x in res[p]], "ents", n_ents)
