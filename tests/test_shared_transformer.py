"""rsft_ner and rsft_entity_linker listening to one shared `transformer` component."""
import pytest
import spacy
from spacy.training import Example
from spacy.util import load_model_from_config, registry
from thinc.api import fix_random_seed

from spacy_rsft.cli.init_config import make_config
from spacy_rsft.kb.builder import build_kb

registry.ensure_populated()

def _spans(text, *mentions):
    """(start, end, label, kb_id) of each (words, label, kb_id), found left to right."""
    out, start = [], 0
    for words, label, kb_id in mentions:
        start = text.index(words, start)
        out.append((start, start + len(words), label, kb_id))
        start += len(words)
    return out


MARY = "Mary Smith went from Paris to France and back again to Paris ."
DATA = [
    ("Paris is the capital of France .", _spans("Paris is the capital of France .", ("Paris", "LOC", "Q1"), ("France", "LOC", "Q2"))),
    ("", []),  # an empty doc in the batch: the listeners must still see the whole batch
    ("Nothing happened in the long and quiet afternoon at all today .", []),
    ("Jorvik is old .", [(0, 6, "LOC", "NIL")]),
    (MARY, _spans(MARY, ("Mary Smith", "PER", "NIL"), ("Paris", "LOC", "Q1"), ("France", "LOC", "Q2"), ("Paris", "LOC", "Q1"))),
]


@pytest.fixture(scope="module")
def shared_nlp(tmp_path_factory, tiny_bert):
    tmp = tmp_path_factory.mktemp("shared")
    (tmp / "e.jsonl").write_text('{"id": "Q1", "name": "Paris"}\n{"id": "Q2", "name": "France"}\n')
    (tmp / "a.jsonl").write_text('{"alias": "Paris", "entity": "Q1", "count": 3}\n{"alias": "France", "entity": "Q2", "count": 3}\n')
    build_kb(tmp / "e.jsonl", tmp / "a.jsonl", tmp / "kb", tiny_bert, progress=False)
    config = make_config("ner+el", model=tiny_bert)
    config["paths"]["kb"] = str(tmp / "kb" / "kb")
    config["components"]["rsft_ner"]["model"]["hidden_width"] = 32
    fix_random_seed(0)
    nlp = load_model_from_config(config, auto_fill=True, validate=True)

    def examples():
        out = []
        for text, ents in DATA:
            ref = nlp.make_doc(text)
            ref.ents = [ref.char_span(s, e, label=l, kb_id=k) for s, e, l, k in ents]
            out.append(Example(nlp.make_doc(text), ref))
        return out

    optimizer = nlp.initialize(examples, sgd=None)
    optimizer.learn_rate = 0.002  # not the config's 200-step warm-up
    history = [nlp.update(examples(), sgd=optimizer) for _ in range(12)]
    return nlp, history, tmp


def test_one_transformer_for_both(shared_nlp):
    from spacy_transformers.layers import TransformerModel

    nlp, history, _ = shared_nlp
    assert nlp.pipe_names == ["transformer", "rsft_ner", "rsft_entity_linker"]
    for name in ("rsft_ner", "rsft_entity_linker"):
        assert not any(isinstance(node, TransformerModel) for node in nlp.get_pipe(name).model.walk())
    # both components learned through the shared transformer
    assert history[-1]["rsft_ner"] < history[0]["rsft_ner"]
    assert history[-1]["rsft_entity_linker"] < history[0]["rsft_entity_linker"]
    assert history[-1]["transformer"] > 0


def _annotations(pipeline, texts):
    return [[(e.start, e.end, e.label_, e.kb_id_, round(e._.kb_score, 5)) for e in doc.ents] for doc in pipeline.pipe(texts)]


