"""Hostile text, broken files and bad training values: never a crash, never a lost doc,
always a clear error for broken files."""
import math
import warnings

import numpy
import pytest
import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.tokens import DocBin
from thinc.api import fix_random_seed

from spacy_rsft.sampling.reader import RejectionSampledCorpus
from util import make_examples, make_tiny_ner_nlp


@pytest.fixture(scope="module")
def ner_nlp(tiny_bert):
    fix_random_seed(0)
    nlp = make_tiny_ner_nlp(tiny_bert)
    optimizer = nlp.initialize(lambda: make_examples(nlp))
    for _ in range(10):
        nlp.update(make_examples(nlp), sgd=optimizer)
    return nlp


def check_doc(doc):
    covered = [i for ent in doc.ents for i in range(ent.start, ent.end)]
    assert len(covered) == len(set(covered))
    group = doc.spans["rsft_ner"]
    scores = numpy.asarray(group.attrs["scores"])
    assert len(scores) == len(group)
    assert numpy.all(numpy.isfinite(scores)) and numpy.all((scores >= 0) & (scores <= 1))


HOSTILE = [
    "",
    "   \n\t  ",
    "\x00\x01\x02 control \x1b[31m chars \x7f",
    "emoji 👩‍👩‍👧‍👦 and 🇩🇪 flags",
    "combining e\u0301\u0301\u0301 marks and zalgo Z\u0351\u0352\u0353",
    "مرحبا بالعالم العربي",
    "שלום עולם",
    "日本語のテキストと中文",
    "\u200b\u200c\u200d zero width",
    "x" * 5000,
    "a" + "\u0301" * 3000,
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_text(ner_nlp, text):
    check_doc(ner_nlp(text))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(max_size=80), min_size=0, max_size=8))
def test_arbitrary_unicode_pipe(ner_nlp, texts):
    contexts = list(range(len(texts)))
    out = list(ner_nlp.pipe(zip(texts, contexts), as_tuples=True, batch_size=3))
    assert [context for _, context in out] == contexts
    for (doc, _), text in zip(out, texts):
        assert doc.text == text
        check_doc(doc)


def test_long_document(ner_nlp):
    text = ("John Smith lives in London . " * 7000)[:200_000]
    doc = ner_nlp(text)
    assert len(doc.text) == len(text)
    check_doc(doc)


def test_many_tiny_docs(ner_nlp):
    texts = ["London", "", "a", "John ."] * 1000
    docs = list(ner_nlp.pipe(texts, batch_size=256))
    assert len(docs) == len(texts)
    assert [d.text for d in docs] == texts


