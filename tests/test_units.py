"""Rejection at finer units than the example: the unit table, unit losses, masking, and the
sampler's noise-rate form of `denoise`, its `random` control and grouped ranking."""
import numpy
import pytest
import spacy
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example

from spacy_rsft.pipeline.batching import padding_groups
from spacy_rsft.sampling.sampler import RejectionSampler, estimate_noise_rate, estimate_noise_rate_by_mixture
from spacy_rsft.pipeline.recording import reference_token_losses
from spacy_rsft.sampling.units import build_units, loss_token_mask, masked_example, unit_losses

WORDS = ["Anna", "met", "Tom", "in", "Oslo", ".", "Rain", "fell", "in", "Paris", "."]
SENT_STARTS = [True, False, False, False, False, False, True, False, False, False, False]
ENTS = ["B-PER", "O", "B-PER", "O", "B-LOC", "O", "O", "O", "O", "B-LOC", "O"]


@pytest.fixture
def doc():
    return Doc(spacy.blank("en").vocab, words=WORDS, sent_starts=SENT_STARTS, ents=ENTS)


def test_units_of_each_granularity(doc):
    examples = build_units([doc], "example")
    assert len(examples) == 1 and (examples.start[0], examples.end[0]) == (0, 11)
    assert examples.labels == [["LOC", "PER"]]
    sents = build_units([doc], "sentence")
    assert list(zip(sents.start, sents.end)) == [(0, 6), (6, 11)]
    assert sents.labels == [["LOC", "PER"], ["LOC"]]
    spans = build_units([doc, doc], "span")
    # 4 entities and 7 outside tokens per doc; entity and outside units told apart
    assert len(spans) == 22 and int(spans.entity.sum()) == 8
    assert [(s, e) for s, e, ent in zip(spans.start, spans.end, spans.entity) if ent][:3] == [(0, 1), (2, 3), (4, 5)]
    assert set(spans.example.tolist()) == {0, 1}


def test_outside_tokens_with_missing_annotation_are_no_units(doc):
    doc.set_ents([], missing=[doc[6:11]], default="unmodified")
    spans = build_units([doc], "span")
    assert all(end <= 6 for end in spans.end)


def test_unit_losses_are_token_means_and_keep_the_last_known(doc):
    table = build_units([doc], "sentence")
    tokens = numpy.asarray([1, 1, 1, 1, 1, 1, 0, 2, numpy.nan, 4, 0], dtype="float32")
    losses = unit_losses(table, {0: tokens}, numpy.full((2,), numpy.nan))
    assert losses.tolist() == [1.0, 1.5]
    masked = numpy.full((11,), numpy.nan, dtype="float32")
    masked[:6] = 3.0  # the second sentence was masked: it keeps its loss
    assert unit_losses(table, {0: masked}, losses).tolist() == [3.0, 1.5]


def test_unit_losses_pool_the_max_of_the_counted_tokens(doc):
    table = build_units([doc], "sentence")
    tokens = numpy.asarray([5, 1, 3, 1, 4, 1, 0, 2, numpy.nan, 9, 0], dtype="float32")
    previous = numpy.full((2,), numpy.nan)
    assert unit_losses(table, {0: tokens}, previous, pool="max").tolist() == [5.0, 9.0]
    outside = loss_token_mask(doc, "outside")
    assert outside.tolist() == [t.ent_iob_ == "O" for t in doc]
    # Anna, Tom, Oslo and Paris are gold entities: only the O tokens count
    assert unit_losses(table, {0: tokens}, previous, pool="max", counted={0: outside}).tolist() == [1.0, 2.0]
    assert unit_losses(table, {0: tokens}, previous, counted={0: ~outside}).tolist() == [4.0, 9.0]


def test_masking_removes_the_labels_of_rejected_units_only(doc):
    eg = Example(Doc(doc.vocab, words=WORDS), doc)
    masked = masked_example(eg, [(6, 11)])
    assert [t.ent_iob_ for t in masked.reference[6:]] == [""] * 5  # missing: no loss, no gradient
    assert [(e.text, e.label_) for e in masked.reference.ents] == [("Anna", "PER"), ("Tom", "PER"), ("Oslo", "LOC")]
    assert [t.ent_iob_ for t in eg.reference[6:]][3] == "B"  # the original is untouched
    # spaCy aligns missing annotation to None, like a misaligned token; rsft_ner tells the
    # two apart by the reference's ENT_IOB (0 = missing)
    assert masked.get_aligned_ner()[6:] == [None] * 5
    assert masked.get_aligned("ENT_IOB")[6:] == [0] * 5


