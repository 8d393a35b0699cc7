"""The ranking features of `rsft_entity_linker`, beside the mention-entity vector product.

Scalar features, each with one learned weight (`feature_weights.W`):
- `log_prior`: log p(e|m) from the KB's alias table (or the candidate set);
- `match`: how the alias matched (1.0 exact, 0.9 normalized, the similarity for fuzzy);
- `popularity`: log(1 + frequency) of the entity, over the largest in the KB, so in [0, 1];
- `coherence`: cosine between the candidate's entity vector and the expected entity vector
  of the document's other mentions under a first pass of the model (the other mentions'
  candidates weighted by their probabilities). A second pass adds it to every score.

And one learned table (`feature_weights.T`):
- `type`: a bias for each pair of mention label (the NER label) and entity type (the KB's
  coarse type, from build-kb's `type` column), so the model learns, for example, that a PER
  mention rarely links to a GPE entity. Nothing is hand-mapped: unknown labels and types
  share a row and a column of their own.

And one read from the mention's context:
- `context_type`: the mention encoder predicts a score for each entity type from the
  mention's own representation (its words, window and, with `doc_context`, its document),
  added to every candidate of that type. `type` knows only the label, and CoNLL tags
  "Scotland" LOC whether the country or its national team is meant; the words around it (a
  match report) tell which, and the type of the entity (country or team) is what they tell.
  The scores are extra outputs of the encoder's projection, trained with the rest (entity
  typing from context, as ReFinED does it, with the ranking loss alone).

Every feature starts with weight 0 except `log_prior` and `match` (1), so an untrained linker
ranks by the prior, whatever features are on.
"""
import math
from typing import Dict, Iterable, List, Optional, Sequence

import numpy
from spacy.kb import KnowledgeBase

from ..errors import Errors
from ..kb.candidates import Candidate

SCALAR_FEATURES = ("log_prior", "match", "popularity", "coherence")
TABLE_FEATURES = ("type", "context_type")  # features that read the entity types
FEATURES = SCALAR_FEATURES + TABLE_FEATURES
# What a pipeline trained before features were configurable used.
LEGACY_FEATURES = ["log_prior", "match"]
# `type` is opt-in: it needs an entities file with types at initialize.
DEFAULT_FEATURES = ["log_prior", "match", "popularity", "coherence"]
MIN_PRIOR = 1e-4
UNKNOWN = ""  # index 0 of the label and type vocabularies


def check_features(name: str, features: Sequence[str]) -> List[str]:
    """The feature list, checked: known names, no repeats, `log_prior` and `match` first
    when present (their initial weight is 1)."""
    features = list(features)
    bad = [f for f in features if f not in FEATURES]
    if bad or len(set(features)) != len(features):
        raise ValueError(Errors.E008.format(name=name, setting="features", value=features,
                                            options=f"distinct names out of {list(FEATURES)}"))
    return features


def scalar_features(features: Sequence[str]) -> List[str]:
    return [f for f in features if f in SCALAR_FEATURES]


def initial_weights(features: Sequence[str]) -> numpy.ndarray:
    """1 for the prior and the match, 0 for the rest: an untrained model ranks by the prior."""
    return numpy.asarray([1.0 if f in ("log_prior", "match") else 0.0 for f in scalar_features(features)], dtype="float32")


class EntityTable:
    """What the ranking knows of each entity beyond its vector: popularity and coarse type."""

    def __init__(self, frequency: Optional[Dict[str, float]] = None, types: Optional[Dict[str, str]] = None) -> None:
        self.frequency = dict(frequency or {})
        self.types = dict(types or {})
        self.type_names = [UNKNOWN] + sorted({t for t in self.types.values() if t != UNKNOWN})
        self._type_index = {t: i for i, t in enumerate(self.type_names)}
        top = max(self.frequency.values(), default=0.0)
        self._log_top = math.log1p(top) if top > 0 else 1.0

    @classmethod
    def from_file(cls, path, kb: KnowledgeBase) -> "EntityTable":
        """Read an entities file (build-kb's input or its `entities.jsonl`: `id`, optional
        `frequency` and `type`), keeping the entities of the KB."""
        from pathlib import Path

        from ..kb.builder import Problems, read_entities

        records = read_entities(Path(path), Problems(skip=False))
        records = [r for r in records if kb.contains_entity(r.id)]
        return cls({r.id: r.frequency for r in records}, {r.id: r.type for r in records if r.type})

    @classmethod
    def from_kb(cls, kb: KnowledgeBase) -> "EntityTable":
        """Frequencies from the KB itself (spaCy's candidates carry the entity frequency);
        no types. Entities that no alias names keep frequency 0."""
        frequency: Dict[str, float] = {}
        get_aliases = getattr(kb, "get_alias_strings", None)
        for alias in get_aliases() if get_aliases is not None else []:
            for cand in kb.get_alias_candidates(alias):
                frequency[cand.entity_] = float(cand.entity_freq)
        return cls(frequency)

    def to_dict(self) -> dict:
        return {"frequency": self.frequency, "types": self.types}

    @classmethod
    def from_dict(cls, data: dict) -> "EntityTable":
        return cls(data.get("frequency"), data.get("types"))

    def popularity(self, entity: str) -> float:
        return math.log1p(max(self.frequency.get(entity, 0.0), 0.0)) / self._log_top

    def type_index(self, entity: str) -> int:
        return self._type_index.get(self.types.get(entity, UNKNOWN), 0)


