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
from spacy_rsft.cli.filter import (
    conformal_rejections, conformal_threshold, filter_corpus, filter_docs, masked_docs, report_lines, top_share,
)

from test_units import missing_entity_docs, sentence_docs, units_config
from util import noisy_ner_data


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


def test_the_token_pass_masks_per_label_the_kept_o_tokens_likeliest_to_be_it(monkeypatch):
    nlp = spacy.blank("en")
    docs = [two_sentence_doc(nlp.vocab) for _ in range(4)]
    losses = [numpy.full((8,), 0.01, dtype="float32") for _ in docs]
    losses[1][5] = 4.0  # the sentence the unit pass rejects: "Tom left Rome ."
    plant_losses(monkeypatch, losses)
    # label probabilities (LOC, PER) per token; the kept units hold 21 "O" tokens, so a share
    # of 0.05 takes the top one per label
    probs = [numpy.full((8, 2), 0.001) for _ in docs]
    probs[2][2, 0] = 0.3  # "Oslo" as LOC: the top LOC
    probs[3][4, 1] = 0.05  # "Tom" as PER: the top PER, though far from likely
    probs[1][4, 1] = 0.9  # in the rejected sentence: masked with it already
    probs[0][0, 1] = 0.99  # "Anna" is labelled PER: not an "O" token
    result = filter_docs(nlp, docs, rate="0.125", mask_outside_top=0.05, label_probs=probs)
    assert numpy.flatnonzero(result.rejected).tolist() == [3]
    assert [numpy.flatnonzero(m).tolist() for m in result.masked_tokens] == [[], [], [2], [4]]
    assert result.summary()["tokens_masked"] == 2
    out = masked_docs(docs, result)
    assert [t.ent_iob_ for t in out[2]] == ["B", "O", "", "O", "O", "O", "B", "O"]
    assert [(e.text, e.label_) for e in out[3].ents] == [("Anna", "PER"), ("Rome", "LOC")]
    assert out[0] is docs[0]
    lines = report_lines(docs, result)
    assert [line["masked_tokens"] for line in lines] == [[], [], [], [], [2], [], [], [4]]
    # a larger share takes two per label: the second of each is the same token (tied, first in
    # order), masked once; the control masks as many kept "O" tokens blindly
    wider = filter_docs(nlp, docs, rate="0.125", mask_outside_top=0.1, label_probs=probs)
    assert [numpy.flatnonzero(m).tolist() for m in wider.masked_tokens] == [[1], [], [2], [4]]
    outside = numpy.concatenate([[t.ent_iob_ == "O" for t in d] for d in docs]).astype(bool)
    for seed in range(20):
        blind = filter_docs(nlp, docs, rate="0.125", mask_outside_top=0.05, mask_outside_choose="random",
                            label_probs=probs, seed=seed)
        assert blind.summary()["tokens_masked"] == 2 and blind.rejected.tolist() == result.rejected.tolist()
        masked = numpy.concatenate(blind.masked_tokens)
        assert not (masked & ~outside).any() and not masked[8 + 4 : 8 + 8].any()  # never doc 1's rejected half
    # the stacked system's control chooses its sentences at random too, and masks as many tokens
    both = filter_docs(nlp, docs, rate="0.125", choose="random", mask_outside_top=0.05, mask_outside_choose="random",
                       label_probs=probs, seed=3)
    assert both.rejected.sum() == 1 and both.summary()["tokens_masked"] == 2
    # without the pass, nothing of it shows
    assert "tokens_masked" not in filter_docs(nlp, docs, rate="0.125").summary()
    assert "masked_tokens" not in report_lines(docs, filter_docs(nlp, docs, rate="0.125"))[0]


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