def test_saves_loads_and_links_identically(shared_nlp, tmp_path):
    nlp, _, _ = shared_nlp
    texts = [text for text, _ in DATA] + ["Paris and France ."]

    before = _annotations(nlp, texts)
    nlp.to_disk(tmp_path / "p")
    loaded = spacy.load(tmp_path / "p")
    assert _annotations(loaded, texts) == before
    # the linker also links entities that come from elsewhere (gold spans, a ruler)
    with loaded.select_pipes(disable=["rsft_ner"]):
        doc = loaded.make_doc("Paris is the capital of France .")
        doc.ents = [doc.char_span(0, 5, label="LOC")]
        for _, proc in loaded.pipeline:
            doc = proc(doc)
    assert doc.ents[0].kb_id_ in ("Q1", "NIL") and doc.ents[0]._.kb_candidates


@pytest.mark.slow
def test_spacy_package_installs_and_links_identically(shared_nlp, tmp_path):
    """`spacy package` of the shared pipeline builds an sdist that installs and loads by
    name (spacy-rsft among its requirements) and gives the same entities and links."""
    import json
    import subprocess
    import sys

    nlp, _, _ = shared_nlp
    texts = [text for text, _ in DATA]
    nlp.to_disk(tmp_path / "pipe")

    def run(*cmd, **kwargs):
        done = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, **kwargs)
        assert done.returncode == 0, f"{cmd[:3]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        return done

    (tmp_path / "out").mkdir()
    run("-m", "spacy", "package", str(tmp_path / "pipe"), str(tmp_path / "out"), "--name", "shared_test",
        "--version", "0.0.1", "--build", "sdist", "--force")
    meta = json.loads((tmp_path / "out" / "en_shared_test-0.0.1" / "meta.json").read_text())
    assert any(r.startswith("spacy-rsft") for r in meta["requirements"])
    sdist = next((tmp_path / "out").glob("*/dist/*.tar.gz"))
    run("-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(tmp_path / "site"), str(sdist))
    script = ("import json, sys, spacy; nlp = spacy.load('en_shared_test'); "
              "print(json.dumps([[(e.start, e.end, e.label_, e.kb_id_, round(e._.kb_score, 5)) for e in d.ents] "
              "for d in nlp.pipe(json.loads(sys.argv[1]))]))")
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path / "site")}
    out = run("-c", script, json.dumps(texts), env=env, cwd=str(tmp_path))
    installed = [[tuple(ent) for ent in doc] for doc in json.loads(out.stdout.strip().splitlines()[-1])]
    assert installed == _annotations(nlp, texts)


def test_int8_on_a_listening_component_is_a_clear_error(shared_nlp, tmp_path):
    from spacy_rsft.cli.quantize import quantize_pipeline

    nlp, _, _ = shared_nlp
    nlp.to_disk(tmp_path / "p")
    # quantize belongs on the shared transformer: the component's own setting is refused
    with pytest.raises(ValueError, match=r"E333.*rsft_ner.*shared `transformer`"):
        spacy.load(tmp_path / "p", config={"components": {"rsft_ner": {"quantize": "int8"}}})
    with pytest.raises(ValueError, match=r"E335.*rsft_ner.*`transformer`"):
        quantize_pipeline(tmp_path / "p", tmp_path / "q", components=["rsft_ner"])
    assert not (tmp_path / "q").exists()


def test_int8_quantizes_the_shared_transformer(shared_nlp, tmp_path):
    """`quantize` on a shared pipeline reaches its one transformer: both components read
    int8 outputs, the copy saves fp32 weights, predictions stay valid and close, and the
    quantized transformer refuses to train."""
    import torch
    from spacy_rsft.cli.quantize import quantize_pipeline
    from spacy_rsft.pipeline.quantization import hf_shims, is_quantized

    nlp, _, _ = shared_nlp
    texts = [text for text, _ in DATA] + ["Paris and France ."]
    nlp.to_disk(tmp_path / "p")
    assert quantize_pipeline(tmp_path / "p", tmp_path / "q") == ["transformer"]
    quantized = spacy.load(tmp_path / "q")
    transformer = quantized.get_pipe("transformer")
    assert quantized.config["components"]["transformer"]["factory"] == "rsft_transformer"
    assert transformer.quantize == "int8" and is_quantized(transformer.model)
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in hf_shims(transformer.model)[0]._model.modules())
    for name in ("rsft_ner", "rsft_entity_linker"):
        assert quantized.get_pipe(name).quantize is None
    fp32, int8 = _annotations(nlp, texts), _annotations(quantized, texts)
    for doc_fp32, doc_int8 in zip(fp32, int8):
        for ent in doc_int8:
            assert 0.0 <= ent[4] <= 1.0 and (ent[3] in ("Q1", "Q2", "NIL"))
    # the same entities and links on this toy model (its margins are wide)
    assert [[e[:4] for e in d] for d in int8] == [[e[:4] for e in d] for d in fp32]
    # saved again, the weights on disk are the fp32 ones: with quantize off it is the original
    quantized.to_disk(tmp_path / "q2")
    plain = spacy.load(tmp_path / "q2", config={"components": {"transformer": {"quantize": None}}})
    assert not is_quantized(plain.get_pipe("transformer").model)
    assert _annotations(plain, texts) == fp32
    with pytest.raises(ValueError, match=r"E317.*transformer"):
        quantized.get_pipe("transformer").update([])