class EntityVectors:
    """The KB's entity vectors as float32 rows, each entity's converted once.

    `KnowledgeBase.get_vector` returns a Python list of floats, so building a mention's
    candidate matrix from it made about 19,000 Python floats per mention (50 candidates of 384
    dimensions), for every mention of every update and every prediction: 1.4 ms a mention
    against 0.16 ms from cached rows (a 5,000-entity KB, 50 candidates, one thread, beside
    other work). The rows of the entities seen are kept: at most the KB's vectors once more
    (56 MB for AIDA's 36,545 entities at 384 dimensions).
    """

    def __init__(self, kb: KnowledgeBase, length: int) -> None:
        self.kb = kb
        self.length = length
        self._rows: Dict[str, numpy.ndarray] = {}

    def of(self, entities: Sequence[str]) -> numpy.ndarray:
        """The (len(entities), length) matrix of their vectors."""
        if not entities:
            return numpy.zeros((0, self.length), dtype="float32")
        return numpy.stack([self._row(entity) for entity in entities])

    def _row(self, entity: str) -> numpy.ndarray:
        row = self._rows.get(entity)
        if row is None:
            row = numpy.asarray(self.kb.get_vector(entity), dtype="float32").reshape(self.length)
            self._rows[entity] = row
        return row


class MentionFeatures:
    """The inputs of one mention's scores: candidate vectors, scalar features (one column per
    scalar feature, coherence filled in by the second pass), label and candidate types."""

    __slots__ = ("vectors", "feats", "label", "types", "key")

    def __init__(self, vectors: numpy.ndarray, feats: numpy.ndarray, label: int, types: numpy.ndarray, key: str) -> None:
        self.vectors = vectors
        self.feats = feats
        self.label = label
        self.types = types
        self.key = key


def mention_features(
    entity_vectors: EntityVectors, table: EntityTable, features: Sequence[str], candidates: List[Candidate],
    label: int, key: str,
) -> MentionFeatures:
    """Vectors, scalar features (coherence 0 for now), and candidate types of one mention."""
    columns = scalar_features(features)
    vectors = entity_vectors.of([c.entity for c in candidates])
    feats = numpy.zeros((len(candidates), len(columns)), dtype="float32")
    for j, name in enumerate(columns):
        if name == "log_prior":
            feats[:, j] = [math.log(max(c.prior, MIN_PRIOR)) for c in candidates]
        elif name == "match":
            feats[:, j] = [c.match for c in candidates]
        elif name == "popularity":
            feats[:, j] = [table.popularity(c.entity) for c in candidates]
    types = numpy.asarray([table.type_index(c.entity) for c in candidates], dtype="int64")
    return MentionFeatures(vectors, feats, label, types, key)


def _softmax(x: numpy.ndarray) -> numpy.ndarray:
    e = numpy.exp(x - x.max())
    return e / e.sum()


def n_outputs(length: int, features: Sequence[str], n_types: int) -> int:
    """The mention encoder's output width: the entity-space vector, the NIL logit and, with
    `context_type`, one score per entity type."""
    return length + 1 + (n_types if "context_type" in features else 0)


def score_document(
    mentions: List[MentionFeatures], outputs: numpy.ndarray, W: numpy.ndarray,
    T: Optional[numpy.ndarray], features: Sequence[str], length: int,
) -> List[numpy.ndarray]:
    """Raw scores of each mention's candidates + NIL (last), for the mentions of one document.

    With `coherence` on, a first pass scores every mention without it; each mention's
    context is then the sum of the other mentions' expected entity vectors (mentions with the
    same text left out, so a name does not vote for itself), and the second pass adds
    W_coherence * cos(candidate vector, context). The coherence column of `feats` is filled
    in place, so the gradient of its weight is grad @ feats as for the other features.

    mentions (List[MentionFeatures]): The document's mentions (those with candidates).
    outputs (ndarray): The mention encoder's rows for them: entity-space vector, NIL logit
        and, with `context_type`, the type scores.
    W (ndarray): Scalar feature weights. T (Optional[ndarray]): Label x type biases.
    features (Sequence[str]): The features in use.
    length (int): The entity vector length (the outputs' width is not enough to tell it once
        type scores follow the NIL logit).
    RETURNS (List[ndarray]): Raw scores per mention.
    """
    with_context_type = "context_type" in features
    raws = []
    for m, row in zip(mentions, outputs):
        scores = m.vectors @ row[:length] + m.feats @ W
        if T is not None and "type" in features:
            scores = scores + T[m.label, m.types]
        if with_context_type:
            scores = scores + row[length + 1 + m.types]
        raws.append(numpy.append(scores, row[length]))
    columns = scalar_features(features)
    if "coherence" not in columns or len(mentions) < 2:
        return raws
    col = columns.index("coherence")
    expected = numpy.vstack([_softmax(raw)[:-1] @ m.vectors for m, raw in zip(mentions, raws)])
    # context of a mention = all expected vectors minus those of the mentions with its text
    by_key: Dict[str, numpy.ndarray] = {}
    for m, e in zip(mentions, expected):
        by_key[m.key] = by_key.get(m.key, 0.0) + e
    total = expected.sum(axis=0)
    for i, m in enumerate(mentions):
        context = total - by_key[m.key]
        norm = float(numpy.linalg.norm(context))
        if norm == 0.0:
            continue
        cos = (m.vectors @ context) / (numpy.linalg.norm(m.vectors, axis=1) * norm + 1e-8)
        m.feats[:, col] = cos
        raws[i][:-1] += W[col] * cos
    return raws


def type_vocab(labels: Iterable[str]) -> List[str]:
    """The mention-label vocabulary: unknown first, then the labels sorted."""
    return [UNKNOWN] + sorted({label for label in labels if label != UNKNOWN})
