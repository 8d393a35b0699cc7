"""Registered scorers (`@scorers`), configured per component like spaCy's own: entities
for `rsft_ner`, links for `rsft_entity_linker` (and the prior baseline)."""
from typing import Any, Callable, Dict, Iterable

from spacy.pipeline.ner import ner_score
from spacy.scorer import Scorer
from spacy.training import Example
from spacy.util import registry

from .annotations import NIL
from .calibration import expected_calibration_error


def score_ner(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
    """Entity precision, recall and F1 (micro and per type), exactly as spaCy's `ner`
    reports them, so the numbers are comparable side by side; and the expected calibration
    error of the entity confidences (`ents_ece`) when the predicted docs carry rsft_ner's span
    group (`spans_key`, passed from the component's cfg).

    examples (Iterable[Example]): Predicted and gold docs.
    RETURNS (Dict[str, Any]): ents_p, ents_r, ents_f, ents_per_type, ents_ece.
    """
    examples = list(examples)
    scores = ner_score(examples, **kwargs)
    spans_key = kwargs.get("spans_key")
    if spans_key:
        confidences, right = entity_outcomes(examples, spans_key)
        scores["ents_ece"] = expected_calibration_error(confidences, right) if confidences else None
    return scores


def entity_outcomes(examples: Iterable[Example], spans_key: str):
    """The confidence of every entity in the predicted docs' span group `spans_key`, and
    whether it is right (a gold entity with the same characters and label)."""
    confidences, right = [], []
    for eg in examples:
        group = eg.predicted.spans.get(spans_key)
        if group is None or "scores" not in group.attrs:
            continue
        gold = {(e.start_char, e.end_char, e.label_) for e in eg.reference.ents}
        for span, score in zip(group, group.attrs["scores"]):
            confidences.append(float(score))
            right.append((span.start_char, span.end_char, span.label_) in gold)
    return confidences, right


@registry.scorers("spacy-rsft.ner_scorer.v1")
def make_ner_scorer() -> Callable[..., Dict[str, Any]]:
    """Registered as `spacy-rsft.ner_scorer.v1`.

    RETURNS (Callable): The scorer.
    """
    return score_ner


def score_links(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
    """Link scores, and where the errors come from.

    examples (Iterable[Example]): Examples whose predicted entities were linked.
    RETURNS (Dict[str, Any]): nel_micro_p/r/f (spaCy's `score_links`, NIL as negative),
        nel_inkb_accuracy, nel_nil_p/r/f, nel_candidate_recall, nel_recall_at_1/5, nel_ece,
        and the end-to-end nel_e2e_inkb_p/r/f (see `score_links_end_to_end`).
    """
    examples = list(examples)
    scores = Scorer.score_links(examples, negative_labels=[NIL])
    inkb = inkb_correct = nil_gold = nil_pred = nil_both = cand_hit = at1 = at5 = 0
    for eg in examples:
        predicted = {(e.start_char, e.end_char): e for e in eg.predicted.ents}
        for gold in eg.reference.ents:
            if not gold.kb_id_:
                continue
            pred = predicted.get((gold.start_char, gold.end_char))
            pred_id = pred.kb_id_ if pred is not None else NIL
            ranked = [kb_id for kb_id, _ in (pred._.kb_candidates or [])] if pred is not None else []
            if pred is not None and pred_id == NIL:
                nil_pred += 1
            if gold.kb_id_ == NIL:
                nil_gold += 1
                nil_both += pred_id == NIL
                continue
            inkb += 1
            inkb_correct += pred_id == gold.kb_id_
            cand_hit += gold.kb_id_ in ranked
            at1 += gold.kb_id_ in ranked[:1]
            at5 += gold.kb_id_ in ranked[:5]
    confidences, right = link_outcomes(examples)
    scores.update(score_links_end_to_end(examples))
    nil_p = nil_both / nil_pred if nil_pred else None
    nil_r = nil_both / nil_gold if nil_gold else None
    scores.update(
        {
            "nel_inkb_accuracy": inkb_correct / inkb if inkb else None,
            "nel_nil_p": nil_p,
            "nel_nil_r": nil_r,
            "nel_nil_f": (2 * nil_p * nil_r / (nil_p + nil_r)) if nil_p and nil_r else (0.0 if nil_gold else None),
            "nel_candidate_recall": cand_hit / inkb if inkb else None,
            "nel_recall_at_1": at1 / inkb if inkb else None,
            "nel_recall_at_5": at5 / inkb if inkb else None,
            # of kb_score, the probability of the chosen outcome (an id or NIL)
            "nel_ece": expected_calibration_error(confidences, right) if confidences else None,
        }
    )
    return scores


def score_links_end_to_end(examples: Iterable[Example]) -> Dict[str, Any]:
    """The standard end-to-end entity-linking score (GERBIL's strong-match InKB micro P/R/F,
    as reported on AIDA): a predicted link counts when its span (characters) and its KB id
    both equal a gold one. Gold mentions without a KB id or with NIL are left out; predicted
    entities that are not linked (NIL or no id) are not links. A link on a span the NER got
    wrong, or on a gold NIL mention, is a false positive; with gold mentions this equals
    the micro F of in-KB links.

    examples (Iterable[Example]): Predicted docs (entities from any NER, linked) and gold.
    RETURNS (Dict[str, Any]): nel_e2e_inkb_p, nel_e2e_inkb_r, nel_e2e_inkb_f (None where
        undefined).
    """
    tp = n_pred = n_gold = 0
    for eg in examples:
        gold = {(e.start_char, e.end_char, e.kb_id_) for e in eg.reference.ents if e.kb_id_ and e.kb_id_ != NIL}
        pred = {(e.start_char, e.end_char, e.kb_id_) for e in eg.predicted.ents if e.kb_id_ and e.kb_id_ != NIL}
        tp += len(gold & pred)
        n_gold += len(gold)
        n_pred += len(pred)
    p = tp / n_pred if n_pred else None
    r = tp / n_gold if n_gold else None
    f = 2 * tp / (n_pred + n_gold) if n_gold else None  # 0 when nothing is predicted
    return {"nel_e2e_inkb_p": p, "nel_e2e_inkb_r": r, "nel_e2e_inkb_f": f}


def link_outcomes(examples: Iterable[Example]):
    """The `kb_score` of every predicted entity at a gold mention with a KB id (the
    probability of the chosen outcome, an id or NIL), and whether the choice is right."""
    confidences, right = [], []
    for eg in examples:
        predicted = {(e.start_char, e.end_char): e for e in eg.predicted.ents}
        for gold in eg.reference.ents:
            pred = predicted.get((gold.start_char, gold.end_char))
            if not gold.kb_id_ or pred is None or pred._.kb_score is None:
                continue
            confidences.append(float(pred._.kb_score))
            right.append(pred.kb_id_ == gold.kb_id_)
    return confidences, right


@registry.scorers("spacy-rsft.el_scorer.v1")
def make_el_scorer() -> Callable[..., Dict[str, Any]]:
    """Registered as `spacy-rsft.el_scorer.v1`: spaCy's link P/R/F plus in-KB accuracy,
    NIL precision/recall and candidate recall (is the gold id among the candidates).

    RETURNS (Callable): The scorer.
    """
    return score_links
