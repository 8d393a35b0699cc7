"""Calibrated confidences: ECE, temperature scaling, and `calibrate` on both components."""
import numpy
import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training import Example
from thinc.api import fix_random_seed

from spacy_rsft.calibration import (
    entity_bce, entity_confidence, entity_confidences, expected_calibration_error, fit_temperature, link_nll,
    log_softmax, reliability_bins,
)
from spacy_rsft.cli.calibrate import calibrate_pipeline
from spacy_rsft.scorers import score_links, score_ner
from util import make_examples, make_tiny_ner_nlp, noisy_ner_data


def test_ece_by_hand():
    assert expected_calibration_error([0.9] * 10, [True] * 9 + [False]) == pytest.approx(0.0)
    assert expected_calibration_error([1.0] * 4, [True, False, True, False]) == pytest.approx(0.5)
    # two bins: 0.2 said, 0% right (gap 0.2, 2 of 4); 0.8 said, 100% right (gap 0.2)
    assert expected_calibration_error([0.2, 0.2, 0.8, 0.8], [False, False, True, True]) == pytest.approx(0.2)
    assert expected_calibration_error([], []) == 0.0
    bins = reliability_bins([0.05, 0.95, 0.95], [False, True, False])
    assert [(b["count"], b["accuracy"]) for b in bins] == [(1, 0.0), (2, 0.5)]


def test_temperature_fit_recovers_the_true_temperature():
    rng = numpy.random.default_rng(0)
    true_t = 2.5
    outcomes = []
    for _ in range(3000):
        raw = rng.normal(0, 3, size=5)
        gold = int(rng.choice(5, p=numpy.exp(log_softmax(raw / true_t))))
        outcomes.append((raw, gold))
    fitted = fit_temperature(lambda t: link_nll(outcomes, t))
    assert fitted == pytest.approx(true_t, rel=0.1)
    assert link_nll(outcomes, fitted) < link_nll(outcomes, 1.0)


def test_entity_confidence_temperature():
    log_probs = log_softmax(numpy.asarray([[2.0, 0.0, 0.0], [3.0, 1.0, 0.0]]))
    tags = numpy.asarray([0, 0])
    sharp, plain, soft = (entity_confidence(log_probs, tags, t) for t in (0.5, 1.0, 2.0))
    assert plain == pytest.approx(float(numpy.exp(log_probs[[0, 1], [0, 0]].sum())))
    assert sharp > plain > soft
    # an overconfident set (all confidences high, half wrong) is fitted with T > 1
    outcomes = [(log_probs, tags, i % 2 == 0) for i in range(10)]
    assert fit_temperature(lambda t: entity_bce(outcomes, t)) > 1.0


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_entity_confidences_of_a_doc_equal_each_entitys(temperature):
    rng = numpy.random.default_rng(1)
    log_probs = log_softmax(rng.normal(0, 3, size=(40, 9))).astype("float32")
    tags = rng.integers(0, 9, size=40)
    spans = [(0, 1), (3, 7), (7, 8), (20, 40)]
    together = entity_confidences(log_probs, tags, spans, temperature)
    one_by_one = [entity_confidence(log_probs[b:e], tags[b:e], temperature) for b, e in spans]
    assert together.dtype == numpy.float32
    numpy.testing.assert_allclose(together, one_by_one, rtol=1e-5)
    assert entity_confidences(log_probs, tags, [], temperature).shape == (0,)


@pytest.fixture(scope="module")
def noisy_ner(tiny_bert):
    """rsft_ner fit on template sentences where half the labels are wrong: overconfident."""
    fix_random_seed(0)
    nlp = make_tiny_ner_nlp(tiny_bert)
    data, _ = noisy_ner_data(24)
    examples = make_examples(nlp, data)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(15):
        nlp.update(examples, sgd=optimizer)
    return nlp


def test_ner_calibrate_changes_confidences_not_entities(noisy_ner, tmp_path):
    nlp = noisy_ner
    clean, _ = noisy_ner_data(24, seed=1)
    heldout = [Example(nlp.make_doc(text), eg.reference) for (text, _), eg in zip(clean, make_examples(nlp, clean))]
    ner = nlp.get_pipe("rsft_ner")
    texts = [text for text, _ in clean]
    before = [(d.ents, list(d.spans["rsft_ner"].attrs["scores"])) for d in nlp.pipe(texts)]
    outcomes = ner.calibration_outcomes(heldout)
    assert len(outcomes) == sum(len(ents) for ents, _ in before)
    result = ner.calibrate(heldout)
    assert ner.cfg["temperature"] == pytest.approx(result["temperature"]) and result["temperature"] != 1.0
    assert entity_bce(outcomes, result["temperature"]) <= entity_bce(outcomes, 1.0)
    after = [(d.ents, list(d.spans["rsft_ner"].attrs["scores"])) for d in nlp.pipe(texts)]
    assert [[(e.start, e.end, e.label_) for e in a] for a, _ in after] == [[(e.start, e.end, e.label_) for e in b] for b, _ in before]
    assert [s for _, s in after] != [s for _, s in before]
    # the scorer reports the ECE of the confidences in the span group
    scores = score_ner([Example(d, eg.reference) for d, eg in zip(nlp.pipe(texts), heldout)], spans_key="rsft_ner")
    assert 0.0 <= scores["ents_ece"] <= 1.0
    # saved and loaded with the pipeline
    nlp.to_disk(tmp_path / "ner")
    assert spacy.load(tmp_path / "ner").get_pipe("rsft_ner").cfg["temperature"] == pytest.approx(result["temperature"])
    ner.cfg["temperature"] = 1.0