def test_relabeling_puts_the_predicted_entities_into_rejected_sentences_only(doc):
    """The rejected sentence gets the model's entities, its other tokens become O (not
    missing: relabeling teaches, masking does not); the kept sentence keeps its gold; a
    predicted entity reaching out of the sentence, or not on token boundaries, leaves its
    tokens there missing; the unrelabeled reference is kept for the loss records."""
    from spacy_rsft.sampling.units import relabeled_example
    from spacy_rsft.ty import UNMASKED_KEY

    eg = Example(Doc(doc.vocab, words=WORDS), doc)
    predicted = Doc(doc.vocab, words=WORDS)
    # "Bob" (a name the noisy labels missed), "Paris" as ORG (a relabel, not a copy of the gold)
    predicted.set_ents([predicted.char_span(*_chars(predicted, 7, 8), label="PER"),
                        predicted.char_span(*_chars(predicted, 9, 10), label="ORG")])
    relabeled, counts = relabeled_example(eg, [(6, 11)], predicted)
    ents = [(e.start, e.end, e.label_) for e in relabeled.reference.ents]
    assert ents == [(0, 1, "PER"), (2, 3, "PER"), (4, 5, "LOC"), (7, 8, "PER"), (9, 10, "ORG")]
    assert [t.ent_iob_ for t in relabeled.reference[6:]] == ["O", "B", "O", "B", "O"]
    assert counts == {"entities": 2, "missing_tokens": 0}
    assert relabeled.reference.user_data[UNMASKED_KEY] is doc
    # relabel_entities: the predicted entities only; the sentence's other tokens stay missing
    partial, counts = relabeled_example(eg, [(6, 11)], predicted, predicted_outside=False)
    assert [t.ent_iob_ for t in partial.reference[6:]] == ["", "B", "", "B", ""]
    assert [(e.start, e.label_) for e in partial.reference.ents][3:] == [(7, "PER"), (9, "ORG")]
    assert counts == {"entities": 2, "missing_tokens": 3}
    assert [e.label_ for e in doc.ents][-1] == "LOC"  # the original is untouched
    # an entity crossing into the kept sentence: its relabeled tokens are missing, the
    # kept sentence's gold stays as it was
    crossing = Doc(doc.vocab, words=WORDS)
    crossing.set_ents([Span(crossing, 5, 8, "MISC")])
    relabeled, counts = relabeled_example(eg, [(6, 11)], crossing)
    assert [t.ent_iob_ for t in relabeled.reference[6:]] == ["", "", "O", "O", "O"]
    assert relabeled.reference[5].ent_iob_ == "O" and counts == {"entities": 0, "missing_tokens": 2}
    # another tokenization ("Par" "is"): an entity off the reference's token boundaries
    # leaves the token it touches missing
    words = WORDS[:9] + ["Par", "is", "."]
    split = Doc(doc.vocab, words=words, spaces=[True] * 9 + [False, True, True])
    assert split.text == doc.text
    split.set_ents([Span(split, 9, 10, "LOC")])
    relabeled, counts = relabeled_example(eg, [(6, 11)], split)
    assert [t.ent_iob_ for t in relabeled.reference[6:]] == ["O", "O", "O", "", "O"]
    assert counts == {"entities": 0, "missing_tokens": 1}
    assert relabeled_example(eg, [], predicted)[0] is eg  # nothing rejected: the example itself


def _chars(doc, start, end):
    return doc[start].idx, doc[end - 1].idx + len(doc[end - 1])


def test_token_losses_move_onto_the_reference_tokens():
    vocab = spacy.blank("en").vocab
    reference = Doc(vocab, words=["New", "York", "rocks"], spaces=[True, True, False])
    predicted = Doc(vocab, words=["New York", "rocks"], spaces=[True, False])
    eg = Example(predicted, reference)
    losses = reference_token_losses(eg, numpy.asarray([2.0, 1.0]))
    assert losses.tolist() == [2.0, 2.0, 1.0]


def test_noise_rate_ramps_up_and_rejects_the_loss_tail():
    sampler = RejectionSampler("denoise", noise_rate=0.4, ramp_epochs=2, warmup_epochs=1, temperature=0.05)
    losses = numpy.linspace(0, 1, 101)
    assert sampler.denoise_quantile_at(1, losses) == pytest.approx(0.8)  # first sampled epoch: half the rate
    assert sampler.denoise_quantile_at(2, losses) == pytest.approx(0.6)
    assert sampler.denoise_quantile_at(5, losses) == pytest.approx(0.6)
    accept = sampler.acceptance(2, losses)
    assert (accept[:60] == 1).all() and accept[65:].max() < 0.1 and accept[61] < 1
    assert (sampler.acceptance(0, losses) == 1).all()  # warm-up


def test_auto_noise_rate_is_the_share_the_model_disagrees_with():
    losses = numpy.asarray([0.1, 0.2, 0.5, 1.0, 2.0, numpy.nan])
    assert estimate_noise_rate(losses) == pytest.approx(0.4)  # 2 of the 5 scored are above ln 2
    sampler = RejectionSampler("denoise", noise_rate="auto", warmup_epochs=0)
    assert sampler.denoise_quantile_at(0, losses) == pytest.approx(0.6)


def test_max_noise_rate_estimate_does_not_fall_as_the_model_memorizes():
    early = numpy.asarray([0.1] * 6 + [2.0] * 4)  # 40% disagreed with
    late = numpy.asarray([0.1] * 9 + [2.0])  # the model has fit most of its noisy labels
    latest = RejectionSampler("denoise", noise_rate="auto", warmup_epochs=1)
    kept = RejectionSampler("denoise", noise_rate="auto", warmup_epochs=1, noise_rate_estimate="max")
    for sampler in (latest, kept):
        assert sampler.denoise_quantile_at(1, numpy.full(10, 5.0)) == pytest.approx(0.0)  # 1st sampled: as is
        assert sampler.denoise_quantile_at(2, early) == pytest.approx(0.6)
    assert latest.denoise_quantile_at(3, late) == pytest.approx(0.9)
    assert kept.denoise_quantile_at(3, late) == pytest.approx(0.6)
    assert kept.denoise_quantile_at(3, late, group=1) == pytest.approx(0.9)  # each group its own
    with pytest.raises(ValueError, match="noise_rate_estimate"):
        RejectionSampler("denoise", noise_rate="auto", noise_rate_estimate="mean")


def test_mixture_estimate_counts_noisy_units_the_model_has_started_to_fit():
    rng = numpy.random.default_rng(0)
    clean = numpy.exp(rng.normal(-6.0, 1.0, 700))  # the gold tags at p > 0.99
    fitting = numpy.exp(rng.normal(-1.5, 0.5, 300))  # noisy, gold tags already at p ~ 0.8
    losses = numpy.concatenate([clean, fitting, [numpy.nan]])
    assert estimate_noise_rate(losses) < 0.1  # the ln 2 cut sees almost none of them
    assert estimate_noise_rate_by_mixture(losses) == pytest.approx(0.3, abs=0.02)
    sampler = RejectionSampler("denoise", noise_rate="mixture", warmup_epochs=0)
    assert sampler.denoise_quantile_at(0, losses) == pytest.approx(0.7, abs=0.02)


