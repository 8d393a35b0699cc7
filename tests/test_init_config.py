"""init-config writes complete configs; the project's configs are its output; spaCy's own
tools (`spacy train`, `debug config`, `debug data`) accept them."""
from pathlib import Path

import pytest
import spacy
from spacy import util
from spacy.cli.debug_config import debug_config
from spacy.cli.debug_data import debug_data
from spacy.cli.train import train
from spacy.tokens import DocBin
from spacy.util import registry
from thinc.api import Config

from spacy_rsft.cli.calibrate import calibrate_pipeline
from spacy_rsft.cli.init_config import PIPELINES, config_text, make_config, write_config
from spacy_rsft.kb.builder import build_kb

PROJECT_CONFIGS = Path(__file__).resolve().parents[1] / "project" / "configs"
# spaCy's debug data fails a new pipeline with fewer than 100 training docs.
DEBUG_DATA = [
    ("Paris is the capital of France .", [(0, 5, "LOC", "Q1")]),
    ("Jorvik is an old name .", [(0, 6, "LOC", "NIL")]),
    ("Mary Smith lives in Paris .", [(0, 10, "PER", "Q2"), (20, 25, "LOC", "Q1")]),
    ("Nothing happened today .", []),
] * 25


def write_docbin(path: Path, data) -> Path:
    nlp = spacy.blank("en")
    docs = []
    for text, spans in data:
        doc = nlp.make_doc(text)
        doc.ents = [doc.char_span(s, e, label=l, kb_id=k) for s, e, l, k in spans]
        docs.append(doc)
    DocBin(docs=docs).to_disk(path)
    return path


@pytest.fixture(scope="module")
def debug_inputs(tmp_path_factory, tiny_bert):
    """A training DocBin and a KB of its entities, for spaCy's debug commands."""
    tmp = tmp_path_factory.mktemp("debug_inputs")
    (tmp / "e.jsonl").write_text('{"id": "Q1", "name": "Paris"}\n{"id": "Q2", "name": "Mary Smith"}\n')
    build_kb(tmp / "e.jsonl", None, tmp / "kb", tiny_bert, progress=False)
    return {"paths.train": str(write_docbin(tmp / "train.spacy", DEBUG_DATA)),
            "paths.dev": str(write_docbin(tmp / "dev.spacy", DEBUG_DATA[:8])),
            "paths.kb": str(tmp / "kb" / "kb")}


@pytest.mark.parametrize("pipeline,target,filename", [("ner", "uniform", "rsft_ner.cfg"), ("el", "uniform", "rsft_el.cfg"),
                                                     ("ner", "denoise", "rsft_ner_denoise.cfg")])
def test_project_configs_are_in_sync(pipeline, target, filename):
    assert (PROJECT_CONFIGS / filename).read_text() == config_text(pipeline, target)


def test_denoise_gets_the_reader_settings_the_evidence_supports():
    reader = make_config("ner", target="denoise")["corpora"]["train"]
    assert (reader["unit"], reader["span_kinds"], reader["noise_rate_estimate"]) == ("span", "outside", "max")
    # other targets keep the reader's defaults (whole examples)
    assert "unit" not in make_config("ner", target="hard")["corpora"]["train"]
    assert "unit" not in make_config("ner", target="denoise+balanced")["corpora"]["train"]


def test_written_config_is_the_config_with_comments(tmp_path):
    path = write_config(tmp_path / "config.cfg", "ner+el", target="hard")
    text = path.read_text()
    assert "# The step budget is one number" in text
    assert Config().from_str(text, interpolate=False) == make_config("ner+el", target="hard")


def test_options():
    config = make_config("ner+el", target="denoise+balanced", model="roberta-base")
    # one shared transformer, both components listen to it
    assert config["nlp"]["pipeline"] == ["transformer", "rsft_ner", "rsft_entity_linker"]
    for name in ("rsft_ner", "rsft_entity_linker"):
        assert config["components"][name]["model"]["tok2vec"]["@architectures"] == "spacy-transformers.TransformerListener.v1"
    assert config["components"]["transformer"]["model"]["name"] == "${paths.model}"
    separate = make_config("ner+el", shared=False)
    assert separate["nlp"]["pipeline"] == ["rsft_ner", "rsft_entity_linker"]
    assert config["corpora"]["train"]["target"] == "denoise+balanced"
    assert config["paths"]["model"] == "roberta-base"
    assert config["training"]["score_weights"]["ents_f"] == 0.5
    with pytest.raises(ValueError, match="target"):
        make_config("ner", target="bogus")
    with pytest.raises(ValueError, match="pipeline"):
        make_config("pos")


