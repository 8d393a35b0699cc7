"""`annotate` (spacy_rsft.scale) with both engines, and `build-kb --engine ray`.

The Ray tests run on a real single-node Ray instance (no mocks); they are skipped only
where Ray is not installed (`pip install spacy-rsft[ray]`; the test setup installs it).
"""
import json
import os
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin
from spacy.util import import_file
from thinc.api import fix_random_seed
from typer.testing import CliRunner

from spacy_rsft.cli import app
from spacy_rsft.kb.builder import build_kb
from spacy_rsft.scale import AnnotateInputError, AnnotateOutputError, RayOptions, annotate
from spacy_rsft.scale.inputs import plan_blocks
from spacy_rsft.scale.ray_engine import worker_cpus
from spacy_rsft.scale.shards import ID_KEY

from test_entity_linker import ALIASES, ENTITIES, make_el_nlp, write_jsonl
from util import make_examples, tiny_ner_config

RAY_TIMEOUT = 300  # seconds: a hang fails the test instead of the CI run

# A component that fails on a record with "CRASH" in it: `exit` kills its process the
# first time (a dead worker), `raise` raises while the marker file exists (a crashed run).
FAULT_CODE = '''
import os
from spacy.language import Language

class Fault:
    def __init__(self, mode, marker):
        self.mode, self.marker = mode, marker

    def __call__(self, doc):
        if "CRASH" in doc.text:
            if self.mode == "exit" and not os.path.exists(self.marker):
                open(self.marker, "w").close()
                os._exit(1)
            if self.mode == "raise" and os.path.exists(self.marker):
                raise RuntimeError("injected failure")
        return doc

@Language.factory("rsft_test_fault", default_config={"mode": "raise", "marker": ""})
def make_fault(nlp, name, mode, marker):
    return Fault(mode, marker)
'''


def texts(n: int, crash_at: int = -1):
    people, places = ["Mary", "John", "Anna", "Peter"], ["Paris", "London", "Berlin", "Rome"]
    for i in range(n):
        text = f"{people[i % 4]} works for Google in {places[i % 4]} , day {i} ."
        yield text + (" CRASH" if i == crash_at else "")


def write_corpus(path: Path, n: int, crash_at: int = -1) -> Path:
    rows = [{"id": f"doc{i}", "text": t} for i, t in enumerate(texts(n, crash_at))]
    return write_jsonl(path, rows)


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory, tiny_bert):
    """rsft_ner (briefly trained, so it predicts entities with confidences), an entity
    ruler for "Paris", and rsft_entity_linker on a toy KB: ids, scores and links."""
    tmp = tmp_path_factory.mktemp("scale")
    build_kb(write_jsonl(tmp / "e.jsonl", ENTITIES), write_jsonl(tmp / "a.jsonl", ALIASES), tmp / "kb", tiny_bert, progress=False)
    fix_random_seed(0)
    nlp = make_el_nlp(tiny_bert, tmp / "kb")
    nlp.add_pipe("rsft_ner", config=tiny_ner_config(tiny_bert), before="rsft_entity_linker")
    ner = nlp.get_pipe("rsft_ner")
    ner.initialize(lambda: make_examples(nlp), nlp=nlp)
    optimizer = nlp.create_optimizer()
    for _ in range(15):
        nlp.update(make_examples(nlp), sgd=optimizer, exclude=["rsft_entity_linker"])
    ruler = nlp.add_pipe("entity_ruler", before="rsft_entity_linker", config={"overwrite_ents": True})
    ruler.add_patterns([{"label": "LOC", "pattern": "Paris"}])
    nlp.to_disk(tmp / "pipeline")
    return tmp / "pipeline"