def test_mixture_estimate_stops_at_one_half_and_needs_two_distinct_losses():
    rng = numpy.random.default_rng(1)
    mostly_high = numpy.concatenate([numpy.exp(rng.normal(-6, 1, 200)), numpy.exp(rng.normal(0, 0.5, 800))])
    assert estimate_noise_rate_by_mixture(mostly_high) == 0.5
    assert estimate_noise_rate_by_mixture(numpy.full(100, 0.3)) == 0.0
    assert estimate_noise_rate_by_mixture(numpy.asarray([numpy.nan] * 50)) == 0.0
    # too few units to fit two components: the ln 2 cut
    assert estimate_noise_rate_by_mixture(numpy.asarray([0.1, 0.2, 1.0, 2.0, numpy.nan])) == 0.5
    # many units: fitted on a strided sample, counted on all of them
    many = numpy.concatenate([numpy.exp(rng.normal(-6, 1, 70000)), numpy.exp(rng.normal(0, 0.5, 30000))])
    assert estimate_noise_rate_by_mixture(many) == pytest.approx(0.3, abs=0.01)


@pytest.mark.parametrize(
    "clean",
    [numpy.exp(numpy.random.default_rng(2).normal(-3, 1, 3000)),  # a bell on the log scale
     numpy.exp(numpy.random.default_rng(3).normal(-3, 2, 3000)),
     numpy.random.default_rng(4).exponential(0.1, 3000),
     numpy.random.default_rng(5).gamma(0.5, 0.2, 3000)],
)
def test_mixture_estimate_is_zero_for_one_group_of_losses(clean):
    # any two-component fit splits one bell; the components must be clearly apart
    assert estimate_noise_rate_by_mixture(clean) == 0.0


def test_mixture_estimate_handles_ties_and_infinite_losses():
    # most losses tied at 0 (float32 log-softmax of a sure prediction): the percentiles tie
    tied = numpy.concatenate([numpy.zeros(950), numpy.full(50, 1.0)])
    assert estimate_noise_rate_by_mixture(tied) == pytest.approx(0.05)
    rng = numpy.random.default_rng(6)
    noisy = numpy.concatenate([numpy.exp(rng.normal(-6, 1, 700)), numpy.exp(rng.normal(0, 0.5, 299)), [numpy.inf]])
    assert estimate_noise_rate_by_mixture(noisy) == pytest.approx(0.3, abs=0.02)


@pytest.mark.parametrize("rate", [None, 0, 0.0, 0.3, "auto", "mixture"])
def test_noise_rate_takes_null_a_share_or_an_estimator(rate):
    RejectionSampler("denoise", noise_rate=rate)


@pytest.mark.parametrize("rate", [1, -0.1, True, "gmm", "0.3"])
def test_noise_rate_refuses_anything_else(rate):
    with pytest.raises(ValueError, match="mixture"):
        RejectionSampler("denoise", noise_rate=rate)


def test_random_accepts_as_many_as_denoise_blindly():
    losses = numpy.random.default_rng(0).random(1000)
    settings = dict(noise_rate=0.3, warmup_epochs=0, temperature=0.2)
    denoise = RejectionSampler("denoise", **settings).acceptance(0, losses)
    random = RejectionSampler("random", **settings).acceptance(0, losses)
    assert random.mean() == pytest.approx(denoise.mean())
    assert numpy.ptp(random) == 0 and numpy.ptp(denoise) > 0.5
    with pytest.raises(ValueError, match="control"):
        RejectionSampler("denoise+random")


def test_groups_are_ranked_apart():
    # entity units have high losses, outside units low: ranked together, denoise would
    # reject only entities; ranked apart, each group loses its own tail
    losses = numpy.concatenate([numpy.linspace(5, 6, 50), numpy.linspace(0, 1, 50)])
    groups = numpy.asarray([1] * 50 + [0] * 50)
    sampler = RejectionSampler("denoise", noise_rate=0.2, warmup_epochs=0, temperature=0.05)
    together = sampler.acceptance(0, losses)
    apart = sampler.acceptance(0, losses, groups=groups)
    assert (together[50:] == 1).all()
    assert (apart[40:50] < 0.5).all() and (apart[90:] < 0.5).all() and (apart[:39] == 1).all()


def test_padding_groups_cut_the_padding_of_mixed_lengths():
    lengths = [3, 40, 5, 38, 4, 6, 41, 5] * 8
    groups = padding_groups(lengths, max_groups=4, overhead=16)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    padded = sum(len(g) * max(lengths[i] for i in g) for g in groups)
    assert padded < 0.6 * len(lengths) * max(lengths)
    assert padding_groups([140, 150, 145], max_groups=4, overhead=128) == [[0, 1, 2]]


# -- rsft_ner and the reader with units ----------------------------------------------------

import json  # noqa: E402
from pathlib import Path  # noqa: E402

from spacy.cli.train import train  # noqa: E402
from spacy.tokens import DocBin  # noqa: E402
from thinc.api import Config, fix_random_seed  # noqa: E402

from spacy_rsft.sampling.reader import READER_NAME  # noqa: E402

from util import make_examples, make_tiny_ner_nlp, noisy_ner_data  # noqa: E402

NER_CONFIG = Path(__file__).resolve().parents[1] / "project" / "configs" / "rsft_ner.cfg"


def four_sentence_docs(n_sentences: int = 64):
    """Docs of four template sentences each; every odd sentence has wrong labels, so every
    doc is equally noisy and only a finer unit can tell the corrupted sentences apart."""
    data, corrupted = noisy_ner_data(n_sentences, seed=0)
    vocab = spacy.blank("en").vocab
    docs = []
    for first in range(0, n_sentences, 4):
        words, starts, ents = [], [], []
        for text, spans in data[first : first + 4]:
            offset = len(" ".join(words)) + (1 if words else 0)
            tokens = text.split(" ")
            starts += [True] + [False] * (len(tokens) - 1)
            words += tokens
            ents += [(offset + s, offset + e, label) for s, e, label in spans]
        doc = Doc(vocab, words=words, sent_starts=starts)
        doc.ents = [doc.char_span(s, e, label=label) for s, e, label in ents]
        docs.append(doc)
    return docs, set(corrupted)


