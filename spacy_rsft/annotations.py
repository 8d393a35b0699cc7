"""What an entity link looks like on a doc, shared by the linker, its scorer, the prior
baseline and the converters (which import nothing else from each other).

- `ent.kb_id_`: the linked KB entity, or `NIL` when the entity is not in the KB.
- `ent._.kb_score`: the probability of the chosen outcome.
- `ent._.kb_candidates`: every candidate as (kb_id, probability), best first.
"""
from spacy.tokens import Span

# The gold and predicted kb_id of a mention whose entity is not in the knowledge base.
NIL = "NIL"

LINK_EXTENSIONS = ("kb_score", "kb_candidates")

# Registered on import, so that whoever imports NIL (the scorer reading predictions, the
# baseline writing them) can use the extensions without importing the linker.
for _name in LINK_EXTENSIONS:
    if not Span.has_extension(_name):
        Span.set_extension(_name, default=None)
