"""Units of rejection: what the reader accepts or rejects each epoch.

Label noise lives in sentences and entity spans, not in documents: under NoiseBench's distant
labels 54% of the sentences are entirely correct but only 1% of the articles. So the reader can
sample finer units than its examples:

- `example`: the whole example (a document), as spaCy's corpora give it.
- `sentence`: each sentence of the reference doc.
- `span`: each gold entity span, and each token outside the gold entities. Entity and
  non-entity units are ranked apart (a rare label is not rejected for being rare, and a
  missing entity shows up as one high-loss "outside" token).

With `context = "document"` the examples stay whole and a rejected unit is masked out of the
loss: its tokens' entity annotation becomes missing (spaCy's "-" tag), which every NER
component, spaCy's own `ner` included, leaves out of its loss and gradient. The masked example
keeps its unmasked reference (`spacy_rsft.ty.unmasked_reference`), so the component still records the loss
of the rejected units' tokens against their labels from the same forward pass, without a
gradient: every unit is re-scored every epoch, and a unit rejected once on a stale loss is
not rejected forever. With
`context = "sentence"` (unit `sentence` only) the accepted sentences themselves are the
training examples: less context, less compute.

A unit's loss pools the losses of its tokens, from the per-token losses a component records
during its update (`TokenLossRecorder`) or computes in the fresh scoring pass: their mean
(`unit_loss = "mean"`) or their maximum (`"max"`). For sentences, the tokens that count can be
limited to those outside the gold entities (`loss_tokens = "outside"`). Why both exist: a
sentence whose labels miss one entity has one or two high-loss "O" tokens among twenty easy
ones, so its mean loss looks like a clean sentence's, and its entity tokens' losses are high
whenever an entity is hard, noisy or not. On NoiseBench's distant labels, at the second sampled
epoch, the AUROC of the sentence loss for "the sentence's labels differ from the clean ones" is
0.68 for the mean over all tokens, 0.74 for their maximum and 0.89 for the maximum over the
tokens outside the gold entities.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy
from spacy.tokens import Doc
from spacy.training import Example

from ..ty import UNMASKED_KEY

UNITS = ("example", "sentence", "span")
UNIT_LOSSES = ("mean", "max")
# The tokens whose losses make a sentence's loss: all, those outside the gold entities (the
# evidence of a missing entity), or those inside them.
LOSS_TOKENS = ("all", "outside", "entity")
CONTEXTS = ("document", "sentence")
# Which span units may be rejected: all of them, only the tokens outside the gold entities
# (missing entities: the noise of distant and crowd labels), or only the gold entity spans
# (spurious or mislabeled entities). The others are always accepted.
SPAN_KINDS = ("both", "outside", "entity")


@dataclass
class UnitTable:
    """Every unit of a corpus, as parallel arrays (token offsets are of the reference doc)."""

    example: numpy.ndarray  # int: the example each unit belongs to
    start: numpy.ndarray  # int: first token
    end: numpy.ndarray  # int: one past the last token
    entity: numpy.ndarray  # bool: a gold entity span (ranked apart from the rest)
    labels: List[List[str]] = field(default_factory=list)  # entity labels in the unit

    def __len__(self) -> int:
        return int(self.example.shape[0])

    def to_json(self) -> Dict[str, list]:
        return {
            "example": self.example.tolist(),
            "start": self.start.tolist(),
            "end": self.end.tolist(),
            "entity": self.entity.astype(int).tolist(),
        }


def build_units(references: Sequence[Doc], unit: str) -> UnitTable:
    """The units of a corpus, in corpus order.

    references (Sequence[Doc]): The reference (gold) docs.
    unit (str): "example", "sentence" or "span".
    RETURNS (UnitTable): The units.
    """
    rows: List[tuple] = []
    for i, doc in enumerate(references):
        if unit == "example":
            rows.append((i, 0, len(doc), False, _labels(doc, 0, len(doc))))
            continue
        for sent in sentences(doc):
            if unit == "sentence":
                rows.append((i, sent.start, sent.end, False, _labels(doc, sent.start, sent.end)))
                continue
            inside = numpy.zeros((len(doc),), dtype=bool)
            for ent in doc.ents:
                if sent.start <= ent.start and ent.end <= sent.end:
                    rows.append((i, ent.start, ent.end, True, [ent.label_]))
                    inside[ent.start : ent.end] = True
            for t in range(sent.start, sent.end):
                if not inside[t] and doc[t].ent_iob_ != "":  # "" = annotation missing
                    rows.append((i, t, t + 1, False, []))
    rows.sort(key=lambda r: (r[0], r[1], not r[3]))
    return UnitTable(
        example=numpy.asarray([r[0] for r in rows], dtype="int64"),
        start=numpy.asarray([r[1] for r in rows], dtype="int64"),
        end=numpy.asarray([r[2] for r in rows], dtype="int64"),
        entity=numpy.asarray([r[3] for r in rows], dtype=bool),
        labels=[r[4] for r in rows],
    )


def sentences(doc: Doc):
    """The doc's sentences, or the whole doc as one when it has no sentence boundaries."""
    return list(doc.sents) if doc.has_annotation("SENT_START") else [doc[:]]