def units_config(tmp_path, tiny_bert, train_path, reader_settings, max_steps=100):
    config = Config().from_disk(NER_CONFIG, interpolate=False)
    config["paths"].update({"train": str(train_path), "dev": str(train_path), "model": tiny_bert})
    config["components"]["rsft_ner"]["model"]["hidden_width"] = 32
    config["corpora"]["train"] = {"@readers": READER_NAME, "path": "${paths.train}", **reader_settings}
    config["training"].update({"max_epochs": -1, "eval_frequency": 50})
    config["training"]["batcher"]["size"] = 150
    config["training"]["optimizer"]["learn_rate"].update({"warmup_steps": 5, "total_steps": max_steps, "initial_rate": 0.003})
    path = tmp_path / "config.cfg"
    config.to_disk(path)
    return path


def sentence_acceptance(stats, units, corrupted_sentence):
    """Mean acceptance probability of the corrupted and of the clean sentences over the
    sampled epochs, from the stats file and its unit table."""
    sampled = [line for line in stats if not line["warmup"]]
    assert sampled, "no sampled epoch"
    corrupted, clean = [], []
    for line in sampled:
        for u, a in enumerate(line["acceptance"]):
            if units["entity"][u]:
                continue
            (corrupted if corrupted_sentence(units["doc"][u], units["start"][u]) else clean).append(a)
    return numpy.mean(corrupted), numpy.mean(clean)


@pytest.mark.parametrize("unit", ["sentence", "example"])
def test_sentence_units_find_the_corrupted_sentences_documents_cannot(tmp_path, tiny_bert, unit):
    docs, corrupted = four_sentence_docs()
    train_path = tmp_path / "train.spacy"
    DocBin(docs=docs).to_disk(train_path)
    stats_path = tmp_path / "stats.jsonl"
    settings = {"target": "denoise", "unit": unit, "noise_rate": 0.5, "temperature": 0.1,
                "warmup_epochs": 2, "stats_path": str(stats_path), "seed": 1}
    train(units_config(tmp_path, tiny_bert, train_path, settings), tmp_path / "out")
    stats = [json.loads(line) for line in stats_path.read_text().splitlines()]
    units = json.loads((tmp_path / "stats.units.json").read_text())
    assert len(units["doc"]) == (len(docs) * 4 if unit == "sentence" else len(docs))
    sampled = [line for line in stats if not line["warmup"]]
    # the losses recorded while training in epoch k are found again for every unit in k+1
    assert all(line["scored"] == line["proposed"] == len(units["doc"]) for line in sampled)
    assert all(None not in line["losses"] for line in sampled if "losses" in line)

    def is_corrupted(doc, start):  # each template sentence is 4-8 tokens; find its index
        return (4 * doc + sum(1 for s in sentence_starts[doc] if s < start)) in corrupted

    sentence_starts = [[s.start for s in d.sents] for d in docs]
    if unit == "sentence":
        bad, good = sentence_acceptance(stats, units, is_corrupted)
        assert bad < good - 0.1, (bad, good)
        assert any(line["examples_trained"] == len(docs) for line in sampled)  # docs stay whole
    else:
        # every doc holds two corrupted and two clean sentences: a sentence gets its
        # document's acceptance, so rejecting documents cannot tell them apart
        per_doc = numpy.mean([line["acceptance"] for line in sampled], axis=0)
        assert per_doc.shape == (len(docs),) and per_doc.min() < 1  # it did reject
        per_sentence = [(per_doc[d], is_corrupted(d, s)) for d in range(len(docs)) for s in sentence_starts[d]]
        bad = numpy.mean([a for a, c in per_sentence if c])
        good = numpy.mean([a for a, c in per_sentence if not c])
        assert bad == pytest.approx(good)


def missing_entity_docs(n_sentences: int = 64):
    """Docs of four template sentences each; in every odd sentence the labels miss all its
    entities (the noise of crowd and distant labels): the names are "O" there."""
    data, _ = noisy_ner_data(n_sentences, seed=0)
    missing = set(range(1, n_sentences, 2))
    return sentence_docs(data, spacy.blank("en").vocab, labelled=lambda i: i not in missing), missing


def sentence_docs(data, vocab, labelled=lambda i: True, per_doc: int = 4):
    """Docs of `per_doc` (text, spans) sentences each; sentence i keeps its entities where
    `labelled(i)`, and is all "O" otherwise."""
    docs = []
    for first in range(0, len(data), per_doc):
        words, starts, ents = [], [], []
        for i, (text, spans) in enumerate(data[first : first + per_doc], start=first):
            offset = len(" ".join(words)) + (1 if words else 0)
            tokens = text.split(" ")
            starts += [True] + [False] * (len(tokens) - 1)
            words += tokens
            if labelled(i):
                ents += [(offset + s, offset + e, label) for s, e, label in spans]
        doc = Doc(vocab, words=words, sent_starts=starts)
        doc.set_ents([doc.char_span(s, e, label=label) for s, e, label in ents], default="outside")
        docs.append(doc)
    return docs


