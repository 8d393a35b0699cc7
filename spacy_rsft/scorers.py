"""Registered scorers (`@scorers`), configured per component like spaCy's own."""
from typing import Any, Callable, Dict, Iterable

from spacy.pipeline.ner import ner_score
from spacy.training import Example
from spacy.util import registry


def score_ner(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
    """Entity precision, recall and F1 (micro and per type), exactly as spaCy's `ner`
    reports them, so the numbers are comparable side by side.

    examples (Iterable[Example]): Predicted and gold docs.
    RETURNS (Dict[str, Any]): ents_p, ents_r, ents_f, ents_per_type.
    """
    return ner_score(examples, **kwargs)


@registry.scorers("spacy-rsft.ner_scorer.v1")
def make_ner_scorer() -> Callable[..., Dict[str, Any]]:
    """Registered as `spacy-rsft.ner_scorer.v1`.

    RETURNS (Callable): The scorer.
    """
    return score_ner