@pytest.fixture(scope="module")
def fault_code(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("code") / "fault.py"
    path.write_text(FAULT_CODE, encoding="utf8")
    return path


def with_fault(pipeline_dir: Path, code: Path, out: Path, mode: str, marker: Path) -> Path:
    import_file("rsft_test_fault_code", str(code))
    nlp = spacy.load(pipeline_dir)
    nlp.add_pipe("rsft_test_fault", first=True, config={"mode": mode, "marker": str(marker)})
    nlp.to_disk(out)
    return out


def shard_lines(out: Path) -> list:
    return [json.loads(line) for p in sorted(out.glob("part-*[0-9].jsonl")) for line in p.read_text().splitlines()]


def test_local_annotate_writes_shards_with_scores_and_links(pipeline_dir, tmp_path):
    corpus = write_corpus(tmp_path / "in.jsonl", 25)
    report = annotate(corpus, tmp_path / "out", pipeline_dir, block_size=10, progress=False)
    assert (report.shards, report.shards_run, report.docs, report.errors) == (3, 3, 25, 0)
    assert sorted(p.name for p in (tmp_path / "out").glob("part-*")) == [
        f"part-{i:05d}{s}" for i in range(3) for s in (".jsonl", ".spacy")]
    rows = shard_lines(tmp_path / "out")
    assert [r["id"] for r in rows] == [f"doc{i}" for i in range(25)]
    paris = [e for r in rows for e in r["ents"] if e["text"] == "Paris"]
    assert paris and all(e["kb_id"] == "Q1" and 0.0 < e["kb_score"] <= 1.0 for e in paris)
    scored = [e for r in rows for e in r["ents"] if e["score"] is not None]
    assert scored and all(0.0 < e["score"] <= 1.0 for e in scored)
    # the DocBin keeps what the JSONL says: ids, entities, links, the scored span group
    nlp = spacy.load(pipeline_dir)
    docs = list(DocBin().from_disk(tmp_path / "out" / "part-00000.spacy").get_docs(nlp.vocab))
    assert [d.user_data[ID_KEY] for d in docs] == [f"doc{i}" for i in range(10)]
    assert [[(e.start_char, e.end_char, e.label_, e.kb_id_ or None) for e in d.ents] for d in docs] == [
        [(e["start"], e["end"], e["label"], e["kb_id"]) for e in r["ents"]] for r in rows[:10]]
    assert all("scores" in d.spans["rsft_ner"].attrs for d in docs)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["docs"] == 25 and manifest["shards_done"] == 3


def test_bad_records_go_to_the_errors_file_and_the_run_goes_on(pipeline_dir, tmp_path):
    lines = [
        json.dumps({"id": "a", "text": "Mary visited Paris ."}),
        "{not json",
        json.dumps({"id": "b", "text": 5}),
        json.dumps({"id": "c", "body": "no text field"}),
        json.dumps(["a", "list"]),
        "",
        json.dumps({"id": "d", "text": "x" * 500}),
        json.dumps({"id": "e", "text": "   "}),
        json.dumps({"text": "John lives in London ."}),
    ]
    corpus = tmp_path / "in.jsonl"
    corpus.write_bytes(("\n".join(lines) + "\n").encode() + b"\xff\xfe broken utf8\n")
    report = annotate(corpus, tmp_path / "out", pipeline_dir, block_size=4, max_chars=200, progress=False)
    assert (report.docs, report.errors, report.blank) == (2, 7, 1)
    errors = [json.loads(line) for line in Path(report.errors_path).read_text().splitlines()]
    assert [(e["line"], e["id"]) for e in errors] == [(2, None), (3, "b"), (4, "c"), (5, None), (7, "d"), (8, "e"), (10, None)]
    assert all(e["file"] == str(corpus.resolve()) for e in errors)
    reasons = " | ".join(e["reason"] for e in errors)
    for part in ("invalid JSON", "not a string", "no 'text' field", "not an object", "more than max_chars", "empty", "UTF-8"):
        assert part in reasons
    # a record without an id gets its place as id: nothing is anonymous
    assert [r["id"] for r in shard_lines(tmp_path / "out")] == ["a", "in.jsonl:9"]


def test_text_docbin_and_glob_inputs(pipeline_dir, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "b.txt").write_text("Mary visited Paris .\n\nJohn works for Google .\n", encoding="utf8")
    nlp = spacy.blank("en")
    docbin = DocBin(store_user_data=True)
    for i, text in enumerate(texts(3)):
        doc = nlp.make_doc(text)
        doc.user_data[ID_KEY] = f"bin{i}"
        docbin.add(doc)
    docbin.to_disk(tmp_path / "in" / "a.spacy")
    report = annotate(str(tmp_path / "in" / "*"), tmp_path / "out", pipeline_dir, progress=False)
    assert (report.shards, report.docs, report.blank, report.errors) == (2, 5, 1, 0)
    assert [r["id"] for r in shard_lines(tmp_path / "out")] == ["bin0", "bin1", "bin2", "b.txt:1", "b.txt:3"]
    # output inside the input directory: its shards are never read back as inputs
    for _ in range(2):
        inside = annotate(tmp_path / "in", tmp_path / "in" / "annotated", pipeline_dir, progress=False)
        assert (inside.shards, inside.docs) == (2, 5)
    with pytest.raises(AnnotateInputError, match="No input files"):
        annotate(str(tmp_path / "nothing" / "*.jsonl"), tmp_path / "out2", pipeline_dir, progress=False)
    (tmp_path / "in" / "c.csv").write_text("text\n", encoding="utf8")
    with pytest.raises(AnnotateInputError, match="unknown input format"):
        annotate(str(tmp_path / "in" / "*"), tmp_path / "out3", pipeline_dir, progress=False)


def test_rerun_skips_done_shards_and_resumes_after_a_crash(pipeline_dir, fault_code, tmp_path):
    marker = tmp_path / "fail"
    faulty = with_fault(pipeline_dir, fault_code, tmp_path / "faulty", "raise", marker)
    corpus = write_corpus(tmp_path / "in.jsonl", 30, crash_at=15)
    clean = annotate(corpus, tmp_path / "clean", faulty, block_size=10, code=fault_code, progress=False)
    assert clean.complete and clean.shards_run == 3
    marker.touch()
    with pytest.raises(RuntimeError, match="injected failure"):
        annotate(corpus, tmp_path / "out", faulty, block_size=10, code=fault_code, progress=False)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert not manifest["complete"] and manifest["shards_done"] == 1
    marker.unlink()
    resumed = annotate(corpus, tmp_path / "out", faulty, block_size=10, code=fault_code, progress=False)
    assert (resumed.complete, resumed.shards_run, resumed.shards_skipped, resumed.docs) == (True, 2, 1, 30)
    for name in ("part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl", "part-00001.spacy"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes()
    again = annotate(corpus, tmp_path / "out", faulty, block_size=10, code=fault_code, progress=False)
    assert (again.shards_run, again.shards_skipped, again.docs) == (0, 3, 30)


def test_other_settings_into_the_same_output_are_refused(pipeline_dir, tmp_path):
    corpus = write_corpus(tmp_path / "in.jsonl", 12)
    annotate(corpus, tmp_path / "out", pipeline_dir, block_size=5, progress=False)
    with pytest.raises(AnnotateOutputError, match="other settings"):
        annotate(corpus, tmp_path / "out", pipeline_dir, block_size=6, progress=False)
    report = annotate(corpus, tmp_path / "out", pipeline_dir, block_size=6, overwrite=True, progress=False)
    assert report.shards == 2 and len(list((tmp_path / "out").glob("part-*.jsonl"))) == 2


def test_cli_annotate_and_its_errors(pipeline_dir, tmp_path):
    corpus = write_corpus(tmp_path / "in.jsonl", 5)
    runner = CliRunner()
    result = runner.invoke(app, ["annotate", str(corpus), str(tmp_path / "out"), "--pipeline", str(pipeline_dir), "--output", "jsonl"])
    assert result.exit_code == 0, result.output
    assert "5 docs" in result.output and not list((tmp_path / "out").glob("*.spacy"))
    result = runner.invoke(app, ["annotate", str(corpus), str(tmp_path / "o2"), "--pipeline", str(tmp_path)])
    assert result.exit_code == 1 and "not a spaCy pipeline directory" in result.output
    result = runner.invoke(app, ["annotate", str(corpus), str(tmp_path / "o3"), "--pipeline", str(pipeline_dir), "--engine", "spark"])
    assert result.exit_code == 1 and "Unknown engine" in result.output


def test_plan_blocks_are_fixed_by_the_files(tmp_path):
    corpus = write_corpus(tmp_path / "in.jsonl", 23)
    blocks = plan_blocks([corpus], 10)
    assert [(b.line, b.n_lines) for b in blocks] == [(1, 10), (11, 10), (21, 3)]
    with corpus.open("rb") as file_:
        file_.seek(blocks[1].offset)
        assert json.loads(file_.readline())["id"] == "doc10"


def test_worker_cpus_leave_one_cpu_free():
    assert worker_cpus(1.0, 2, 8.0) == 1.0
    with pytest.warns(UserWarning, match="ray#44687"):
        assert worker_cpus(1.0, 2, 2.0) == 0.5
    with pytest.warns(UserWarning):
        assert worker_cpus(1.0, 1, 1.0) == 0.5


# --- Ray: a real single-node instance --------------------------------------------------

@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token written under ~/.ray
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             object_store_memory=512 * 2**20, logging_level="WARNING")
    yield ray
    ray.shutdown()


RAY = RayOptions(workers=2, cpus_per_worker=0.5)


@pytest.mark.ray
@pytest.mark.timeout(RAY_TIMEOUT)
def test_ray_gives_the_local_output(ray_instance, pipeline_dir, tmp_path):
    corpus = write_corpus(tmp_path / "in.jsonl", 40)
    with (tmp_path / "in.jsonl").open("a") as file_:
        file_.write("{broken\n")
    local = annotate(corpus, tmp_path / "local", pipeline_dir, block_size=10, progress=False)
    ray = annotate(corpus, tmp_path / "ray", pipeline_dir, "ray", block_size=10, progress=False, ray_options=RAY)
    assert (ray.shards, ray.docs, ray.errors, ray.ents) == (local.shards, local.docs, local.errors, local.ents) == (5, 40, 1, local.ents)
    local_rows, ray_rows = shard_lines(tmp_path / "local"), shard_lines(tmp_path / "ray")
    assert [(r["id"], [(e["start"], e["end"], e["label"], e["kb_id"]) for e in r["ents"]]) for r in ray_rows] == [
        (r["id"], [(e["start"], e["end"], e["label"], e["kb_id"]) for e in r["ents"]]) for r in local_rows]
    for ray_row, local_row in zip(ray_rows, local_rows):
        for a, b in zip(ray_row["ents"], local_row["ents"]):
            for key in ("score", "kb_score"):
                assert (a[key] is None) == (b[key] is None) and abs((a[key] or 0) - (b[key] or 0)) < 1e-4
    assert (tmp_path / "ray" / "errors.jsonl").read_text() == (tmp_path / "local" / "errors.jsonl").read_text()
    assert ray.peak_rss_mb and all(mb > 0 for mb in ray.peak_rss_mb.values())
    again = annotate(corpus, tmp_path / "ray", pipeline_dir, "ray", block_size=10, progress=False, ray_options=RAY)
    assert (again.shards_run, again.shards_skipped, again.docs) == (0, 5, 40)


@pytest.mark.ray
@pytest.mark.timeout(RAY_TIMEOUT)
def test_ray_retries_a_killed_worker_and_loses_nothing(ray_instance, pipeline_dir, fault_code, tmp_path):
    marker = tmp_path / "killed"
    faulty = with_fault(pipeline_dir, fault_code, tmp_path / "faulty", "exit", marker)
    corpus = write_corpus(tmp_path / "in.jsonl", 30, crash_at=12)
    report = annotate(corpus, tmp_path / "ray", faulty, "ray", block_size=10, code=fault_code,
                      progress=False, ray_options=RAY)
    assert marker.exists(), "the fault was not injected"
    assert report.complete and report.docs == 30 and report.errors == 0
    rows = shard_lines(tmp_path / "ray")
    assert [r["id"] for r in rows] == [f"doc{i}" for i in range(30)]  # none lost, none twice
    local = annotate(corpus, tmp_path / "local", faulty, block_size=10, code=fault_code, progress=False)
    assert [[(e["start"], e["label"]) for e in r["ents"]] for r in rows] == [
        [(e["start"], e["label"]) for e in r["ents"]] for r in shard_lines(tmp_path / "local")]
    assert local.docs == 30


@pytest.mark.ray
@pytest.mark.timeout(RAY_TIMEOUT)
def test_build_kb_on_ray_writes_the_local_kb(ray_instance, tiny_bert, tmp_path):
    entities = [{"id": f"Q{i}", "name": f"Entity {i}" + " word" * (i % 9), "description": "a thing " * (i % 5)} for i in range(150)]
    path = write_jsonl(tmp_path / "e.jsonl", entities)
    build_kb(path, None, tmp_path / "local", tiny_bert, batch_size=8, progress=False)
    build_kb(path, None, tmp_path / "ray", tiny_bert, batch_size=8, progress=False, engine="ray", ray_options=RAY)
    local_files = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*") if p.is_file())
    assert local_files
    for name in local_files:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