def _labels(doc: Doc, start: int, end: int) -> List[str]:
    return sorted({ent.label_ for ent in doc.ents if start <= ent.start and ent.end <= end})


def unit_losses(
    table: UnitTable,
    token_losses: Dict[int, numpy.ndarray],
    previous: numpy.ndarray,
    pool: str = "mean",
    counted: Optional[Dict[int, numpy.ndarray]] = None,
) -> numpy.ndarray:
    """Each unit's pooled token loss, from the latest per-token losses of its example; a unit
    none of whose (counted) tokens was scored keeps its previous loss (NaN if it never had one).

    table (UnitTable): The units.
    token_losses (Dict[int, ndarray]): Example index -> one loss per reference token, NaN
        where the token was not scored (masked, misaligned, no gold tag).
    previous (ndarray): The units' losses so far.
    pool (str): "mean" or "max" of the unit's token losses.
    counted (Optional[Dict[int, ndarray]]): Example index -> which tokens count (see
        `loss_token_mask`); None: all of them.
    RETURNS (ndarray): The updated losses.
    """
    reduce = numpy.max if pool == "max" else numpy.mean
    out = previous.copy()
    for u in range(len(table)):
        example = int(table.example[u])
        losses = token_losses.get(example)
        if losses is None:
            continue
        values = losses[table.start[u] : table.end[u]]
        keep = ~numpy.isnan(values)
        if counted is not None:
            keep &= counted[example][table.start[u] : table.end[u]]
        if keep.any():
            out[u] = float(reduce(values[keep]))
    return out


def loss_token_mask(doc: Doc, loss_tokens: str) -> numpy.ndarray:
    """Which tokens' losses count towards a unit's loss.

    doc (Doc): The reference doc.
    loss_tokens (str): "all", "outside" (tokens outside the gold entities, with annotation)
        or "entity" (tokens inside them).
    RETURNS (ndarray): One bool per token.
    """
    inside = numpy.zeros((len(doc),), dtype=bool)
    for ent in doc.ents:
        inside[ent.start : ent.end] = True
    if loss_tokens == "entity":
        return inside
    if loss_tokens == "outside":
        annotated = numpy.asarray([token.ent_iob_ != "" for token in doc], dtype=bool)
        return ~inside & annotated
    return numpy.ones((len(doc),), dtype=bool)


def masked_example(example: Example, rejected: Sequence[tuple]) -> Example:
    """The example with the entity annotation of the rejected token ranges set to missing,
    so no NER component learns from them; the text and the rest of the gold stay.

    example (Example): The training example.
    rejected (Sequence[tuple]): (start, end) reference token ranges to leave out.
    RETURNS (Example): A new example (the original is not changed).
    """
    if not rejected:
        return example
    reference = example.reference.copy()
    drop = rejected_tokens(reference, rejected)
    kept = [ent for ent in reference.ents if not drop[ent.start : ent.end].any()]
    reference.set_ents(kept, missing=[reference[s:e] for s, e in _runs(drop)], default="unmodified")
    reference.user_data[UNMASKED_KEY] = example.reference
    return Example(example.predicted, reference)



