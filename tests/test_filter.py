"""`python -m spacy_rsft filter`: score a training set with a trained pipeline, mask the
likely mislabeled sentences, write the rest ("filter, then retrain")."""
import json
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.tokens import Doc, DocBin, Span
from typer.testing import CliRunner

from spacy_rsft.cli import app
from spacy_rsft.cli.filter import filter_corpus, filter_docs, masked_docs, top_share

from test_units import missing_entity_docs, units_config


def two_sentence_doc(vocab):
    doc = Doc(vocab, words=["Anna", "visited", "Oslo", ".", "Tom", "left", "Rome", "."],
              sent_starts=[True, False, False, False, True, False, False, False])
    doc.set_ents([Span(doc, 0, 1, label="PER"), Span(doc, 6, 7, label="LOC")], default="outside")
    return doc


def plant_losses(monkeypatch, per_doc):
    """fresh_losses returns the given token losses instead of running a model."""
    from spacy_rsft.sampling import scoring

    monkeypatch.setattr(scoring, "fresh_losses", lambda nlp, examples, batch_size, per_token: per_doc)


def test_sentences_are_ranked_by_their_counted_tokens_and_masked_in_place(monkeypatch):
    nlp = spacy.blank("en")
    docs = [two_sentence_doc(nlp.vocab) for _ in range(4)]
    # doc 1's second sentence has a high loss on an outside token ("left": a missed entity);
    # doc 2's first sentence a high loss inside its entity ("Anna"), which "outside" ignores
    losses = [numpy.full((8,), 0.01, dtype="float32") for _ in docs]
    losses[1][5] = 4.0
    losses[2][0] = 9.0
    plant_losses(monkeypatch, losses)
    result = filter_docs(nlp, docs, loss_tokens="outside", rate="0.125")
    assert result.summary() == {"units": 8, "scored": 8, "rate": 0.125, "rejected": 1}
    assert numpy.flatnonzero(result.rejected).tolist() == [3]  # doc 1, sentence 2
    assert result.losses[3] == pytest.approx(4.0) and result.losses[4] == pytest.approx(0.01)
    out = masked_docs(docs, result)
    assert [t.ent_iob_ for t in out[1]] == ["B", "O", "O", "O", "", "", "", ""]
    assert [(e.text, e.label_) for e in out[1].ents] == [("Anna", "PER")]
    assert out[0] is docs[0] and [t.ent_iob_ for t in docs[1]][4:] == ["O", "O", "B", "O"]  # input untouched
    assert "rsft_unmasked_reference" not in out[1].user_data
    # over all tokens, the entity's loss counts too
    result = filter_docs(nlp, docs, loss_tokens="all", rate="0.125")
    assert numpy.flatnonzero(result.rejected).tolist() == [4]


def test_top_share_leaves_unscored_units_alone():
    losses = numpy.asarray([0.1, numpy.nan, 3.0, 2.0, numpy.nan])
    assert top_share(losses, 0.0).tolist() == [False] * 5
    assert top_share(losses, 0.34).tolist() == [False, False, True, False, False]
    assert top_share(losses, 0.99).tolist() == [True, False, True, True, False]


def test_the_mixture_rate_finds_a_separate_high_loss_group(monkeypatch):
    nlp = spacy.blank("en")
    docs = [two_sentence_doc(nlp.vocab) for _ in range(100)]
    rng = numpy.random.default_rng(0)
    losses = [rng.uniform(0.001, 0.01, size=8).astype("float32") for _ in docs]
    for d in range(0, 100, 5):  # a fifth of the docs: a missed entity in the second sentence
        losses[d][5] = rng.uniform(3.0, 6.0)
    plant_losses(monkeypatch, losses)
    result = filter_docs(nlp, docs, rate="mixture")
    assert result.rejected.sum() == 20
    assert numpy.flatnonzero(result.rejected).tolist() == [2 * d + 1 for d in range(0, 100, 5)]


