"""BILUO tag set, valid-transition constraints and constrained Viterbi decoding.

Tags are ordered "O", then B-, I-, L-, U- for each label. Decoding only ever follows valid
transitions (B/I must continue into I/L of the same label; a sequence cannot start inside an
entity or end in the middle of one), so the decoded tags always form a valid,
non-overlapping entity set.
"""
from typing import List, Sequence, Tuple

import numpy

BILUO_PREFIXES = ("B", "I", "L", "U")


def tag_names(labels: Sequence[str]) -> List[str]:
    """The tag list for a label set.

    labels (Sequence[str]): Entity labels.
    RETURNS (List[str]): "O" followed by B-/I-/L-/U- tags of each label.
    """
    return ["O"] + [f"{prefix}-{label}" for label in labels for prefix in BILUO_PREFIXES]


def _split(tag: str) -> Tuple[str, str]:
    return ("O", "") if tag == "O" else (tag[0], tag[2:])


def transition_mask(tags: Sequence[str]) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """Allowed transitions between tags.

    tags (Sequence[str]): The tag list.
    RETURNS (Tuple[ndarray, ndarray, ndarray]): allowed[prev, next] (bool, T x T), allowed
        first tags (T,), allowed last tags (T,).
    """
    n = len(tags)
    allowed = numpy.zeros((n, n), dtype=bool)
    start = numpy.zeros((n,), dtype=bool)
    end = numpy.zeros((n,), dtype=bool)
    for j, tag in enumerate(tags):
        prefix, label = _split(tag)
        start[j] = prefix in ("O", "B", "U")
        end[j] = prefix in ("O", "L", "U")
        for i, prev in enumerate(tags):
            prev_prefix, prev_label = _split(prev)
            if prev_prefix in ("B", "I"):
                # Inside an entity: only continue it.
                allowed[i, j] = prefix in ("I", "L") and label == prev_label
            else:
                # Outside an entity: only start a new one or stay outside.
                allowed[i, j] = prefix in ("O", "B", "U")
    return allowed, start, end


def constrained_viterbi(
    log_probs: numpy.ndarray,
    allowed: numpy.ndarray,
    start: numpy.ndarray,
    end: numpy.ndarray,
) -> numpy.ndarray:
    """The highest-scoring valid tag sequence of one doc. `rsft_ner` decodes with
    `constrained_viterbi_batch`; this plain form is kept as the reference it is tested
    against (and for callers decoding a single doc).

    log_probs (ndarray): (n_tokens, n_tags) log-probabilities of each tag.
    allowed, start, end (ndarray): From `transition_mask`.
    RETURNS (ndarray): (n_tokens,) tag indices.
    """
    n_tokens, n_tags = log_probs.shape
    if n_tokens == 0:
        return numpy.zeros((0,), dtype="int64")
    penalty = numpy.where(allowed, 0.0, -numpy.inf)
    score = numpy.where(start, log_probs[0], -numpy.inf)
    back = numpy.zeros((n_tokens, n_tags), dtype="int64")
    for t in range(1, n_tokens):
        candidates = score[:, None] + penalty
        back[t] = candidates.argmax(axis=0)
        score = candidates[back[t], numpy.arange(n_tags)] + log_probs[t]
    score = numpy.where(end, score, -numpy.inf)
    path = numpy.zeros((n_tokens,), dtype="int64")
    path[-1] = int(score.argmax())
    for t in range(n_tokens - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def constrained_viterbi_batch(
    log_probs: Sequence[numpy.ndarray],
    allowed: numpy.ndarray,
    start: numpy.ndarray,
    end: numpy.ndarray,
) -> List[numpy.ndarray]:
    """`constrained_viterbi` of several docs at once: the same paths, from one loop over the
    positions of the longest doc instead of one loop per doc. Per token, numpy's call
    overhead, not the arithmetic, was the cost (a batch of `nlp.pipe` is grouped by length,
    so little is spent on positions past a shorter doc's end).

    log_probs (Sequence[ndarray]): (n_tokens, n_tags) log-probabilities of each doc.
    allowed, start, end (ndarray): From `transition_mask`.
    RETURNS (List[ndarray]): (n_tokens,) int64 tag indices of each doc.
    """
    lengths = numpy.asarray([len(lp) for lp in log_probs], dtype="int64")
    n_docs, n_tags, max_len = len(lengths), allowed.shape[0], int(lengths.max(initial=0))
    if max_len == 0:
        return [numpy.zeros((0,), dtype="int64") for _ in range(n_docs)]
    # float64, as in constrained_viterbi (its first sum promotes to it): the same ties
    stacked = numpy.zeros((max_len, n_docs, n_tags), dtype="float64")
    for d, lp in enumerate(log_probs):
        stacked[: len(lp), d] = lp
    penalty = numpy.where(allowed, 0.0, -numpy.inf)
    score = numpy.where(start, stacked[0], -numpy.inf)  # (n_docs, n_tags)
    back = numpy.zeros((max_len, n_docs, n_tags), dtype="int64")
    for t in range(1, max_len):
        candidates = score[:, :, None] + penalty  # (doc, previous tag, tag)
        back[t] = candidates.argmax(axis=1)
        best = numpy.take_along_axis(candidates, back[t][:, None, :], axis=1)[:, 0, :] + stacked[t]
        score = numpy.where((t < lengths)[:, None], best, score)  # an ended doc keeps its scores
    current = numpy.where(end, score, -numpy.inf).argmax(axis=1)
    paths = numpy.zeros((n_docs, max_len), dtype="int64")
    docs = numpy.arange(n_docs)
    paths[docs, numpy.maximum(lengths - 1, 0)] = current
    for t in range(max_len - 1, 0, -1):
        inside = t < lengths  # t is at or before the doc's last token
        previous = back[t, docs, current]
        paths[docs[inside], t - 1] = previous[inside]
        current = numpy.where(inside, previous, current)
    return [paths[d, : lengths[d]] for d in range(n_docs)]


def spans_from_tags(tags: Sequence[str]) -> List[Tuple[int, int, str]]:
    """Entity spans of a valid BILUO sequence.

    tags (Sequence[str]): A valid BILUO sequence.
    RETURNS (List[Tuple[int, int, str]]): (start, end, label), end exclusive.
    """
    spans = []
    begin = 0
    for i, tag in enumerate(tags):
        prefix, label = _split(tag)
        if prefix == "U":
            spans.append((i, i + 1, label))
        elif prefix == "B":
            begin = i
        elif prefix == "L":
            spans.append((begin, i + 1, label))
    return spans
