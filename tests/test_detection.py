"""Noise detection against known clean labels (the benchmark's and the demo's numbers)."""
import numpy
import pytest
import spacy
from spacy.tokens import Doc, Span

from spacy_rsft.sampling.detection import auroc, noisy_units, unit_noise_detection


def test_auroc_by_hand():
    positive = numpy.array([True, False, True, False])
    assert auroc(numpy.array([0.9, 0.1, 0.8, 0.2]), positive) == 1.0
    assert auroc(numpy.array([0.1, 0.9, 0.2, 0.8]), positive) == 0.0
    assert auroc(numpy.array([0.5, 0.5, 0.5, 0.5]), positive) == 0.5  # ties count half
    # 3 of the 4 (positive, negative) pairs ordered right
    assert auroc(numpy.array([0.9, 0.1, 0.3, 0.5]), positive) == pytest.approx(0.75)
    assert auroc(numpy.array([0.1, 0.2]), numpy.array([True, True])) is None


def _doc(vocab, ents):
    doc = Doc(vocab, words=["Mary", "Smith", "met", "Acme", "in", "Paris", "."])
    doc.ents = [Span(doc, s, e, label=label) for s, e, label in ents]
    return doc


def test_noisy_span_units_and_detection():
    vocab = spacy.blank("en").vocab
    clean = [_doc(vocab, [(0, 2, "PER"), (3, 4, "ORG"), (5, 6, "LOC")])]
    # the noisy labels miss "Paris" and mistype "Acme"
    noisy = [_doc(vocab, [(0, 2, "PER"), (3, 4, "LOC")])]
    # span units as the reader builds them: the two gold entity spans, then the outside tokens
    units = {"unit": "span", "doc": [0] * 6, "start": [0, 3, 2, 4, 5, 6], "end": [2, 4, 3, 5, 6, 7],
             "entity": [True, True, False, False, False, False]}
    flags = noisy_units(units, clean, noisy)
    # noisy: the mistyped entity span, and the outside token "Paris" (inside a clean entity)
    assert flags.tolist() == [False, True, False, False, True, False]
    # an epoch that rejected "Paris" and "met": precision 1/2, recall 1/1 over outside tokens
    epoch = {"epoch": 2, "warmup": False, "accepted_indices": [0, 1, 3, 5],
             "acceptance": [1.0, 1.0, 0.2, 1.0, 0.1, 1.0], "losses": [0.1, 0.5, 0.9, 0.1, 2.0, 0.1]}
    row = unit_noise_detection([{"epoch": 1, "warmup": True}, epoch], units, clean, noisy)["epochs"]
    assert len(row) == 1
    outside = row[0]["outside"]
    assert (outside["units"], outside["noisy"], outside["rejected"]) == (4, 1, 2)
    assert outside["precision"] == 0.5 and outside["recall"] == 1.0
    assert outside["auroc"] == 1.0 and outside["loss_auroc"] == 1.0
    assert row[0]["entity"]["recall"] == 0.0  # the mistyped span was accepted
