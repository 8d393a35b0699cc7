"""Prior-only entity-linking baseline: link each mention to its candidate with the highest
prior p(e|m) (ties by id), NIL when it has no candidate. Scored with
the same scorer as `rsft_entity_linker`, on the gold entities."""
from pathlib import Path
from typing import Any, Dict, Optional

import spacy
from spacy.kb import InMemoryLookupKB
from spacy.tokens import DocBin
from spacy.training import Example

from ..annotations import NIL
from ..errors import Errors
from ..scorers import score_links
from .builder import ENTITIES_FILENAME
from .candidates import CandidateGenerator, DocCandidateGenerator


def prior_baseline(
    kb_path: Path, data_path: Path, lang: str = "en", normalize: bool = True,
    doc_candidates: Optional[Path] = None, by: str = "prior",
) -> Dict[str, Any]:
    """Score the prior baseline.

    kb_path (Path): A KB directory (kb.to_disk / build-kb's `kb/`).
    data_path (Path): A .spacy file with gold entities and KB ids.
    lang (str): Language of the vocab.
    normalize (bool): Use the normalized alias fallback, as the linker does by default.
    doc_candidates (Optional[Path]): Per-document candidate sets (`spacy-rsft.doc_candidates.v1`).
    by (str): "prior" (p(e|m), ties by id) or "frequency" (the KB's entity frequency,
        e.g. Wikipedia in-links).
    RETURNS (Dict[str, Any]): The linker's metrics for the baseline.
    """
    if by not in ("prior", "frequency"):
        raise ValueError(Errors.E315.format(by=by))
    nlp = spacy.blank(lang)
    kb = InMemoryLookupKB(nlp.vocab, entity_vector_length=1)
    kb.from_disk(kb_path)
    generate = CandidateGenerator(normalize=normalize)
    if doc_candidates is not None:
        generate = DocCandidateGenerator(str(doc_candidates), generate)
    freqs = _frequencies(Path(kb_path)) if by == "frequency" else {}

    def rank(candidates):
        if by == "frequency":
            return sorted(candidates, key=lambda c: (-freqs.get(c.entity, 0), c.entity))
        return sorted(candidates, key=lambda c: (-c.prior, c.entity))

    examples = []
    for ref in DocBin().from_disk(data_path).get_docs(nlp.vocab):
        pred = ref.copy()
        for ent in pred.ents:
            ranked = rank(generate(kb, ent))
            for token in ent:
                token.ent_kb_id_ = ranked[0].entity if ranked else NIL
            ent._.kb_candidates = [(c.entity, c.prior) for c in ranked]
            ent._.kb_score = ranked[0].prior if ranked else 1.0
        examples.append(Example(pred, ref))
    return score_links(examples)


def _frequencies(kb_path: Path) -> Dict[str, float]:
    # spaCy's KB API has no frequency getter: build-kb writes them beside the KB.
    import srsly

    path = kb_path.parent / ENTITIES_FILENAME
    if not path.exists():
        raise ValueError(Errors.E314.format(path=path))
    return {row["id"]: float(row["frequency"]) for row in srsly.read_jsonl(path)}