# "fresh": the token losses of a no-gradient pass before each epoch, not those of the updates
@pytest.mark.parametrize("scoring", ["cached", "fresh"])
def test_sentences_judged_by_their_largest_outside_loss_find_missing_entities(tmp_path, tiny_bert, scoring, monkeypatch):
    from spacy_rsft.sampling import reader as reader_module

    passes = []
    real_fresh_losses = reader_module.fresh_losses

    def counted_fresh_losses(*args, **kwargs):
        passes.append(kwargs.get("per_token"))
        return real_fresh_losses(*args, **kwargs)

    monkeypatch.setattr(reader_module, "fresh_losses", counted_fresh_losses)
    docs, missing = missing_entity_docs()
    train_path = tmp_path / "train.spacy"
    DocBin(docs=docs).to_disk(train_path)
    stats_path = tmp_path / "stats.jsonl"
    settings = {"target": "denoise", "unit": "sentence", "unit_loss": "max", "loss_tokens": "outside",
                "scoring": scoring, "noise_rate": 0.5, "temperature": 0.1, "warmup_epochs": 2,
                "stats_path": str(stats_path), "seed": 1}
    train(units_config(tmp_path, tiny_bert, train_path, settings), tmp_path / "out")
    stats = [json.loads(line) for line in stats_path.read_text().splitlines()]
    units = json.loads((tmp_path / "stats.units.json").read_text())
    assert all(line["unit_loss"] == "max" and line["loss_tokens"] == "outside" for line in stats)
    sampled = [line for line in stats if not line["warmup"]]
    assert all(line["scored"] == line["proposed"] == len(units["doc"]) for line in sampled)
    # one per-token pass before each sampled epoch when fresh, none when cached
    assert passes == ([True] * len(sampled) if scoring == "fresh" else []), passes
    sentence_starts = [[s.start for s in d.sents] for d in docs]

    def is_missing(doc, start):
        return (4 * doc + sum(1 for s in sentence_starts[doc] if s < start)) in missing

    bad, good = sentence_acceptance(stats, units, is_missing)
    assert bad < good - 0.1, (bad, good)


def test_the_reader_pools_each_sentences_counted_token_losses(tmp_path, doc):
    from spacy_rsft.sampling.reader import RejectionSampledCorpus

    other = Doc(doc.vocab, words=WORDS, sent_starts=SENT_STARTS, ents=["O"] * 4 + ["B-LOC"] + ["O"] * 6)
    DocBin(docs=[doc, other]).to_disk(tmp_path / "t.spacy")
    reader = RejectionSampledCorpus(tmp_path / "t.spacy", unit="sentence", unit_loss="max", loss_tokens="outside")
    examples = reader.load_examples(spacy.blank("en"))
    table = reader._unit_table(examples)
    tokens = numpy.arange(11, dtype="float32")  # token i has loss i
    losses = reader._pool(table, {0: tokens, 1: tokens[::-1].copy()})
    # doc: entities at tokens 0, 2, 4 and 9, so the outside maxima are 5 and 10; other: only
    # token 4 is an entity and the losses run 10..0, so 10 (token 0) and 4 (token 6)
    assert losses.tolist() == [5.0, 10.0, 10.0, 4.0]
    mean_reader = RejectionSampledCorpus(tmp_path / "t.spacy", unit="sentence")
    mean_table = mean_reader._unit_table(mean_reader.load_examples(spacy.blank("en")))
    assert mean_reader._pool(mean_table, {0: tokens}).tolist()[:2] == [2.5, 8.0]


def test_pooled_losses_need_sentence_or_span_units(tmp_path):
    DocBin(docs=four_sentence_docs(4)[0]).to_disk(tmp_path / "t.spacy")
    from spacy_rsft.sampling.reader import RejectionSampledCorpus

    RejectionSampledCorpus(tmp_path / "t.spacy", unit="span", unit_loss="max")
    with pytest.raises(ValueError, match="unit_loss"):
        RejectionSampledCorpus(tmp_path / "t.spacy", unit="example", unit_loss="max")
    with pytest.raises(ValueError, match="unit_loss"):
        RejectionSampledCorpus(tmp_path / "t.spacy", unit="sentence", unit_loss="median")
    with pytest.raises(ValueError, match="loss_tokens"):
        RejectionSampledCorpus(tmp_path / "t.spacy", unit="span", loss_tokens="outside")
    with pytest.raises(ValueError, match="loss_tokens"):
        RejectionSampledCorpus(tmp_path / "t.spacy", unit="example", loss_tokens="outside")


def test_split_sentences_pool_their_counted_token_losses(tmp_path, doc):
    """With context "sentence" the sentences are the training examples; judged by their
    largest outside-token loss they pool recorded token losses like masked sentences do."""
    from spacy_rsft.sampling.reader import RejectionSampledCorpus

    DocBin(docs=[doc]).to_disk(tmp_path / "t.spacy")
    reader = RejectionSampledCorpus(tmp_path / "t.spacy", unit="sentence", context="sentence",
                                    unit_loss="max", loss_tokens="outside")
    assert reader.pools_tokens and not reader.masks_units
    examples = reader.load_examples(spacy.blank("en"))
    assert [len(eg.reference) for eg in examples] == [6, 5]
    table = reader._unit_table(examples)
    tokens = numpy.arange(11, dtype="float32")  # doc token i has loss i
    losses = reader._pool(table, {0: tokens[:6].copy(), 1: tokens[6:].copy()})
    # entities at doc tokens 0, 2, 4 and 9: outside maxima 5 (token 5) and 10 (token 10)
    assert losses.tolist() == [5.0, 10.0]
    # a split reader with the plain mean keeps the examples' own recorded losses
    assert not RejectionSampledCorpus(tmp_path / "t.spacy", unit="sentence", context="sentence").pools_tokens


