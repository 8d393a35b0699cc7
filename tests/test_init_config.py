"""init-config writes complete configs; the project's configs are its output."""
from pathlib import Path

import pytest
import spacy
from spacy.cli.train import train
from spacy.tokens import DocBin
from thinc.api import Config

from spacy_rsft.cli.init_config import make_config, write_config
from spacy_rsft.kb.builder import build_kb

PROJECT_CONFIGS = Path(__file__).resolve().parents[1] / "project" / "configs"


@pytest.mark.parametrize("pipeline,filename", [("ner", "rsft_ner.cfg"), ("el", "rsft_el.cfg")])
def test_project_configs_are_in_sync(pipeline, filename):
    assert (PROJECT_CONFIGS / filename).read_text() == make_config(pipeline).to_str()


def test_options():
    config = make_config("ner+el", target="denoise+balanced", model="roberta-base")
    assert config["nlp"]["pipeline"] == ["rsft_ner", "rsft_entity_linker"]
    assert config["corpora"]["train"]["target"] == "denoise+balanced"
    assert config["paths"]["model"] == "roberta-base"
    assert config["training"]["score_weights"]["ents_f"] == 0.5
    with pytest.raises(ValueError, match="target"):
        make_config("ner", target="bogus")
    with pytest.raises(ValueError, match="pipeline"):
        make_config("pos")


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
    (tmp_path / "e.jsonl").write_text('{"id": "Q1", "name": "Paris"}\n')
    build_kb(tmp_path / "e.jsonl", None, tmp_path / "kb", tiny_bert, progress=False)
    config_path = write_config(tmp_path / "config.cfg", "ner+el", target="hard", model=tiny_bert)
    overrides = {
        "paths.train": str(tmp_path / "train.spacy"),
        "paths.dev": str(tmp_path / "train.spacy"),
        "paths.kb": str(tmp_path / "kb" / "kb"),
        "training.max_steps": 6,
        "training.eval_frequency": 3,
    }
    train(config_path, tmp_path / "out", overrides=overrides)
    loaded = spacy.load(tmp_path / "out" / "model-last")
    assert loaded.pipe_names == ["rsft_ner", "rsft_entity_linker"]
    assert "nel_micro_f" in loaded.meta["performance"]
    assert Config().from_disk(config_path)["corpora"]["train"]["target"] == "hard"