def test_linker_calibrate(tiny_bert, tmp_path, monkeypatch):
    from spacy_rsft.kb.builder import build_kb
    from test_entity_linker import ALIASES, ENTITIES, make_el_nlp, write_jsonl
    from test_entity_linker import make_examples as el_examples

    build_kb(write_jsonl(tmp_path / "e.jsonl", ENTITIES), write_jsonl(tmp_path / "a.jsonl", ALIASES), tmp_path / "kb", tiny_bert, progress=False)
    fix_random_seed(0)
    nlp = make_el_nlp(tiny_bert, tmp_path / "kb")
    optimizer = nlp.create_optimizer()
    optimizer.learn_rate = 0.005
    for _ in range(8):
        nlp.update(el_examples(nlp), sgd=optimizer)
    el = nlp.get_pipe("rsft_entity_linker")
    heldout = el_examples(nlp)
    outcomes = el.calibration_outcomes(heldout)
    # Jorvik has no candidates: NIL at any temperature, so it is left out
    assert len(outcomes) == 3 and el.skipped_mentions == 0
    result = el.calibrate(heldout)
    assert result["mentions"] == 3 and el.cfg["temperature"] == pytest.approx(result["temperature"])
    assert link_nll(outcomes, result["temperature"]) <= link_nll(outcomes, 1.0) + 1e-9
    docs = [eg.reference.copy() for eg in heldout]
    for doc in docs:
        for token in doc:
            token.ent_kb_id_ = ""
    linked = list(el.pipe(docs))
    scores = score_links([Example(d, eg.reference) for d, eg in zip(linked, heldout)])
    assert 0.0 <= scores["nel_ece"] <= 1.0
    # the command: fit, write, and refuse what it cannot use
    DocBin(docs=[eg.reference for eg in heldout]).to_disk(tmp_path / "heldout.spacy")
    nlp.to_disk(tmp_path / "in")
    results = calibrate_pipeline(tmp_path / "in", tmp_path / "heldout.spacy", tmp_path / "out")
    assert spacy.load(tmp_path / "out").get_pipe("rsft_entity_linker").cfg["temperature"] == pytest.approx(results["rsft_entity_linker"]["temperature"])
    # the chosen threshold is written to the saved config (forced here: the toy data's best is None)
    from spacy_rsft.pipeline.entity_linker import RsftEntityLinker

    calibrate = RsftEntityLinker.calibrate

    def forced(self, examples, choose_threshold=False):
        result = calibrate(self, examples, choose_threshold=choose_threshold)
        self.threshold = result["threshold"] = 0.42
        return result

    monkeypatch.setattr(RsftEntityLinker, "calibrate", forced)
    chosen = calibrate_pipeline(tmp_path / "in", tmp_path / "heldout.spacy", tmp_path / "thr", choose_threshold=True)
    monkeypatch.undo()
    threshold = chosen["rsft_entity_linker"]["threshold"]
    assert threshold == 0.42
    assert spacy.load(tmp_path / "thr").get_pipe("rsft_entity_linker").threshold == threshold
    assert spacy.load(tmp_path / "thr").config["components"]["rsft_entity_linker"]["threshold"] == threshold
    (tmp_path / "bad.spacy").write_bytes(b"not a docbin")
    with pytest.raises(ValueError, match=r"E332.*bad.spacy"):
        calibrate_pipeline(tmp_path / "in", tmp_path / "bad.spacy", tmp_path / "out2")
    with pytest.raises(ValueError, match=r"E331.*nope"):
        calibrate_pipeline(tmp_path / "in", tmp_path / "heldout.spacy", tmp_path / "out2", ["nope"])
    assert not (tmp_path / "out2").exists()


def test_threshold_choice_maximizes_heldout_micro_f():
    from spacy_rsft.pipeline.entity_linker import link_micro_f

    # three mentions: a confident right link, an unsure wrong link (gold NIL), and an unsure
    # link whose gold entity is not a candidate: a threshold between the two wins
    outcomes = [(numpy.asarray([4.0, 0.0, 0.0]), 0), (numpy.asarray([1.0, 0.0, 0.8]), 2),
                (numpy.asarray([1.0, 0.5, 0.6]), -1)]
    f = {t: link_micro_f(outcomes, 1.0, t) for t in (None, 0.5, 0.99)}
    assert f[None] == pytest.approx(2 / 5)  # tp 1, fp 2, fn 1
    assert f[0.5] == pytest.approx(2 / 3)  # tp 1, fp 0, fn 1
    assert f[0.99] == 0.0