def test_conformal_rejection_counts_the_held_out_losses_at_or_above():
    held_out = numpy.arange(1.0, 10.0)  # 1 ... 9: n = 9
    losses = numpy.asarray([9.5, 8.5, 8.0, 7.5, 0.5, numpy.nan])
    # alpha 0.2: p = (1 + #{held out >= loss}) / 10 <= 0.2 allows one held-out loss at or above
    rejected, threshold = conformal_rejections(losses, held_out, 0.2)
    assert threshold == 8.0 and rejected.tolist() == [True, True, False, False, False, False]
    assert conformal_rejections(losses, held_out, 0.1)[0].tolist() == [True] + [False] * 5
    # with nine held-out units no p-value gets to 0.05 (the least is 1/10): refused, not
    # "nothing rejected" in silence
    with pytest.raises(ValueError, match="has 9 scored held-out units.*fewer than 19"):
        conformal_rejections(losses, held_out, 0.05)
    with pytest.raises(ValueError, match="gave no held-out unit a loss"):
        conformal_rejections(losses, numpy.asarray([numpy.nan]), 0.1)


def test_the_conformal_threshold_is_exact_where_alpha_times_n_plus_one_is_whole():
    """0.29 * 100 is 28.999... in floating point: the threshold must still allow 28 held-out
    losses at or above a rejected loss (p = 29/100 <= 0.29), not 27."""
    held_out = numpy.arange(1.0, 100.0)  # n = 99
    threshold = conformal_threshold(held_out, 0.29)
    assert threshold == 71.0  # 72 ... 99 are the 28 above it
    rejected, _ = conformal_rejections(numpy.asarray([71.5, 71.0]), held_out, 0.29)
    assert rejected.tolist() == [True, False]  # p = 29/100 and 30/100


@pytest.mark.parametrize("noise", [0.1, 0.4])
def test_the_held_out_rate_follows_the_noise_and_keeps_clean_rejections_near_alpha(monkeypatch, noise):
    """Clean units' losses come from the held-out units' distribution: about alpha of them are
    rejected whatever the noise rate, and the noisy ones (a high-loss group) nearly all."""
    nlp = spacy.blank("en")
    rng = numpy.random.default_rng(1)
    docs = [two_sentence_doc(nlp.vocab) for _ in range(500)]
    noisy = rng.random(500) < noise  # each doc's second sentence misses an entity
    losses = [numpy.exp(rng.normal(-4.0, 1.0, size=8)).astype("float32") for _ in docs]
    for d in numpy.flatnonzero(noisy):
        losses[d][5] = numpy.exp(rng.normal(1.0, 0.5))
    # a sentence's loss: the max over its 3 outside tokens (the 4th is an entity)
    held_out = numpy.exp(rng.normal(-4.0, 1.0, size=(2000, 3)).max(axis=1))
    plant_losses(monkeypatch, losses)
    result = filter_docs(nlp, docs, rate="heldout", heldout_losses=held_out, alpha=0.1)
    second = numpy.arange(1, 1000, 2)
    clean_units = numpy.concatenate([numpy.arange(0, 1000, 2), second[~noisy]])
    assert result.rejected[second[noisy]].mean() > 0.95
    assert 0.07 < result.rejected[clean_units].mean() < 0.14
    assert result.rate == pytest.approx(result.rejected.sum() / 1000)
    assert result.summary()["thresholds"] == pytest.approx(result.thresholds, abs=1e-5)