@pytest.mark.parametrize("pooled", [{}, {"unit_loss": "max", "loss_tokens": "outside"}])
def test_split_context_trains_on_the_accepted_sentences(tmp_path, tiny_bert, pooled):
    docs, _ = four_sentence_docs(16)
    train_path = tmp_path / "train.spacy"
    DocBin(docs=docs).to_disk(train_path)
    stats_path = tmp_path / "stats.jsonl"
    settings = {"target": "denoise", "unit": "sentence", "context": "sentence", "noise_rate": 0.5,
                "warmup_epochs": 1, "stats_path": str(stats_path), **pooled}
    train(units_config(tmp_path, tiny_bert, train_path, settings, max_steps=20), tmp_path / "out")
    stats = [json.loads(line) for line in stats_path.read_text().splitlines()]
    units = json.loads((tmp_path / "stats.units.json").read_text())
    assert stats[0]["proposed"] == 16 and stats[0]["examples_trained"] == 16  # sentences, not docs
    assert units["doc"][:5] == [0, 0, 0, 0, 1] and units["start"][1] == len(list(docs[0].sents)[0])
    sampled = [line for line in stats if not line["warmup"]]
    assert sampled and all(line["examples_trained"] == line["accepted"] < 16 for line in sampled)
    # every sentence was trained in the warm-up epoch, so every one has a (pooled) loss,
    # written in unit order (the detection report ranks the units by it)
    assert sampled[0]["scored"] == 16
    assert len(sampled[0]["losses"]) == 16 and None not in sampled[0]["losses"]


def test_context_sentence_needs_sentence_units(tmp_path):
    DocBin(docs=four_sentence_docs(4)[0]).to_disk(tmp_path / "t.spacy")
    from spacy_rsft.sampling.reader import RejectionSampledCorpus

    with pytest.raises(ValueError, match="context"):
        RejectionSampledCorpus(tmp_path / "t.spacy", unit="span", context="sentence")
    with pytest.raises(ValueError, match="unit"):
        RejectionSampledCorpus(tmp_path / "t.spacy", unit="token")


def test_masked_units_contribute_no_gradient(tiny_bert):
    nlp = make_tiny_ner_nlp(tiny_bert)
    doc = Doc(nlp.vocab, words=WORDS, sent_starts=SENT_STARTS, ents=ENTS)
    eg = Example(nlp.make_doc(doc.text), doc)
    nlp.initialize(lambda: [eg])
    ner = nlp.get_pipe("rsft_ner")
    masked = masked_example(eg, [(6, 11)])
    logits = ner.model.predict([masked.predicted])
    loss, d_logits, per_example, per_token = ner._loss([masked], logits)
    grad = ner.model.ops.to_numpy(d_logits[0])
    assert numpy.abs(grad[6:]).max() == 0 and numpy.abs(grad[:6]).max() > 0
    assert numpy.isnan(per_token[0][6:]).all() and not numpy.isnan(per_token[0][:6]).any()
    assert ner.misaligned_tokens == 0  # missing annotation is not misalignment
    full_loss = ner._loss([eg], logits)[0]
    assert 0 < loss < full_loss


def test_masked_units_are_still_scored_against_their_labels(tmp_path):
    """A rejected unit's loss stays current: the update records it from the same forward
    pass against the unmasked labels (no gradient), so it is not rejected on a stale loss."""
    from spacy_rsft.testing import make_tiny_bert
    from spacy_rsft.util import set_example_id

    nlp = make_tiny_ner_nlp(str(make_tiny_bert(tmp_path / "bert", dropout=0.0)))
    doc = Doc(nlp.vocab, words=WORDS, sent_starts=SENT_STARTS, ents=ENTS)
    eg = Example(nlp.make_doc(doc.text), doc)
    nlp.initialize(lambda: [eg])
    ner = nlp.get_pipe("rsft_ner")
    masked = masked_example(eg, [(6, 11)])
    set_example_id(masked, 0)
    assert masked.reference.user_data["rsft_unmasked_reference"] is eg.reference
    assert not eg.reference.user_data  # the original is not changed
    ner.update([masked], drop=0.0)
    recorded = ner.pop_recorded_token_losses()[0]
    assert recorded.shape == (len(doc),) and not numpy.isnan(recorded).any()
    # the same losses as an unmasked example's under the same weights (no dropout here)
    expected = ner._loss([eg], ner.model.predict([eg.predicted]))[3][0]
    numpy.testing.assert_allclose(recorded, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kinds", ["outside", "entity"])
def test_span_kinds_reject_only_that_kind(tmp_path, tiny_bert, kinds):
    docs, _ = four_sentence_docs(16)
    train_path = tmp_path / "train.spacy"
    DocBin(docs=docs).to_disk(train_path)
    stats_path = tmp_path / "stats.jsonl"
    settings = {"target": "denoise", "unit": "span", "span_kinds": kinds, "noise_rate": 0.5, "temperature": 0.1,
                "warmup_epochs": 1, "stats_path": str(stats_path)}
    train(units_config(tmp_path, tiny_bert, train_path, settings, max_steps=30), tmp_path / "out")
    stats = [json.loads(line) for line in stats_path.read_text().splitlines()]
    entity = numpy.asarray(json.loads((tmp_path / "stats.units.json").read_text())["entity"], dtype=bool)
    kept = entity if kinds == "outside" else ~entity
    sampled = [line for line in stats if not line["warmup"]]
    assert sampled and all(line["span_kinds"] == kinds for line in stats)
    for line in sampled:
        acceptance = numpy.asarray(line["acceptance"])
        assert (acceptance[kept] == 1).all() and acceptance[~kept].min() < 1


def test_span_kinds_need_span_units(tmp_path):
    DocBin(docs=four_sentence_docs(4)[0]).to_disk(tmp_path / "t.spacy")
    from spacy_rsft.sampling.reader import RejectionSampledCorpus

    with pytest.raises(ValueError, match="span_kinds"):
        RejectionSampledCorpus(tmp_path / "t.spacy", unit="sentence", span_kinds="outside")
    with pytest.raises(ValueError, match="span_kinds"):
        RejectionSampledCorpus(tmp_path / "t.spacy", unit="span", span_kinds="tokens")


def test_length_groups_give_the_update_of_one_pass(tmp_path):
    from spacy_rsft.testing import make_tiny_bert

    tiny_bert = str(make_tiny_bert(tmp_path / "bert", dropout=0.0))  # no random dropout masks
    data, _ = noisy_ner_data(24, seed=0)
    long_text = " ".join(text for text, _ in data[:6])
    results = []
    for groups in (1, 4):
        fix_random_seed(0)
        nlp = make_tiny_ner_nlp(tiny_bert)


        examples = make_examples(nlp, data[:12] + [(long_text, [])])
        nlp.initialize(lambda: examples)
        nlp.get_pipe("rsft_ner").cfg["max_train_groups"] = groups
        optimizer = nlp.create_optimizer()
        losses = nlp.update(examples, sgd=optimizer, drop=0.0)
        probe = nlp.get_pipe("rsft_ner").predict([nlp.make_doc(long_text)])[0]
        results.append((losses["rsft_ner"], probe))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
    numpy.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-4, atol=1e-5)