def test_scoring_docs_the_transformer_did_not_see_is_a_clear_error(shared_nlp):
    nlp, _, _ = shared_nlp
    text, ents = DATA[0]
    ref = nlp.make_doc(text)
    ref.ents = [ref.char_span(s, e, label=l, kb_id=k) for s, e, l, k in ents]
    eg = Example(nlp.make_doc(text), ref)
    for name in ("rsft_ner", "rsft_entity_linker"):
        with pytest.raises(ValueError, match=rf"E334.*{name}"):
            nlp.get_pipe(name).get_example_losses([eg])


def test_fresh_scoring_runs_the_shared_transformer_first(shared_nlp):
    """The reader's `scoring = "fresh"` pass goes component by component: the shared
    transformer annotates the copies, then both listeners score them."""
    from spacy_rsft.sampling.scoring import fresh_losses

    nlp, _, _ = shared_nlp
    examples = []
    for text, ents in DATA:
        ref = nlp.make_doc(text)
        ref.ents = [ref.char_span(s, e, label=l, kb_id=k) for s, e, l, k in ents]
        examples.append(Example(nlp.make_doc(text), ref))
    per_example = fresh_losses(nlp, examples)
    assert per_example.shape == (len(examples),)
    nonempty = [i for i, eg in enumerate(examples) if len(eg.reference)]
    assert all(per_example[i] > 0 for i in nonempty)
    ner_alone = nlp.get_pipe("rsft_ner").get_example_losses(
        [Example(nlp.get_pipe("transformer")(eg.predicted.copy()), eg.reference) for eg in examples])
    # Both listeners scored: the linker adds its loss wherever an in-KB mention is linked.
    linked = [i for i, eg in enumerate(examples) if any(e.kb_id_ not in ("", "NIL") for e in eg.reference.ents)]
    assert linked and all(per_example[i] > ner_alone[i] for i in linked)
    per_token = fresh_losses(nlp, examples, per_token=True)
    assert [len(v) for v in per_token] == [len(eg.reference) for eg in examples]
    # The examples themselves were not annotated by the scoring pass.
    assert all(eg.predicted._.trf_data is None and not eg.predicted.ents for eg in examples)


def write_gold(nlp, path) -> None:
    """DATA's texts with their gold entities and links, as a .spacy file."""
    from spacy.tokens import DocBin

    refs = []
    for text, ents in DATA:
        ref = nlp.make_doc(text)
        ref.ents = [ref.char_span(s, e, label=l, kb_id=k) for s, e, l, k in ents]
        refs.append(ref)
    DocBin(docs=refs).to_disk(path)