def test_the_held_out_rate_needs_a_held_out_set_and_only_it_reads_one(tmp_path):
    nlp = spacy.blank("en")
    nlp.to_disk(tmp_path / "blank")
    DocBin(docs=[two_sentence_doc(nlp.vocab)]).to_disk(tmp_path / "train.spacy")
    args = ["filter", str(tmp_path / "blank"), str(tmp_path / "train.spacy"), str(tmp_path / "out.spacy")]
    without = CliRunner().invoke(app, [*args, "--rate", "heldout"])
    assert without.exit_code == 1 and "--rate heldout needs --heldout" in without.output
    unused = CliRunner().invoke(app, [*args, "--heldout", str(tmp_path / "train.spacy")])
    assert unused.exit_code == 1 and "--heldout is read only with --rate heldout (got --rate mixture)" in unused.output
    alpha_alone = CliRunner().invoke(app, [*args, "--rate", "0.2", "--alpha", "0.05"])
    assert alpha_alone.exit_code == 1 and "--alpha is read only with --rate heldout (got --rate 0.2)" in alpha_alone.output
    bad_alpha = CliRunner().invoke(app, [*args, "--rate", "heldout", "--heldout", str(tmp_path / "train.spacy"),
                                         "--alpha", "1.5"])
    assert bad_alpha.exit_code == 1 and "--alpha = 1.5" in bad_alpha.output
    (tmp_path / "broken.spacy").write_bytes(b"not a docbin")
    with pytest.raises(ValueError, match=r"Could not read the held-out DocBin .*broken.spacy"):
        filter_corpus(tmp_path / "blank", tmp_path / "train.spacy", tmp_path / "out.spacy",
                      heldout=tmp_path / "broken.spacy", rate="heldout")
    assert not (tmp_path / "out.spacy").exists()


@pytest.mark.parametrize("option,value", [("--rate", "half"), ("--rate", "1.0"), ("--unit", "span"),
                                          ("--unit-loss", "sum"), ("--loss-tokens", "inside"),
                                          ("--choose", "worst"), ("--mask-outside-top", "1.5"),
                                          ("--mask-outside-choose", "worst"), ("--mask-outside-choose", "random")])
