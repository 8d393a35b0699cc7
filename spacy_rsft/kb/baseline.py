"""Prior-only entity-linking baseline: link each mention to its candidate with the highest
prior p(e|m) (ties by id), NIL when it has no candidate. Scored with
the same scorer as `rsft_entity_linker`, on the gold entities."""
from pathlib import Path
from typing import Any, Dict

import spacy
from spacy.kb import InMemoryLookupKB
from spacy.tokens import DocBin
from spacy.training import Example

from ..pipeline.entity_linker import NIL, score_links
from .candidates import CandidateGenerator


def prior_baseline(kb_path: Path, data_path: Path, lang: str = "en", normalize: bool = True) -> Dict[str, Any]:
    """Score the prior baseline.

    kb_path (Path): A KB directory (kb.to_disk / build-kb's `kb/`).
    data_path (Path): A .spacy file with gold entities and KB ids.
    lang (str): Language of the vocab.
    normalize (bool): Use the normalized alias fallback, as the linker does by default.
    RETURNS (Dict[str, Any]): The linker's metrics for the baseline.
    """
    nlp = spacy.blank(lang)
    kb = InMemoryLookupKB(nlp.vocab, entity_vector_length=1)
    kb.from_disk(kb_path)
    generate = CandidateGenerator(normalize=normalize)
    examples = []
    for ref in DocBin().from_disk(data_path).get_docs(nlp.vocab):
        pred = ref.copy()
        for ent in pred.ents:
            ranked = sorted(generate(kb, ent), key=lambda c: (-c.prior, c.entity))
            for token in ent:
                token.ent_kb_id_ = ranked[0].entity if ranked else NIL
            ent._.kb_candidates = [(c.entity, c.prior) for c in ranked]
            ent._.kb_score = ranked[0].prior if ranked else 1.0
        examples.append(Example(pred, ref))
    return score_links(examples)