def test_the_random_control_rejects_as_many_scored_units_blindly(monkeypatch):
    nlp = spacy.blank("en")
    docs = [two_sentence_doc(nlp.vocab) for _ in range(200)]
    losses = [numpy.full((8,), 0.01, dtype="float32") for _ in docs]
    for d in range(20):
        losses[d][5] = 5.0
    losses[150][:] = numpy.nan  # doc 150 unscored: never chosen
    plant_losses(monkeypatch, losses)
    noisy = [2 * d + 1 for d in range(20)]
    by_loss = filter_docs(nlp, docs, rate="0.05")
    assert numpy.flatnonzero(by_loss.rejected).tolist() == noisy
    draws = [filter_docs(nlp, docs, rate="0.05", choose="random", seed=seed).rejected for seed in (0, 0, 1, 2, 3, 4)]
    assert all(d.sum() == 20 for d in draws)
    assert (draws[0] == draws[1]).all() and not (draws[0] == draws[2]).all()
    assert not any(d[300:302].any() for d in draws)
    hits = sum(int(d[noisy].sum()) for d in draws[1:])
    assert hits < 25, hits  # by loss: 100 of the 100; blind: about 5 * 20 * 20 / 398 = 5


@pytest.mark.parametrize("option,value", [("--rate", "half"), ("--rate", "1.0"), ("--unit", "span"),
                                          ("--unit-loss", "sum"), ("--loss-tokens", "inside"),
                                          ("--choose", "worst")])
def test_bad_settings_are_refused_before_loading_anything(tmp_path, option, value):
    (tmp_path / "model").mkdir()
    (tmp_path / "train.spacy").write_bytes(b"")
    result = CliRunner().invoke(app, ["filter", str(tmp_path / "model"), str(tmp_path / "train.spacy"),
                                      str(tmp_path / "out.spacy"), option, value])
    assert result.exit_code == 1
    assert f"[filter] {option}" in result.output and repr(value) in result.output
    assert not (tmp_path / "out.spacy").exists()


def test_a_bad_corpus_or_a_model_without_token_losses_is_named(tmp_path):
    nlp = spacy.blank("en")
    nlp.to_disk(tmp_path / "blank")
    (tmp_path / "broken.spacy").write_bytes(b"not a docbin")
    with pytest.raises(ValueError, match=r"\[filter\] Could not read the training DocBin .*broken.spacy"):
        filter_corpus(tmp_path / "blank", tmp_path / "broken.spacy", tmp_path / "out.spacy")
    DocBin(docs=[Doc(nlp.vocab, words=["no", "entities"])]).to_disk(tmp_path / "plain.spacy")
    with pytest.raises(ValueError, match="no docs with entity annotation"):
        filter_corpus(tmp_path / "blank", tmp_path / "plain.spacy", tmp_path / "out.spacy")
    DocBin(docs=[two_sentence_doc(nlp.vocab)]).to_disk(tmp_path / "train.spacy")
    with pytest.raises(ValueError, match=r"scored no token .* rsft_ner"):
        filter_corpus(tmp_path / "blank", tmp_path / "train.spacy", tmp_path / "out.spacy")
    assert not (tmp_path / "out.spacy").exists()