def test_relabel_trains_every_document_with_its_rejected_sentences_relabeled(tmp_path, tiny_bert):
    """`rejected = "relabel"`: each sampled epoch every document is trained (none drops out
    with all its sentences rejected), the rejected sentences relabeled by the pipeline; the
    stats count them, and the units' losses are still recorded against their own labels."""
    docs, _ = four_sentence_docs(32)
    train_path = tmp_path / "train.spacy"
    DocBin(docs=docs).to_disk(train_path)
    stats_path = tmp_path / "stats.jsonl"
    settings = {"target": "denoise", "unit": "sentence", "noise_rate": 0.5, "temperature": 0.1,
                "warmup_epochs": 1, "rejected": "relabel", "stats_path": str(stats_path)}
    train(units_config(tmp_path, tiny_bert, train_path, settings, max_steps=40), tmp_path / "out")
    stats = [json.loads(line) for line in stats_path.read_text().splitlines()]
    sampled = [line for line in stats if not line["warmup"]]
    assert sampled and all(line["rejected_as"] == "relabel" for line in stats)
    for line in sampled:
        assert line["examples_trained"] == len(docs)
        assert line["relabeled"]["units"] == line["proposed"] - line["accepted"] > 0
        assert line["relabeled"]["seconds"] >= 0 and line["relabeled"]["entities"] >= 0
        assert line["scored"] == line["proposed"]  # relabeled sentences' losses still recorded


def test_relabel_needs_sentence_units_and_a_component_that_sets_entities(tmp_path):
    from spacy_rsft.sampling.reader import RejectionSampledCorpus, predict_entities

    DocBin(docs=four_sentence_docs(8)[0]).to_disk(tmp_path / "t.spacy")
    for settings in ({"unit": "example"}, {"unit": "span"}, {"unit": "sentence", "context": "sentence"}):
        with pytest.raises(ValueError, match="rejected"):
            RejectionSampledCorpus(tmp_path / "t.spacy", target="denoise", rejected="relabel", **settings)
    with pytest.raises(ValueError, match="rejected"):
        RejectionSampledCorpus(tmp_path / "t.spacy", target="denoise", unit="sentence", rejected="drop")
    assert RejectionSampledCorpus(tmp_path / "t.spacy", target="denoise", unit="sentence",
                                  rejected="relabel_entities").rejected == "relabel_entities"
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    with pytest.raises(ValueError, match="no component that sets `doc.ents`"):
        predict_entities(nlp, [nlp.make_doc("Anna met Tom.")], 8)


def test_random_replays_the_acceptance_of_the_run_it_controls(tmp_path, tiny_bert):
    """`acceptance_from`: each epoch every entity span gets the other run's mean acceptance of
    the entity spans in that epoch, the outside tokens stay accepted (span_kinds = "entity"),
    and a run longer than the other repeats its last epoch with a warning."""
    from spacy_rsft.sampling.reader import RejectionSampledCorpus

    docs, _ = four_sentence_docs(16)
    train_path = tmp_path / "train.spacy"
    DocBin(docs=docs).to_disk(train_path)
    reader = RejectionSampledCorpus(train_path, unit="span", span_kinds="entity")
    entity = reader._unit_table(reader.load_examples(spacy.blank("en"))).entity
    rng = numpy.random.default_rng(0)
    other = [numpy.ones(entity.shape)] + [rng.uniform(0.2, 1.0, entity.shape) for _ in range(2)]
    other_path = tmp_path / "denoise_stats.jsonl"
    other_path.write_text("".join(json.dumps({"epoch": e, "acceptance": a.tolist()}) + "\n" for e, a in enumerate(other)))
    stats_path = tmp_path / "stats.jsonl"
    settings = {"target": "random", "unit": "span", "span_kinds": "entity", "noise_rate": 0.5, "warmup_epochs": 1,
                "acceptance_from": str(other_path), "stats_path": str(stats_path)}
    with pytest.warns(UserWarning, match="repeats epoch 2"):
        train(units_config(tmp_path, tiny_bert, train_path, settings, max_steps=30), tmp_path / "out")
    stats = [json.loads(line) for line in stats_path.read_text().splitlines()]
    assert len(stats) > 3 and all(line["acceptance_from"] == str(other_path) for line in stats)
    for line in stats:
        acceptance, expected = numpy.asarray(line["acceptance"]), other[min(line["epoch"], 2)]
        numpy.testing.assert_allclose(acceptance[entity], expected[entity].mean(), atol=1e-3)
        assert (acceptance[~entity] == 1).all()
        # the line records what a control of this run would replay: the mean per group
        assert line["mean_acceptance"] == pytest.approx(
            {"entity": acceptance[entity].mean(), "outside": 1.0}, abs=1e-3)


