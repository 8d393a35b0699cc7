"""Calibrated confidences: expected calibration error, reliability bins, and temperature
scaling (Guo et al. 2017) fitted on held-out data.

A component's probabilities are calibrated when, of the outcomes it gives probability ~0.9,
~90% are right. Both rsft components keep one temperature T in their cfg (1.0 until
calibrated), saved with the pipeline:
- `rsft_entity_linker`: probabilities = softmax(scores / T) over candidates + NIL; T is fitted
  by minimizing the held-out negative log-likelihood of the gold outcome.
- `rsft_ner`: the decoded entities do not change; an entity's confidence, the probability
  that each of its tokens gets its tag, is computed from log_softmax(log-probs / T). T is
  fitted by minimizing the held-out binary cross-entropy of the confidences against whether
  each predicted entity is right (exact span and label), since that is the number users
  threshold.
`python -m spacy_rsft calibrate` fits both on a held-out DocBin and writes the pipeline.
"""
import math
from typing import Callable, Dict, List, Sequence, Tuple

import numpy

LOG_T_RANGE = (math.log(0.05), math.log(20.0))
N_BINS = 10


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = N_BINS) -> float:
    """ECE: the mean |accuracy - confidence| over equal-width confidence bins, weighted by
    how many outcomes fall in each.

    confidences (Sequence[float]): Probabilities in [0, 1].
    correct (Sequence[bool]): Whether each outcome was right.
    RETURNS (float): The ECE (0 when there is nothing to score).
    """
    conf = numpy.asarray(confidences, dtype="float64")
    hits = numpy.asarray(correct, dtype="float64")
    if conf.size == 0:
        return 0.0
    total = 0.0
    for lo, hi, in_bin in _bins(conf, n_bins):
        if in_bin.any():
            total += in_bin.sum() * abs(hits[in_bin].mean() - conf[in_bin].mean())
    return float(total / conf.size)


def reliability_bins(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = N_BINS) -> List[Dict[str, float]]:
    """Per bin: its range, the outcomes in it, their mean confidence and accuracy (for a
    reliability plot).

    RETURNS (List[Dict[str, float]]): One dict per non-empty bin.
    """
    conf = numpy.asarray(confidences, dtype="float64")
    hits = numpy.asarray(correct, dtype="float64")
    out = []
    for lo, hi, in_bin in _bins(conf, n_bins):
        if in_bin.any():
            out.append({"lo": lo, "hi": hi, "count": int(in_bin.sum()),
                        "confidence": float(conf[in_bin].mean()), "accuracy": float(hits[in_bin].mean())})
    return out


def _bins(conf: numpy.ndarray, n_bins: int):
    edges = numpy.linspace(0.0, 1.0, n_bins + 1)
    for i in range(n_bins):
        lo, hi = float(edges[i]), float(edges[i + 1])
        # the first bin includes 0, every bin includes its upper edge
        in_bin = (conf > lo) & (conf <= hi) if i else (conf >= lo) & (conf <= hi)
        yield lo, hi, in_bin


def fit_temperature(loss: Callable[[float], float], iterations: int = 40) -> float:
    """The temperature in [0.05, 20] that minimizes `loss(T)`, by golden-section search on
    log T (the held-out NLL of temperature scaling is smooth and unimodal in practice).

    loss (Callable[[float], float]): Held-out loss at temperature T.
    iterations (int): Search steps (40 narrow the range by a factor of ~1e8).
    RETURNS (float): The fitted temperature.
    """
    golden = (math.sqrt(5) - 1) / 2
    lo, hi = LOG_T_RANGE
    a, b = hi - golden * (hi - lo), lo + golden * (hi - lo)
    fa, fb = loss(math.exp(a)), loss(math.exp(b))
    for _ in range(iterations):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - golden * (hi - lo)
            fa = loss(math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + golden * (hi - lo)
            fb = loss(math.exp(b))
    return float(math.exp((lo + hi) / 2))


def log_softmax(x: numpy.ndarray) -> numpy.ndarray:
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - numpy.log(numpy.exp(shifted).sum(axis=-1, keepdims=True))


def link_nll(outcomes: List[Tuple[numpy.ndarray, int]], temperature: float) -> float:
    """Mean negative log-likelihood of the gold outcome of each mention at temperature T.

    outcomes (List[Tuple[ndarray, int]]): Raw scores (candidates + NIL) and the gold index.
    """
    if not outcomes:
        return 0.0
    return float(-numpy.mean([log_softmax(raw / temperature)[gold] for raw, gold in outcomes]))


def entity_confidence(log_probs: numpy.ndarray, tags: numpy.ndarray, temperature: float) -> float:
    """The probability that every token of an entity gets its tag, at temperature T.

    log_probs (ndarray): The entity's tokens' tag log-probabilities (n_tokens, n_tags).
    tags (ndarray): The decoded tag of each token.
    """
    scaled = log_softmax(log_probs / temperature)
    return float(numpy.exp(scaled[numpy.arange(len(tags)), tags].sum()))


def entity_confidences(
    log_probs: numpy.ndarray, tags: numpy.ndarray, spans: Sequence[Tuple[int, int]], temperature: float
) -> numpy.ndarray:
    """`entity_confidence` of each entity of one doc, from one log-softmax over all its
    tokens (it is per token, so the numbers are the same; per entity, the setup cost more
    than the arithmetic, a tenth of `rsft_ner`'s inference time on 2 cores).

    log_probs (ndarray): The doc's tag log-probabilities (n_tokens, n_tags).
    tags (ndarray): The decoded tag of each token of the doc.
    spans (Sequence[Tuple[int, int]]): (start, end) of each entity, end exclusive.
    RETURNS (ndarray): float32 confidences, one per span.
    """
    if not len(spans):
        return numpy.zeros((0,), dtype="float32")
    scaled = log_softmax(log_probs / temperature)
    # float64 running sums, so that a difference of two is exact to far below float32
    token_log_probs = numpy.concatenate(([0.0], numpy.cumsum(scaled[numpy.arange(len(tags)), tags], dtype="float64")))
    starts, ends = numpy.asarray(spans, dtype="int64").T
    return numpy.exp(token_log_probs[ends] - token_log_probs[starts]).astype("float32")


def entity_bce(outcomes: List[Tuple[numpy.ndarray, numpy.ndarray, bool]], temperature: float) -> float:
    """Mean binary cross-entropy of the entity confidences at T against correctness.

    outcomes (List[Tuple[ndarray, ndarray, bool]]): Per predicted entity: its tokens' tag
        log-probabilities, their decoded tags, and whether the entity is right.
    """
    if not outcomes:
        return 0.0
    eps = 1e-7
    total = 0.0
    for log_probs, tags, right in outcomes:
        p = min(max(entity_confidence(log_probs, tags, temperature), eps), 1 - eps)
        total -= math.log(p) if right else math.log(1 - p)
    return total / len(outcomes)