def test_benchmark_e2e_int8_scores_both_precisions_alternately(shared_nlp, tmp_path, monkeypatch):
    """`project/benchmarks/scripts/e2e_int8.py`: the fp32 pipeline and its int8 copy, each
    evaluated from raw text in alternate rounds, and their differences."""
    import json
    import sys
    from pathlib import Path

    scripts = Path(__file__).resolve().parents[1] / "project" / "benchmarks" / "scripts"
    monkeypatch.syspath_prepend(str(scripts))
    import e2e_int8

    nlp, _, _ = shared_nlp
    nlp.to_disk(tmp_path / "p")
    write_gold(nlp, tmp_path / "gold.spacy")
    out = tmp_path / "e2e_int8.json"
    monkeypatch.setattr(sys, "argv", ["e2e_int8.py", str(tmp_path / "p"), str(tmp_path / "gold.spacy"),
                                      "--rounds", "2", "--output", str(out)])
    e2e_int8.main()
    report = json.loads(out.read_text())
    assert [(r["precision"], r["round"]) for r in report["runs"]] == [("fp32", 1), ("int8", 1), ("fp32", 2), ("int8", 2)]
    summary = report["summary"]
    for precision in ("fp32", "int8"):
        assert summary[precision]["words_per_second_median"] > 0
        assert 0.0 <= summary[precision]["ents_f"] <= 1.0
    # the differences are those of the two summaries, in F1 points
    assert summary["int8_vs_fp32"]["ents_f"] == round(100 * (summary["int8"]["ents_f"] - summary["fp32"]["ents_f"]), 2)
    assert summary["int8_vs_fp32"]["speed"] > 0


def test_benchmark_inference_table_measures_every_row_in_one_run(shared_nlp, tmp_path, monkeypatch):
    """`project/benchmarks/scripts/inference_table.py`: every row (the int8 ones quantized
    from their fp32 models) gets words/s from the same round-robin, its ratio to the
    spacy-transformers row, accuracy on its data, sizes and memory. The tiny shared pipeline
    stands in for every trained model."""
    import json
    import sys
    from pathlib import Path

    scripts = Path(__file__).resolve().parents[1] / "project" / "benchmarks" / "scripts"
    monkeypatch.syspath_prepend(str(scripts))
    import inference_table

    nlp, _, _ = shared_nlp
    models = tmp_path / "models"
    for name in ("ner_cnn", "ner_trf", "ner_uniform", "e2e_spacy"):
        (models / name / "seed0").mkdir(parents=True)
        nlp.to_disk(models / name / "seed0" / "model-best")
    (tmp_path / "ner_el").mkdir()
    nlp.to_disk(tmp_path / "ner_el" / "model-best")
    (tmp_path / "ner_el" / "train.json").write_text(json.dumps({"peak_rss_mb": 1234}))
    write_gold(nlp, tmp_path / "gold.spacy")
    monkeypatch.setattr(inference_table, "CONLL_DEV", tmp_path / "gold.spacy")
    monkeypatch.setattr(inference_table, "AIDA_TESTA", tmp_path / "gold.spacy")
    # a fresh process per row (the real measurement) costs seconds each: record what is asked
    measured = []
    monkeypatch.setattr(inference_table, "inference_peak_rss",
                        lambda model, repeats: measured.append(model) or [500, 530, 510][:repeats])
    out = tmp_path / "table.json"
    monkeypatch.setattr(sys, "argv", ["inference_table.py", "--models", str(models), "--ner-el",
                                      str(tmp_path / "ner_el" / "model-best"), "--runs", "2", "--output", str(out)])
    inference_table.main()
    rows = json.loads(out.read_text())["pipelines"]
    assert list(rows) == ["spaCy CNN ner", "spacy-transformers MiniLM + ner", "rsft_ner fp32", "rsft_ner int8",
                          "spaCy ner + entity_linker", "ner+el fp32", "ner+el int8"]
    assert rows["spacy-transformers MiniLM + ner"]["ratio_to_spacy_transformers"] == 1.0
    for name, row in rows.items():
        assert len(row["words_per_second_runs"]) == 2 and row["words_per_second_median"] > 0, name
        assert 0.0 <= row["ents_f"] <= 100.0 and row["disk_mb"] > 0, name
        # three fresh processes by default (their peaks spread), and their median
        assert row["inference_peak_rss_mb_runs"] == [500, 530, 510] and row["inference_peak_rss_mb"] == 510, name
    # an int8 row names the fp32 model it was quantized from, and that model's training
    assert rows["ner+el int8"]["precision"] == "int8"
    assert rows["ner+el int8"]["model"] == rows["ner+el fp32"]["model"]
    assert rows["ner+el int8"]["train_peak_rss_mb"] == rows["ner+el fp32"]["train_peak_rss_mb"] == 1234
    assert rows["spaCy CNN ner"]["train_peak_rss_mb"] is None  # no train.json beside it
    assert "nel_e2e_inkb_f" in rows["ner+el fp32"]
    # memory is measured on the folder each row runs: the int8 copy, not its fp32 source
    assert len(set(measured)) == 7 and models / "ner_uniform" / "seed0" / "model-best" in measured
    # each round's ratio is paired with the anchor's same round
    int8 = rows["rsft_ner int8"]
    anchor_runs = rows["spacy-transformers MiniLM + ner"]["words_per_second_runs"]
    assert int8["ratio_per_round"] == [round(a / b, 3) for a, b in zip(int8["words_per_second_runs"], anchor_runs)]
    # --rows measures some rows only, with the anchor and the fp32 model an int8 row names
    monkeypatch.setattr(sys, "argv", sys.argv[:-2] + ["--rows", "ner+el int8", "--output", str(out)])
    inference_table.main()
    rows = json.loads(out.read_text())["pipelines"]
    assert list(rows) == ["spacy-transformers MiniLM + ner", "ner+el int8"]
    assert rows["ner+el int8"]["model"].endswith("model-best")