def test_a_replay_file_replays_what_the_stats_file_replays(tmp_path):
    """`replay_lines` cuts a stats file to its epochs' group means: a control reading it
    gets the same acceptance as one reading the full file, from stats written before the
    lines recorded the means too (grouped by the unit table's entity flags)."""
    from spacy_rsft.sampling.reader import RejectionSampledCorpus, replay_lines

    DocBin(docs=four_sentence_docs(8)[0]).to_disk(tmp_path / "t.spacy")
    reader = RejectionSampledCorpus(tmp_path / "t.spacy", unit="span", span_kinds="entity")
    entity = reader._unit_table(reader.load_examples(spacy.blank("en"))).entity
    rng = numpy.random.default_rng(1)
    stats = [{"epoch": e, "unit": "span", "context": "document", "span_kinds": "entity", "proposed": len(entity),
              "losses": rng.uniform(size=len(entity)).tolist(), "acceptance": rng.uniform(size=len(entity)).tolist()}
             for e in range(3)]
    with pytest.raises(ValueError, match="entity"):
        replay_lines(stats)  # span units cannot be grouped without the unit table
    compact = replay_lines(stats, entity.astype(int).tolist())
    assert all("acceptance" not in line and "losses" not in line for line in compact)
    paths = {"stats": tmp_path / "stats.jsonl", "replay": tmp_path / "replay.jsonl"}
    for name, lines in (("stats", stats), ("replay", compact)):
        paths[name].write_text("".join(json.dumps(line) + "\n" for line in lines))
    replayed = {}
    for name, path in paths.items():
        control = RejectionSampledCorpus(tmp_path / "t.spacy", target="random", unit="span", span_kinds="entity",
                                         acceptance_from=str(path))
        control.epoch = 2
        replayed[name] = control._replayed_acceptance(numpy.ones(entity.shape), entity.astype("int64"))
    numpy.testing.assert_allclose(replayed["replay"], replayed["stats"], atol=1e-6)
    assert replayed["stats"][entity][0] == pytest.approx(numpy.asarray(stats[2]["acceptance"])[entity].mean())
    # a replay file of sentence units has one group; a span control cannot use it
    (tmp_path / "sentences.jsonl").write_text(json.dumps(
        {"epoch": 0, "proposed": len(entity), "mean_acceptance": {"all": 0.7}}) + "\n")
    control = RejectionSampledCorpus(tmp_path / "t.spacy", target="random", unit="span", span_kinds="entity",
                                     acceptance_from=str(tmp_path / "sentences.jsonl"))
    with pytest.raises(ValueError, match="no mean acceptance of the 'outside' units"):
        control._replayed_acceptance(numpy.ones(entity.shape), entity.astype("int64"))


def test_replayed_acceptance_leaves_the_other_span_kind_alone(tmp_path):
    """With span_kinds = "entity" the outside tokens stay accepted whatever the other run's
    stats say; the entity spans get its entity mean."""
    from spacy_rsft.sampling.reader import RejectionSampledCorpus

    DocBin(docs=four_sentence_docs(8)[0]).to_disk(tmp_path / "t.spacy")
    reader = RejectionSampledCorpus(tmp_path / "t.spacy", unit="span", span_kinds="entity")
    entity = reader._unit_table(reader.load_examples(spacy.blank("en"))).entity
    other = numpy.where(entity, 0.6, 0.4)
    lines = [{"epoch": 0, "acceptance": [1.0] * len(entity)}, {"epoch": 1, "acceptance": other.tolist(), "unit": "span"}]
    (tmp_path / "other.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    replay = RejectionSampledCorpus(tmp_path / "t.spacy", target="random", unit="span", span_kinds="entity",
                                    acceptance_from=str(tmp_path / "other.jsonl"))
    replay.epoch = 1
    groups = entity.astype("int64")
    acceptance = replay._replayed_acceptance(numpy.ones(entity.shape), groups)
    numpy.testing.assert_allclose(acceptance[entity], 0.6)
    numpy.testing.assert_allclose(acceptance[~entity], 0.4)  # then set to 1 by span_kinds
    with pytest.raises(ValueError, match="its units were"):
        RejectionSampledCorpus(tmp_path / "t.spacy", target="random", unit="sentence",
                               acceptance_from=str(tmp_path / "other.jsonl"))


def test_acceptance_from_needs_random_and_a_stats_file_of_the_same_units(tmp_path, tiny_bert):
    from spacy_rsft.sampling.reader import RejectionSampledCorpus

    docs, _ = four_sentence_docs(16)
    train_path = tmp_path / "train.spacy"
    DocBin(docs=docs).to_disk(train_path)
    stats = tmp_path / "other.jsonl"
    stats.write_text(json.dumps({"epoch": 0, "acceptance": [1.0] * 3}) + "\n" + json.dumps({"epoch": 1, "acceptance": [0.5] * 3}) + "\n")
    with pytest.raises(ValueError, match="acceptance_from"):
        RejectionSampledCorpus(train_path, target="denoise", acceptance_from=str(stats))
    with pytest.raises(ValueError, match="no such file"):
        RejectionSampledCorpus(train_path, target="random", acceptance_from=str(tmp_path / "missing.jsonl"))
    (tmp_path / "bad.jsonl").write_text('{"epoch": 0}\n')
    with pytest.raises(ValueError, match="line 1 is not a stats line"):
        RejectionSampledCorpus(train_path, target="random", acceptance_from=str(tmp_path / "bad.jsonl"))
    (tmp_path / "gap.jsonl").write_text(json.dumps({"epoch": 0, "acceptance": [1.0]}) + "\n" + json.dumps({"epoch": 2, "acceptance": [1.0]}) + "\n")
    with pytest.raises(ValueError, match="line 2 is epoch 2, expected epoch 1"):
        RejectionSampledCorpus(train_path, target="random", acceptance_from=str(tmp_path / "gap.jsonl"))
    with pytest.raises(ValueError, match="acceptance_from"):
        RejectionSampledCorpus(train_path, target="random+balanced", acceptance_from=str(stats))
    settings = {"target": "random", "unit": "sentence", "acceptance_from": str(stats), "warmup_epochs": 1}
    with pytest.raises(ValueError, match="has 3 units, this corpus 16"):
        train(units_config(tmp_path, tiny_bert, train_path, settings, max_steps=10), tmp_path / "out")