def test_bad_settings_are_refused_before_loading_anything(tmp_path, option, value):
    (tmp_path / "model").mkdir()
    (tmp_path / "train.spacy").write_bytes(b"")
    result = CliRunner().invoke(app, ["filter", str(tmp_path / "model"), str(tmp_path / "train.spacy"),
                                      str(tmp_path / "out.spacy"), option, value])
    assert result.exit_code == 1
    assert f"[filter] {option}" in result.output and value in result.output
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
    # the token pass: at a lower rate the kept sentences still hold sentences with "O" names;
    # per label, the kept "O" tokens the model finds likeliest to be it are mostly those names
    clean = sentence_docs(noisy_ner_data(64, seed=0)[0], spacy.blank("en").vocab)
    result = CliRunner().invoke(app, ["filter", str(tmp_path / "out" / "model-last"), str(train_path),
                                      str(tmp_path / "tokens.spacy"), "--rate", "0.25", "--mask-outside-top", "0.05",
                                      "--report", str(report)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    masked = [(line["doc"], t) for line in lines for t in line["masked_tokens"]]
    kept_o = [(line["doc"], t) for line in lines if not line["rejected"] for t in range(line["start"], line["end"])
              if docs[line["doc"]][t].ent_iob_ == "O"]
    assert masked and set(masked) <= set(kept_o) and f"masked {len(masked)} O tokens" in result.output
    names = {(d, t) for d, t in kept_o if clean[d][t].ent_type_}
    # chance is the share of names among the kept "O" tokens
    assert len(names & set(masked)) / len(masked) >= 2 * len(names) / len(kept_o), (len(names & set(masked)), len(masked), len(names), len(kept_o))
    tokens = list(DocBin().from_disk(tmp_path / "tokens.spacy").get_docs(spacy.blank("en").vocab))
    assert all(tokens[d][t].ent_iob_ == "" for d, t in masked)


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


def test_the_cross_fitted_token_pass_reads_each_docs_label_probabilities_from_its_folds_model(tmp_path, monkeypatch):
    """With --folds, the token pass ranks the label probabilities of each doc's own fold model,
    over all docs at once; fold models that disagree on their labels are refused, by name."""
    from spacy_rsft.cli import filter as filter_module

    nlp = spacy.blank("en")
    docs = [two_sentence_doc(nlp.vocab) for _ in range(4)]
    DocBin(docs=docs).to_disk(tmp_path / "train.spacy")
    (tmp_path / "folds.json").write_text(json.dumps({"folds": [[0, 3], [1, 2]]}))
    for f in range(2):
        (tmp_path / f"model{f}").mkdir()

    loads = []

    def fake_load(path):
        loads.append(Path(path).name)
        model = spacy.blank("en")
        model.meta["name"] = Path(path).name
        return model

    labels = {"model0": ["LOC", "PER"], "model1": ["LOC", "PER"]}

    def fake_probs(model, references, batch_size=16):
        # model1 finds "visited" (token 1) likeliest a PER in its docs; model0 nothing
        out = [numpy.full((len(doc), 2), 0.001) for doc in references]
        if model.meta["name"] == "model1":
            out[1][1, 1] = 0.2  # the second doc of fold 1: doc 2
        return out, labels[model.meta["name"]]

    monkeypatch.setattr(spacy, "load", fake_load)
    monkeypatch.setattr(filter_module, "score_tokens", lambda model, refs, batch_size=16: [
        numpy.full((len(d),), 0.01, dtype="float32") for d in refs])
    monkeypatch.setattr(filter_module, "predict_label_probs", fake_probs)
    # 24 kept O tokens (nothing rejected at rate 0): 0.04 of them is the top one per label
    result = filter_corpus(str(tmp_path / "model{fold}"), tmp_path / "train.spacy", tmp_path / "out.spacy",
                           folds=tmp_path / "folds.json", rate="0", mask_outside_top=0.04)
    assert numpy.flatnonzero(result.masked_tokens[2]).tolist() == [1]
    assert loads == ["model0", "model1"]  # each fold model loaded once for losses and probabilities
    out = list(DocBin().from_disk(tmp_path / "out.spacy").get_docs(nlp.vocab))
    assert out[2][1].ent_iob_ == "" and [t.ent_iob_ for t in out[2]].count("") == 1
    labels["model1"] = ["LOC", "ORG", "PER"]
    with pytest.raises(ValueError, match=r"fold 1's are \['LOC', 'ORG', 'PER'\]"):
        filter_corpus(str(tmp_path / "model{fold}"), tmp_path / "train.spacy", tmp_path / "out2.spacy",
                      folds=tmp_path / "folds.json", rate="0", mask_outside_top=0.04)
    assert not (tmp_path / "out2.spacy").exists()


def test_the_cross_fitted_held_out_rate_compares_each_doc_with_its_own_fold_models_null(tmp_path, monkeypatch):
    """Every fold model scores every held-out doc (none trained on them), and each training
    unit is judged against the held-out losses of the model that scored it: fold model 1's
    losses run higher, so a loss that is unusual for fold model 0 is ordinary for it (a
    pooled null would judge both units alike). The held-out set is scored, and a bad one
    refused, before the training set is."""
    from spacy_rsft.cli import filter as filter_module

    nlp = spacy.blank("en")
    DocBin(docs=[two_sentence_doc(nlp.vocab) for _ in range(4)]).to_disk(tmp_path / "train.spacy")
    (tmp_path / "folds.json").write_text(json.dumps({"folds": [[0, 3], [1, 2]]}))
    dev = Doc(nlp.vocab, words=["Kim", "saw", "Bergen", ".", "Lee", "met", "Ivo", "."],
              sent_starts=[True, False, False, False, True, False, False, False])
    dev.set_ents([Span(dev, 0, 1, label="PER"), Span(dev, 6, 7, label="PER")], default="outside")
    DocBin(docs=[dev]).to_disk(tmp_path / "dev.spacy")
    for f in range(2):
        (tmp_path / f"model{f}").mkdir()
    scored = []
    fold_docs = {"model0": [0, 3], "model1": [1, 2]}  # what each fold model scores, in order
    # the loss of "left" (the second sentence's outside token) per (model, training doc);
    # every other token 0.01. Held-out docs (first word "Kim") get the model's scale on every
    # token: 0.01 under model0, 1.0 under model1
    planted = {("model0", 0): 0.5, ("model1", 1): 0.5, ("model1", 2): 5.0}

    def fake_load(path):
        model = spacy.blank("en")
        model.meta["name"] = Path(path).name
        return model

    def fake_score(model, references, batch_size=16):
        name, out = model.meta["name"], []
        for position, doc in enumerate(references):
            held_out = doc[0].text == "Kim"
            scored.append((name, "dev" if held_out else "train"))
            losses = numpy.full((len(doc),), 0.01, dtype="float32")
            if held_out:
                losses[:] = 0.01 if name == "model0" else 1.0
            else:
                losses[5] = planted.get((name, fold_docs[name][position]), 0.01)
            out.append(losses)
        return out

    monkeypatch.setattr(spacy, "load", fake_load)
    monkeypatch.setattr(filter_module, "score_tokens", fake_score)
    (tmp_path / "broken.spacy").write_bytes(b"not a docbin")
    with pytest.raises(ValueError, match=r"Could not read the held-out DocBin .*broken.spacy"):
        filter_corpus(str(tmp_path / "model{fold}"), tmp_path / "train.spacy", tmp_path / "out.spacy",
                      folds=tmp_path / "folds.json", rate="heldout", heldout=tmp_path / "broken.spacy", alpha=0.4)
    assert scored == []  # refused before any scoring
    result = filter_corpus(str(tmp_path / "model{fold}"), tmp_path / "train.spacy", tmp_path / "out.spacy",
                           folds=tmp_path / "folds.json", rate="heldout", heldout=tmp_path / "dev.spacy", alpha=0.4)
    assert scored == [("model0", "dev"), ("model1", "dev")] + [("model0", "train")] * 2 + [("model1", "train")] * 2
    # two held-out sentences per model: p = 1/3 <= 0.4 for a loss above both, so each model's
    # threshold is its own held-out loss
    assert result.thresholds == pytest.approx([0.01, 1.0])
    # doc 0's 0.5 (fold model 0) and doc 2's 5.0 go; doc 1's 0.5 (fold model 1) stays
    assert numpy.flatnonzero(result.rejected).tolist() == [1, 5]
    # with fewer held-out units than alpha allows, the command refuses (before the training set)
    scored.clear()
    with pytest.raises(ValueError, match=r"dev.spacy under fold model 0 has 2 scored held-out units"):
        filter_corpus(str(tmp_path / "model{fold}"), tmp_path / "train.spacy", tmp_path / "out.spacy",
                      folds=tmp_path / "folds.json", rate="heldout", heldout=tmp_path / "dev.spacy", alpha=0.1)
    assert ("model0", "train") not in scored


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
    # the rate from a carefully labelled held-out set instead of a fixed share: sentences
    # whose loss is unusual for labels that miss nothing
    DocBin(docs=clean_docs(nlp_vocab=spacy.blank("en").vocab, n_sentences=64)).to_disk(tmp_path / "dev.spacy")
    result = runner.invoke(app, ["filter", str(tmp_path / "model{fold}" / "model-last"), str(train_path),
                                 str(tmp_path / "by_dev.spacy"), "--folds", str(tmp_path / "folds" / "folds.json"),
                                 "--rate", "heldout", "--heldout", str(tmp_path / "dev.spacy"), "--alpha", "0.1",
                                 "--report", str(report)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    rejected = {i for i, line in enumerate(lines) if line["rejected"]}
    # seen here: 21 rejected, all of them noisy (chance: half); each fold model's threshold
    # comes from its own 64 held-out sentences
    assert len(rejected & missing) >= 16 and len(rejected - missing) <= 4, sorted(rejected)


def clean_docs(nlp_vocab, n_sentences: int = 32, seed: int = 7):
    """Docs of four template sentences each, every entity labelled (a careful dev set): the
    correctly labelled half of a fresh draw of the templates."""
    data, corrupted = noisy_ner_data(2 * n_sentences, seed=seed)
    return sentence_docs([example for i, example in enumerate(data) if i not in set(corrupted)], nlp_vocab)
