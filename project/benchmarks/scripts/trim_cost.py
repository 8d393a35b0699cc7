"""What one `malloc_trim` (spacy_rsft.util.release_free_memory) costs after a small
`nlp.pipe` call on a loaded pipeline, against the call itself: 20 calls of 8 docs, each
followed by a timed trim, medians. Why a predicting process does not trim (README,
"release_memory = 20 is now the default").

usage: python scripts/trim_cost.py MODEL_DIR DATA.spacy
"""
import statistics, sys, time, json
import spacy
from spacy.tokens import DocBin
from spacy_rsft.util import release_free_memory
nlp = spacy.load(sys.argv[1])
texts = [d.text for d in DocBin().from_disk(sys.argv[2]).get_docs(nlp.vocab)]
list(nlp.pipe(texts[:64]))
pipe_s, trim_s = [], []
for i in range(20):
    chunk = texts[8 * i: 8 * i + 8]
    t = time.perf_counter(); list(nlp.pipe(chunk)); pipe_s.append(time.perf_counter() - t)
    t = time.perf_counter(); release_free_memory(); trim_s.append(time.perf_counter() - t)
print(json.dumps({"pipe_8_docs_median_ms": round(1000 * statistics.median(pipe_s), 1),
                  "trim_median_ms": round(1000 * statistics.median(trim_s), 2),
                  "trim_max_ms": round(1000 * max(trim_s), 2)}))