def test_nonfinite_loss_is_skipped_and_counted(tiny_bert):
    fix_random_seed(0)
    nlp = make_tiny_ner_nlp(tiny_bert)
    optimizer = nlp.initialize(lambda: make_examples(nlp))
    ner = nlp.get_pipe("rsft_ner")
    output = ner.model.get_ref("output_layer")
    weights = output.get_param("W").copy()
    poisoned = weights.copy()
    poisoned[0, 0] = numpy.nan
    output.set_param("W", poisoned)
    with pytest.warns(UserWarning, match="non-finite"):
        nlp.update(make_examples(nlp), sgd=optimizer)
    assert ner.guard.skipped == 1
    assert numpy.isnan(output.get_param("W")[0, 0])  # not made worse by a NaN gradient
    output.set_param("W", weights)
    nlp.update(make_examples(nlp), sgd=optimizer)
    assert math.isfinite(nlp.update(make_examples(nlp), sgd=optimizer)["rsft_ner"])
    output.set_param("W", poisoned)
    with pytest.raises(RuntimeError, match="rsft_ner.*non-finite"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(ner.guard.max_in_a_row + 1):
            nlp.update(make_examples(nlp), sgd=optimizer)


def test_corrupt_docbin_names_the_file(tmp_path):
    path = tmp_path / "train.spacy"
    path.write_bytes(b"this is not a docbin")
    reader = RejectionSampledCorpus(path)
    with pytest.raises(ValueError, match=r"train\.spacy.*DocBin"):
        list(reader(spacy.blank("en")))


def test_truncated_model_file_names_the_file(ner_nlp, tmp_path):
    ner_nlp.to_disk(tmp_path / "pipeline")
    model_file = tmp_path / "pipeline" / "rsft_ner" / "model"
    model_file.write_bytes(model_file.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"rsft_ner.*model"):
        spacy.load(tmp_path / "pipeline")


def test_same_seed_same_model(tiny_bert):
    outputs = []
    for _ in range(2):
        fix_random_seed(0)
        nlp = make_tiny_ner_nlp(tiny_bert)
        optimizer = nlp.initialize(lambda: make_examples(nlp))
        for _ in range(5):
            nlp.update(make_examples(nlp), sgd=optimizer)
        # The tag probabilities of every token, not only the (possibly empty) entities.
        outputs.append(nlp.get_pipe("rsft_ner").predict([nlp.make_doc("Mary visited Berlin and Google .")])[0])
    assert outputs[0].shape == (6, 13)
    numpy.testing.assert_array_equal(outputs[0], outputs[1])


def test_empty_docs_are_counted_not_dropped_silently(tmp_path):
    nlp = spacy.blank("en")
    docs = [nlp.make_doc("John visited London ."), nlp.make_doc(""), nlp.make_doc("Mary .")]
    DocBin(docs=docs).to_disk(tmp_path / "train.spacy")
    reader = RejectionSampledCorpus(tmp_path / "train.spacy")
    assert len(reader.load_examples(nlp)) == 2
    assert reader.skipped_empty == 1


@pytest.mark.slow
def test_memory_stays_flat_on_a_long_stream(ner_nlp):
    """20,000 docs through nlp.pipe: RSS after the first 2,000 and at the end."""
    import resource

    def rss_mb():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS"):
                    return int(line.split()[1]) / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    texts = [f"John Smith number {i} lives in London ." for i in range(20_000)]
    readings = []
    for i, doc in enumerate(ner_nlp.pipe(texts, batch_size=128)):
        if i in (2_000, 19_999):
            readings.append(rss_mb())
    print(f"RSS after 2,000 docs: {readings[0]:.0f} MB; after 20,000: {readings[1]:.0f} MB")
    assert readings[1] < readings[0] * 1.25 + 50


@pytest.mark.parametrize("interrupt", [RuntimeError("crash"), KeyboardInterrupt()])
def test_interrupted_writes_leave_the_previous_file(tmp_path, interrupt):
    from spacy_rsft.io import atomic_output
    from spacy_rsft.sampling.reader import write_jsonl_atomic

    target = tmp_path / "report.md"
    target.write_text("good")
    with pytest.raises(type(interrupt)):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise interrupt
    assert target.read_text() == "good"
    stats = tmp_path / "stats.jsonl"
    write_jsonl_atomic(stats, [{"epoch": 0}])

    class Boom:
        def __repr__(self):
            raise interrupt

    with pytest.raises((TypeError, type(interrupt))):
        write_jsonl_atomic(stats, [{"epoch": 1}, {"bad": Boom()}])
    assert stats.read_text() == '{"epoch": 0}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md", "stats.jsonl"]


def test_model_from_an_incompatible_config_names_the_component(ner_nlp, tmp_path):
    ner_nlp.to_disk(tmp_path / "pipeline")
    config = tmp_path / "pipeline" / "config.cfg"
    config.write_text(config.read_text().replace("hidden_width = 32", "hidden_width = 48"))
    with pytest.raises(ValueError, match=r"rsft_ner.*different config"):
        spacy.load(tmp_path / "pipeline")


def test_nonfinite_later_length_group_discards_the_whole_batch(tiny_bert, monkeypatch):
    """Length groups are backpropagated one at a time: when a later group's loss is not
    finite, the gradients the earlier groups put in are dropped, so no half batch counts."""
    from spacy_rsft.pipeline import ner as ner_module

    fix_random_seed(0)
    nlp = make_tiny_ner_nlp(tiny_bert)
    nlp.initialize(lambda: make_examples(nlp))
    component = nlp.get_pipe("rsft_ner")
    examples = make_examples(nlp)
    # two groups, whatever the lengths
    monkeypatch.setattr(ner_module, "padding_groups", lambda lengths, max_groups: [list(range(0, len(lengths), 2)), list(range(1, len(lengths), 2))])
    real_loss, calls = component._loss, []

    def second_group_nan(*args, **kwargs):
        loss, d_logits, per_example, per_token = real_loss(*args, **kwargs)
        calls.append(loss)
        return (float("nan") if len(calls) == 2 else loss), d_logits, per_example, per_token

    monkeypatch.setattr(component, "_loss", second_group_nan)
    with pytest.warns(UserWarning, match="non-finite"):
        component.update(examples)
    assert len(calls) == 2 and component.guard.skipped == 1
    assert component.pop_recorded_losses() == {}
    for node in component.model.walk():
        for name in node.param_names:
            if node.has_grad(name):
                assert not node.get_grad(name).any(), (node.name, name)
        for shim in node.shims:
            assert all(p.grad is None for p in shim._model.parameters())
    # the check can fail: without the discard, the first group's gradients are there
    calls.clear()
    monkeypatch.setattr(ner_module, "discard_gradients", lambda model: None)
    with pytest.warns(UserWarning, match="non-finite"):
        component.update(examples)
    assert any(p.grad is not None and p.grad.any() for node in component.model.walk() for shim in node.shims for p in shim._model.parameters())
    for node in component.model.walk():  # leave no gradient behind for what follows
        for shim in node.shims:
            shim._model.zero_grad(set_to_none=True)
    # a finite batch afterwards trains as usual
    monkeypatch.setattr(component, "_loss", real_loss)
    assert math.isfinite(component.update(make_examples(nlp))["rsft_ner"])
    assert component.guard.in_a_row == 0


def test_error_and_warning_codes_are_unique():
    """A repeated code silently replaces the earlier message (a class attribute)."""
    import re
    from pathlib import Path

    import spacy_rsft.errors as errors

    codes = re.findall(r"^    ([EW]\d{3}) = ", Path(errors.__file__).read_text(), flags=re.M)
    assert len(codes) == len(set(codes)), sorted({c for c in codes if codes.count(c) > 1})