def test_a_trained_model_filters_out_the_sentences_whose_labels_miss_entities(tmp_path, tiny_bert):
    """Trained uniform on docs where every odd sentence's labels miss all its entities, the
    model scores those sentences' "O" names high: the filter rejects mostly them, and what it
    writes trains (the masked sentences lose their annotation, the rest keep theirs)."""
    from spacy.cli.train import train

    docs, missing = missing_entity_docs()
    train_path = tmp_path / "train.spacy"
    DocBin(docs=docs).to_disk(train_path)
    config = units_config(tmp_path, tiny_bert, train_path, {"target": "uniform", "seed": 1})
    train(config, tmp_path / "out")
    report = tmp_path / "report.jsonl"
    result = CliRunner().invoke(app, ["filter", str(tmp_path / "out" / "model-last"), str(train_path),
                                      str(tmp_path / "filtered.spacy"), "--rate", "0.5", "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "Rejected 32 of 64 scored sentences" in result.output
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert len(lines) == 64 and sum(line["rejected"] for line in lines) == 32
    rejected = {i for i, line in enumerate(lines) if line["rejected"]}
    # chance is 16 of the 32 (half the sentences miss their entities)
    assert len(rejected & missing) >= 24, sorted(rejected)
    filtered = list(DocBin().from_disk(tmp_path / "filtered.spacy").get_docs(spacy.blank("en").vocab))
    assert [d.text for d in filtered] == [d.text for d in docs]
    for i, line in enumerate(lines):
        doc = filtered[line["doc"]]
        iobs = {t.ent_iob_ for t in doc[line["start"] : line["end"]]}
        assert (iobs == {""}) if i in rejected else ("" not in iobs), (i, iobs)
    train(units_config(tmp_path, tiny_bert, tmp_path / "filtered.spacy", {"target": "uniform"}, max_steps=10),
          tmp_path / "retrained")
    assert (tmp_path / "retrained" / "model-last").exists()


# cross-fitting: each doc scored by a model that did not train on it


def test_folds_hold_every_doc_once_and_each_train_file_leaves_its_fold_out(tmp_path):
    from spacy_rsft.cli.filter import split_folds

    folds = split_folds(11, 3, seed=4)
    assert sorted(i for fold in folds for i in fold) == list(range(11))
    assert sorted(len(f) for f in folds) == [3, 4, 4]
    assert split_folds(11, 3, seed=4) == folds and split_folds(11, 3, seed=5) != folds
    nlp = spacy.blank("en")
    docs = [two_sentence_doc(nlp.vocab) for _ in range(5)]
    for i, doc in enumerate(docs):
        doc.user_data["i"] = i  # DocBin keeps user_data: tells the docs apart
    DocBin(docs=docs, store_user_data=True).to_disk(tmp_path / "train.spacy")
    result = CliRunner().invoke(app, ["folds", str(tmp_path / "train.spacy"), str(tmp_path / "folds"), "-k", "2"])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "folds" / "folds.json").read_text())
    assert written["docs"] == 5 and sorted(sum(written["folds"], [])) == list(range(5))
    for f, fold in enumerate(written["folds"]):
        kept = [d.user_data["i"] for d in DocBin().from_disk(tmp_path / "folds" / f"train{f}.spacy").get_docs(nlp.vocab)]
        assert sorted(kept) == sorted(set(range(5)) - set(fold))
    refused = CliRunner().invoke(app, ["folds", str(tmp_path / "train.spacy"), str(tmp_path / "six"), "-k", "6"])
    assert refused.exit_code == 1 and "Cannot split 5 docs into 6 folds" in refused.output


