"""Does building candidate matrices from get_vector's Python lists make the linker's resident
memory creep? A 20,000-entity 384-d KB, docs of 20 mentions with 50 candidates each, the
tiny BERT (so the linker's own work dominates), N updates; RSS and glibc's heap numbers every
50 updates. --old puts the per-mention list conversion back.

    OMP_NUM_THREADS=1 python scripts/el_vector_churn.py 600 [--old] --output results/full/el_vector_churn_new.json

Prints and writes [update, resident MB, heap in use MB, heap free-but-kept MB, seconds] rows.
"""
import ctypes, json, random, sys, tempfile, time
import numpy, spacy
from spacy.kb import InMemoryLookupKB
from spacy.tokens import Doc, Span
from spacy.training import Example
from thinc.api import fix_random_seed
from spacy_rsft.testing import make_tiny_bert
from spacy_rsft.pipeline import link_features

old = "--old" in sys.argv
steps = int(sys.argv[1])
output = sys.argv[sys.argv.index("--output") + 1] if "--output" in sys.argv else None
if old:
    def of(self, entities):
        return numpy.asarray([self.kb.get_vector(e) for e in entities], dtype="float32").reshape(len(entities), self.length)
    link_features.EntityVectors.of = of

class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena","ordblks","smblks","hblks","hblkhd","usmblks","fsmblks","uordblks","fordblks","keepcost")]
libc = ctypes.CDLL("libc.so.6"); libc.mallinfo2.restype = Mallinfo2
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"): return int(line.split()[1]) // 1024

fix_random_seed(0)
bert = str(make_tiny_bert(tempfile.mkdtemp(prefix="el_churn_bert")))
nlp = spacy.blank("en")
rng = numpy.random.default_rng(0)
kb = InMemoryLookupKB(nlp.vocab, entity_vector_length=384)
ents = [f"Q{i}" for i in range(20000)]
for e in ents:
    kb.add_entity(e, 1.0, rng.standard_normal(384).astype("float32").tolist())
names = [f"name{i}" for i in range(2000)]
for n in names:
    cands = rng.choice(20000, size=50, replace=False)
    kb.add_alias(n, [ents[c] for c in cands], [1/50]*50)
alias_ents = {n: [c.entity_ for c in kb.get_alias_candidates(n)] for n in names}
el = nlp.add_pipe("rsft_entity_linker", config={"model": {"tok2vec": {"name": bert}}, "features": ["log_prior","match"]})
pyrng = random.Random(0)
def example():
    words, spans = [], []
    for _ in range(20):
        n = pyrng.choice(names); spans.append((len(words), n)); words += [n, "met", "the", "press", "."]
    ref = Doc(nlp.vocab, words=words)
    ref.ents = [Span(ref, s, s+1, label="PER", kb_id=pyrng.choice(alias_ents[n][:5])) for s, n in spans]
    return Example(Doc(nlp.vocab, words=words), ref)
el.set_kb(lambda vocab: kb)
el.initialize(lambda: [example() for _ in range(4)], nlp=nlp, kb_loader=lambda vocab: kb)
opt = nlp.create_optimizer()
out = []
t0 = time.time()
for step in range(steps + 1):
    nlp.update([example() for _ in range(4)], sgd=opt)
    if step % 50 == 0:
        m = libc.mallinfo2()
        out.append([step, rss(), m.uordblks >> 20, m.fordblks >> 20, round(time.time() - t0, 1)])
        print(out[-1], flush=True)
if output:
    with open(output, "w") as f:
        json.dump({"lists": old, "steps": steps, "rows": out}, f)