@pytest.mark.parametrize("path", sorted(PROJECT_CONFIGS.glob("*.cfg")), ids=lambda p: p.name)
def test_optimizer_resolves_without_interpolation(path):
    """nlp.initialize() without an optimizer (as `spacy debug data` calls it) resolves
    [training.optimizer] from the uninterpolated config: it must hold no variables."""
    config = util.load_config(path)
    registry.resolve({"optimizer": config["training"]["optimizer"]})


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_step_budget_is_one_number(tmp_path, pipeline):
    """The schedule's total_steps is the budget; max_steps follows it when it is overridden."""
    path = write_config(tmp_path / "config.cfg", pipeline)
    assert util.load_config(path, interpolate=True)["training"]["max_steps"] == 2000
    overrides = {"training.optimizer.learn_rate.total_steps": 7}
    assert util.load_config(path, overrides=overrides, interpolate=True)["training"]["max_steps"] == 7
    assert util.load_config(path, overrides=overrides)["training"]["optimizer"]["learn_rate"]["total_steps"] == 7


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_spacy_debug_config_and_data(tmp_path, tiny_bert, debug_inputs, pipeline):
    """`spacy debug config` and `spacy debug data` run through every generated config."""
    path = write_config(tmp_path / "config.cfg", pipeline, model=tiny_bert)
    overrides = {k: v for k, v in debug_inputs.items() if k != "paths.kb" or pipeline != "ner"}
    for command, kwargs in [(debug_config, {"overrides": overrides}), (debug_data, {"config_overrides": overrides, "silent": False})]:
        try:
            command(path, **kwargs)
        except SystemExit as e:  # spaCy's CLI functions report failures by exiting
            if e.code:
                pytest.fail(f"spacy {command.__name__} exited with {e.code} on the {pipeline!r} config (see the output)")


def test_ner_and_el_config_trains(tmp_path, tiny_bert):
    nlp = spacy.blank("en")
    docs = []
    for text, spans in [
        ("Paris is the capital of France .", [(0, 5, "LOC", "Q1")]),
        ("Jorvik is an old name .", [(0, 6, "LOC", "NIL")]),
    ]:
        doc = nlp.make_doc(text)
        doc.ents = [doc.char_span(s, e, label=l, kb_id=k) for s, e, l, k in spans]
        docs.append(doc)
    DocBin(docs=docs * 3).to_disk(tmp_path / "train.spacy")
    # The README's "link your own KB" walk-through: entities (with types) and aliases ->
    # build-kb -> init-config ner+el -> spacy train -> calibrate -> nlp(text).
    (tmp_path / "e.jsonl").write_text('{"id": "Q1", "name": "Paris", "type": "GPE", "frequency": 90}\n')
    (tmp_path / "a.jsonl").write_text('{"alias": "Paris", "entity": "Q1", "count": 3}\n')
    build_kb(tmp_path / "e.jsonl", tmp_path / "a.jsonl", tmp_path / "kb", tiny_bert, progress=False)
    config_path = write_config(tmp_path / "config.cfg", "ner+el", target="hard", model=tiny_bert)
    overrides = {
        "paths.train": str(tmp_path / "train.spacy"),
        "paths.dev": str(tmp_path / "train.spacy"),
        "paths.kb": str(tmp_path / "kb" / "kb"),
        "paths.entities": str(tmp_path / "kb" / "entities.jsonl"),
        "components.rsft_entity_linker.features": ["log_prior", "match", "popularity", "coherence", "type"],
        "training.optimizer.learn_rate.total_steps": 6,
        "training.eval_frequency": 3,
    }
    train(config_path, tmp_path / "out", overrides=overrides)
    loaded = spacy.load(tmp_path / "out" / "model-last")
    assert loaded.pipe_names == ["transformer", "rsft_ner", "rsft_entity_linker"]
    assert "nel_micro_f" in loaded.meta["performance"]
    assert "nel_ece" in loaded.meta["performance"] and "ents_ece" in loaded.meta["performance"]
    assert loaded.config.interpolate()["training"]["max_steps"] == 6
    assert Config().from_disk(config_path)["corpora"]["train"]["target"] == "hard"
    el = loaded.get_pipe("rsft_entity_linker")
    assert el.entity_table.types == {"Q1": "GPE"} and el.cfg["entity_types"] == ["", "GPE"]
    results = calibrate_pipeline(tmp_path / "out" / "model-last", tmp_path / "train.spacy", tmp_path / "final", choose_threshold=True)
    assert set(results) == {"rsft_ner", "rsft_entity_linker"}
    final = spacy.load(tmp_path / "final")
    doc = final("Paris is the capital of France .")
    assert all(ent.kb_id_ in ("Q1", "NIL") and 0.0 <= ent._.kb_score <= 1.0 for ent in doc.ents)