def test_benchmark_inference_mmap_pairs_each_threshold_with_glibcs_default(shared_nlp, tmp_path, monkeypatch):
    """`project/benchmarks/scripts/inference_mmap.py`: every threshold's speed is paired
    round by round with glibc's default in one process, and its memory is measured in fresh
    processes that start with the threshold set (MALLOC_MMAP_THRESHOLD_)."""
    import json
    import sys
    from pathlib import Path

    scripts = Path(__file__).resolve().parents[1] / "project" / "benchmarks" / "scripts"
    monkeypatch.syspath_prepend(str(scripts))
    import inference_mmap

    nlp, _, _ = shared_nlp
    nlp.to_disk(tmp_path / "model")
    write_gold(nlp, tmp_path / "gold.spacy")
    monkeypatch.setattr(inference_mmap, "DEV", tmp_path / "gold.spacy")
    asked = []

    def fake_peaks(model, repeats, env):
        asked.append(env.get("MALLOC_MMAP_THRESHOLD_"))
        return [700 + len(asked)] * repeats

    import footprint  # whose median_peak the script calls

    monkeypatch.setattr(footprint, "inference_peak_rss", fake_peaks)
    out = tmp_path / "mmap.json"
    monkeypatch.setattr(sys, "argv", ["inference_mmap.py", str(tmp_path / "model"), "--thresholds-mb", "1,4",
                                      "--runs", "3", "--docs", "4", "--repeats", "2", "--output", str(out)])
    inference_mmap.main()
    rows = json.loads(out.read_text())["models"][str(tmp_path / "model")]
    assert list(rows) == ["glibc default", "1 MB", "4 MB"]
    assert asked == [None, str(1 << 20), str(4 << 20)]
    assert [row["peak_rss_mb_runs"] for row in rows.values()] == [[701, 701], [702, 702], [703, 703]]
    assert rows["glibc default"]["ratio_per_round_median"] == 1.0
    for row in rows.values():
        assert len(row["words_per_second"]) == 3 and row["median_words_per_second"] > 0
    # each round's ratio is paired with the default's same round (to the rounding of the
    # stored words/s and of the ratio itself to 3 decimals, which is most of a small ratio's
    # error: a round slowed by a busy machine gave 0.037 for 0.0366)
    one, default = rows["1 MB"], rows["glibc default"]
    for ratio, mine, theirs in zip(one["ratio_per_round"], one["words_per_second"], default["words_per_second"]):
        assert ratio == pytest.approx(mine / theirs, rel=0.005, abs=6e-4)
    assert one["ratio_per_round_median"] == pytest.approx(sorted(one["ratio_per_round"])[1], abs=1e-3)
