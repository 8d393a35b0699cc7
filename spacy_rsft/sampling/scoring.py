"""Where the per-example losses come from.

- cached: components that record each example's loss during their own `update`
  (`LossRecorder`, as rsft_ner and rsft_entity_linker are) hand them over: no extra
  forward pass.
- fresh: a no-gradient pass over the pool before sampling. Components that score examples
  themselves (`ExampleLossScorer`) give their loss; any other trainable component (spaCy's
  `ner`, `textcat`, `spancat`, ...) gives its error on the example, 1 - its main score
  (F1 for entities), computed with its own scorer.

The protocols are in `spacy_rsft/ty.py`.
"""
from typing import Dict, List, Optional, Sequence, Union

import numpy
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.training import Example
from spacy.util import minibatch

from ..ty import ExampleLossScorer, LossRecorder, TokenLossRecorder, TokenLossScorer


def recording_components(nlp: Language) -> List[str]:
    """Names of the components that record per-example losses during `update`."""
    return [name for name, proc in nlp.pipeline if isinstance(proc, LossRecorder)]


def collect_cached_losses(nlp: Language) -> Dict[int, float]:
    """Take the losses recorded since the last call, summed over components.

    nlp (Language): The pipeline being trained.
    RETURNS (Dict[int, float]): Example id -> loss.
    """
    total: Dict[int, float] = {}
    for _, proc in nlp.pipeline:
        if isinstance(proc, LossRecorder):
            for example_id, loss in proc.pop_recorded_losses().items():
                total[example_id] = total.get(example_id, 0.0) + loss
    return total


def collect_cached_token_losses(nlp: Language) -> Dict[int, numpy.ndarray]:
    """Take the per-token losses recorded since the last call, summed over components
    (a token none of them scored stays NaN).

    nlp (Language): The pipeline being trained.
    RETURNS (Dict[int, ndarray]): Example id -> one loss per reference token.
    """
    total: Dict[int, numpy.ndarray] = {}
    for _, proc in nlp.pipeline:
        if isinstance(proc, TokenLossRecorder):
            for example_id, losses in proc.pop_recorded_token_losses().items():
                total[example_id] = _nan_add(total.get(example_id), losses)
    return total


def _nan_add(a: Optional[numpy.ndarray], b: numpy.ndarray) -> numpy.ndarray:
    """a + b where either is known; NaN where neither is."""
    if a is None:
        return numpy.asarray(b, dtype="float32")
    both_nan = numpy.isnan(a) & numpy.isnan(b)
    # numpy.where, not item assignment: per example these are 0-d (two components scoring
    # the same example, e.g. ner+el)
    return numpy.where(both_nan, numpy.nan, numpy.nan_to_num(a) + numpy.nan_to_num(b)).astype("float32")


def _main_score_keys(nlp: Language, name: str) -> Dict[str, float]:
    weights = nlp.get_pipe_meta(name).default_score_weights
    return {key: w for key, w in weights.items() if w}


def generic_error(nlp: Language, name: str, example: Example) -> float:
    """1 - the component's weighted main score on one example (0 when there is nothing
    to score, e.g. no gold and no predicted entities).

    nlp (Language): The pipeline.
    name (str): The component.
    example (Example): An example whose predicted doc the component has annotated.
    RETURNS (float): The error in [0, 1].
    """
    keys = _main_score_keys(nlp, name)
    if not keys:
        return 0.0
    scores = nlp.get_pipe(name).score([example])
    total = weight = 0.0
    for key, w in keys.items():
        value = scores.get(key)
        if isinstance(value, (int, float)):
            total += w * float(value)
            weight += w
    return 0.0 if weight == 0 else 1.0 - total / weight


def fresh_losses(
    nlp: Language, examples: Sequence[Example], batch_size: int = 64, per_token: bool = False
) -> Union[numpy.ndarray, List[numpy.ndarray]]:
    """Score every example (or every reference token) with the current weights, without
    gradients.

    Runs the pipeline component by component over copies of the predicted docs, so the
    training examples themselves are not annotated. Per token, a component without token
    losses contributes its error on the example to each of the example's tokens.

    nlp (Language): The pipeline being trained.
    examples (Sequence[Example]): The pool.
    batch_size (int): Docs per forward pass.
    per_token (bool): One loss per reference token instead of one per example.
    RETURNS (Union[ndarray, List[ndarray]]): Summed loss/error per example, or per token of
        each example (NaN where no component scored it).
    """
    frozen = set(nlp.config.get("training", {}).get("frozen_components", []))
    out: List = []
    for batch in minibatch(examples, size=batch_size):
        copies = [Example(eg.predicted.copy(), eg.reference) for eg in batch]
        batch_losses: List[Optional[numpy.ndarray]] = [None] * len(batch)
        for name, proc in nlp.pipeline:
            if per_token and isinstance(proc, TokenLossScorer):
                values = proc.get_token_losses(copies)
            elif isinstance(proc, ExampleLossScorer):
                values = numpy.asarray(proc.get_example_losses(copies), dtype="float64")
            else:
                docs = [eg.predicted for eg in copies]
                docs = list(proc.pipe(docs)) if hasattr(proc, "pipe") else [proc(d) for d in docs]
                copies = [Example(doc, eg.reference) for doc, eg in zip(docs, copies)]
                if not isinstance(proc, TrainablePipe) or name in frozen:
                    continue
                values = numpy.asarray([generic_error(nlp, name, eg) for eg in copies])
            for i, value in enumerate(values):
                if per_token and numpy.ndim(value) == 0:  # an example's loss, on each token
                    value = numpy.full((len(batch[i].reference),), value, dtype="float32")
                batch_losses[i] = _nan_add(batch_losses[i], numpy.asarray(value, dtype="float32"))
        for i, value in enumerate(batch_losses):
            if value is None:
                value = numpy.full((len(batch[i].reference),) if per_token else (), numpy.nan, dtype="float32")
            out.append(value)
    if per_token:
        return out
    return numpy.asarray([float(v) for v in out], dtype="float64")