def test_cross_fitted_filter_scores_each_doc_with_its_folds_model_and_decides_once(tmp_path, monkeypatch):
    """Each doc is scored by the model of its fold, and the rate and ranking run over all the
    losses together: a doc that is the worst of the corpus is rejected even if its fold's
    other docs are all clean."""
    from spacy_rsft.cli import filter as filter_module

    nlp = spacy.blank("en")
    docs = [two_sentence_doc(nlp.vocab) for _ in range(4)]
    DocBin(docs=docs).to_disk(tmp_path / "train.spacy")
    folds = [[0, 3], [1, 2]]
    (tmp_path / "folds.json").write_text(json.dumps({"folds": folds}))
    for f in range(2):
        (tmp_path / f"model{f}").mkdir()
    scored_by = {}

    def fake_load(path):
        model = spacy.blank("en")
        model.meta["name"] = Path(path).name
        return model

    def fake_score(model, references, batch_size=16):
        out = []
        for doc in references:
            i = len(scored_by)
            scored_by[i] = model.meta["name"]
            losses = numpy.full((len(doc),), 0.01, dtype="float32")
            if i == 3:  # the fourth doc scored: doc 2, in fold 1
                losses[5] = 5.0
            out.append(losses)
        return out

    monkeypatch.setattr(spacy, "load", fake_load)
    monkeypatch.setattr(filter_module, "score_tokens", fake_score)
    result = filter_corpus(str(tmp_path / "model{fold}"), tmp_path / "train.spacy", tmp_path / "out.spacy",
                           folds=tmp_path / "folds.json", rate="0.125")
    # docs 0 and 3 by model0, then 1 and 2 by model1
    assert [scored_by[i] for i in range(4)] == ["model0", "model0", "model1", "model1"]
    assert numpy.flatnonzero(result.rejected).tolist() == [5]  # doc 2's second sentence
    out = list(DocBin().from_disk(tmp_path / "out.spacy").get_docs(nlp.vocab))
    assert {t.ent_iob_ for t in out[2][4:8]} == {""} and "" not in {t.ent_iob_ for t in out[1]}


def test_cross_fitting_names_a_bad_template_missing_model_or_folds_file(tmp_path):
    nlp = spacy.blank("en")
    docs = [two_sentence_doc(nlp.vocab) for _ in range(3)]
    DocBin(docs=docs).to_disk(tmp_path / "train.spacy")
    (tmp_path / "folds.json").write_text(json.dumps({"folds": [[0], [1]]}))  # doc 2 in no fold
    args = [str(tmp_path / "train.spacy"), str(tmp_path / "out.spacy"), "--folds", str(tmp_path / "folds.json")]
    no_template = CliRunner().invoke(app, ["filter", str(tmp_path), *args])
    assert no_template.exit_code == 1 and "must hold {fold}" in no_template.output
    no_model = CliRunner().invoke(app, ["filter", str(tmp_path / "model{fold}"), *args])
    assert no_model.exit_code == 1 and "the model of fold 0" in no_model.output
    for f in range(2):
        (tmp_path / f"model{f}").mkdir()
    bad_folds = CliRunner().invoke(app, ["filter", str(tmp_path / "model{fold}"), *args])
    assert bad_folds.exit_code == 1 and "not each of the corpus's 3 docs once" in bad_folds.output
    assert not (tmp_path / "out.spacy").exists()


def test_models_that_never_saw_a_sentence_find_its_missing_entities(tmp_path, tiny_bert):
    """Cross-fitted end to end: two folds of the docs whose odd sentences miss their entities,
    a model trained on each, and `filter --folds` finds the noisy sentences of every doc."""
    from spacy.cli.train import train

    docs, missing = missing_entity_docs()
    train_path = tmp_path / "train.spacy"
    DocBin(docs=docs).to_disk(train_path)
    runner = CliRunner()
    assert runner.invoke(app, ["folds", str(train_path), str(tmp_path / "folds")]).exit_code == 0
    for f in range(2):
        fold_train = tmp_path / "folds" / f"train{f}.spacy"
        train(units_config(tmp_path, tiny_bert, fold_train, {"target": "uniform", "seed": 1}), tmp_path / f"model{f}")
    report = tmp_path / "report.jsonl"
    result = runner.invoke(app, ["filter", str(tmp_path / "model{fold}" / "model-last"), str(train_path),
                                 str(tmp_path / "filtered.spacy"), "--folds", str(tmp_path / "folds" / "folds.json"),
                                 "--rate", "0.5", "--report", str(report)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    # the report's units are in corpus order, whichever fold scored them
    assert [(line["doc"], line["start"]) for line in lines] == sorted((line["doc"], line["start"]) for line in lines)
    rejected = {i for i, line in enumerate(lines) if line["rejected"]}
    assert len(rejected) == 32
    assert len(rejected & missing) >= 24, sorted(rejected)  # chance: 16
