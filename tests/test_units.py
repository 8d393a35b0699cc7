"""Rejection at finer units than the example: the unit table, unit losses, masking, and the
sampler's noise-rate form of `denoise`, its `random` control and grouped ranking."""
import numpy
import pytest
import spacy
from spacy.tokens import Doc
from spacy.training import Example

from spacy_rsft.pipeline.batching import padding_groups
from spacy_rsft.sampling.sampler import RejectionSampler, estimate_noise_rate
from spacy_rsft.sampling.units import build_units, masked_example, reference_token_losses, unit_losses

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