def rejected_tokens(reference: Doc, rejected: Sequence[tuple]) -> numpy.ndarray:
    """Which tokens of the reference the rejected (start, end) ranges cover, widened so that
    a gold entity crossing a range goes whole (no half entities are left to learn from)."""
    covered = numpy.zeros((len(reference),), dtype=bool)
    for start, end in rejected:
        covered[start:end] = True
    for ent in reference.ents:
        if covered[ent.start : ent.end].any():
            covered[ent.start : ent.end] = True
    return covered


def relabeled_example(
    example: Example, rejected: Sequence[tuple], predicted: Doc, predicted_outside: bool = True
) -> Tuple[Example, Dict[str, int]]:
    """The example with the entity annotation of the rejected token ranges replaced by the
    entities a model predicted there: where masking only stops the noisy labels teaching,
    relabeling teaches the model's own reading of those sentences (self-training). As in
    `masked_example`, a gold entity crossing a rejected range goes whole; a predicted entity
    that reaches outside the relabeled tokens, or does not align with the reference tokens,
    leaves its tokens there missing; the other relabeled tokens are outside ("O"), or, with
    `predicted_outside` False, missing too (the model's entities teach, its misses do not). The
    reference keeps the unrelabeled one under UNMASKED_KEY, so the unit's loss is still
    recorded against its own labels. Relabeled entities have no KB id (a linker does not
    train on them).

    example (Example): The training example.
    rejected (Sequence[tuple]): (start, end) reference token ranges to relabel.
    predicted (Doc): The example's text as the model annotated it (any tokenization).
    predicted_outside (bool): Whether the relabeled tokens outside the predicted entities
        are labelled "O" (True) or left missing (False).
    RETURNS (Tuple[Example, Dict[str, int]]): A new example (the original is not changed),
        and counts: "entities" placed, "missing_tokens" left out.
    """
    if not rejected:
        return example, {"entities": 0, "missing_tokens": 0}
    reference = example.reference.copy()
    relabel = rejected_tokens(reference, rejected)
    kept = [ent for ent in reference.ents if not relabel[ent.start : ent.end].any()]
    placed, missing = [], numpy.zeros((len(reference),), dtype=bool)
    for ent in predicted.ents:
        span = reference.char_span(ent.start_char, ent.end_char, label=ent.label_)
        if span is not None and relabel[span.start : span.end].all():
            placed.append(span)
            continue
        covered = reference.char_span(ent.start_char, ent.end_char, alignment_mode="expand")
        if covered is not None:
            missing[covered.start : covered.end] |= relabel[covered.start : covered.end]
    # a placed entity sharing a token with a misaligned one (tokenizations differ) goes too
    clashing = [span for span in placed if missing[span.start : span.end].any()]
    for span in clashing:
        missing[span.start : span.end] = True
    placed = [span for span in placed if not missing[span.start : span.end].any()]
    outside = relabel & ~missing
    for span in placed:
        outside[span.start : span.end] = False
    if not predicted_outside:  # only the predicted entities teach; the rest stays unknown
        missing |= outside
        outside[:] = False
    reference.set_ents(
        kept + placed,
        missing=[reference[s:e] for s, e in _runs(missing)],
        outside=[reference[s:e] for s, e in _runs(outside)],
        default="unmodified",
    )
    reference.user_data[UNMASKED_KEY] = example.reference
    return Example(example.predicted, reference), {"entities": len(placed), "missing_tokens": int(missing.sum())}


def _runs(mask: numpy.ndarray) -> List[tuple]:
    """(start, end) of every run of True."""
    edges = numpy.diff(numpy.concatenate([[0], mask.astype(int), [0]]))
    return list(zip(numpy.flatnonzero(edges == 1), numpy.flatnonzero(edges == -1)))
