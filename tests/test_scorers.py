"""The end-to-end link score (strong-match InKB micro P/R/F), by hand."""
import pytest
import spacy
from spacy.tokens import Doc, Span
from spacy.training import Example

from spacy_rsft.scorers import score_links, score_links_end_to_end

WORDS = ["Phil", "Simmons", "took", "four", "for", "Leicestershire", "against", "Somerset", "in", "Leicester"]


def _doc(nlp, ents):
    doc = Doc(nlp.vocab, words=WORDS)
    doc.ents = [Span(doc, start, end, label=label, kb_id=kb_id) for start, end, label, kb_id in ents]
    return doc


def test_end_to_end_strong_match_by_hand():
    nlp = spacy.blank("en")
    gold = _doc(nlp, [(0, 2, "PER", "Phil_Simmons"), (5, 6, "ORG", "Leicestershire_CCC"),
                      (7, 8, "ORG", "Somerset_CCC"), (9, 10, "LOC", "NIL")])
    predicted = _doc(nlp, [
        (0, 2, "PER", "Phil_Simmons"),      # right span, right id: a hit
        (5, 6, "LOC", "Leicestershire_CCC"),  # wrong label, right span and id: still a hit (links are scored by span)
        (7, 8, "ORG", "Somerset"),          # right span, wrong id: a false positive and a miss
        (9, 10, "LOC", "Leicester"),        # a link on a gold NIL mention: a false positive
        (3, 4, "MISC", "NIL"),              # a NIL prediction is not a link
    ])
    scores = score_links_end_to_end([Example(predicted, gold)])
    assert scores["nel_e2e_inkb_p"] == pytest.approx(2 / 4)
    assert scores["nel_e2e_inkb_r"] == pytest.approx(2 / 3)
    assert scores["nel_e2e_inkb_f"] == pytest.approx(2 * 2 / (4 + 3))
    # a boundary error loses the link even with the right id
    shifted = _doc(nlp, [(1, 2, "PER", "Phil_Simmons")])
    assert score_links_end_to_end([Example(shifted, gold)])["nel_e2e_inkb_f"] == 0.0
    # nothing predicted: recall 0, F 0; no gold links: undefined
    empty = _doc(nlp, [])
    assert score_links_end_to_end([Example(empty, gold)]) == {"nel_e2e_inkb_p": None, "nel_e2e_inkb_r": 0.0, "nel_e2e_inkb_f": 0.0}
    assert score_links_end_to_end([Example(predicted, empty)])["nel_e2e_inkb_f"] is None


def test_the_linker_scorer_reports_the_end_to_end_score():
    nlp = spacy.blank("en")
    gold = _doc(nlp, [(0, 2, "PER", "Phil_Simmons"), (7, 8, "ORG", "Somerset_CCC")])
    predicted = _doc(nlp, [(0, 2, "PER", "Phil_Simmons"), (7, 8, "ORG", "NIL")])
    scores = score_links([Example(predicted, gold)])
    assert scores["nel_e2e_inkb_p"] == 1.0
    assert scores["nel_e2e_inkb_r"] == 0.5
