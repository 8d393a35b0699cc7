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
from typing import Dict, List, Sequence

import numpy
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.training import Example
from spacy.util import minibatch

from ..ty import ExampleLossScorer, LossRecorder


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
    nlp: Language, examples: Sequence[Example], batch_size: int = 64
) -> numpy.ndarray:
    """Score every example with the current weights, without gradients.

    Runs the pipeline component by component over copies of the predicted docs, so the
    training examples themselves are not annotated.

    nlp (Language): The pipeline being trained.
    examples (Sequence[Example]): The pool.
    batch_size (int): Docs per forward pass.
    RETURNS (ndarray): Summed loss/error per example (NaN where no component scored it).
    """
    frozen = set(nlp.config.get("training", {}).get("frozen_components", []))
    losses = numpy.full((len(examples),), numpy.nan)
    offset = 0
    for batch in minibatch(examples, size=batch_size):
        copies = [Example(eg.predicted.copy(), eg.reference) for eg in batch]
        batch_losses = numpy.full((len(batch),), numpy.nan)
        for name, proc in nlp.pipeline:
            if isinstance(proc, ExampleLossScorer):
                values = numpy.asarray(proc.get_example_losses(copies), dtype="float64")
                batch_losses = numpy.where(
                    numpy.isnan(values), batch_losses, numpy.nan_to_num(batch_losses) + values
                )
                continue
            docs = [eg.predicted for eg in copies]
            docs = list(proc.pipe(docs)) if hasattr(proc, "pipe") else [proc(d) for d in docs]
            copies = [Example(doc, eg.reference) for doc, eg in zip(docs, copies)]
            if isinstance(proc, TrainablePipe) and name not in frozen:
                errors = numpy.asarray([generic_error(nlp, name, eg) for eg in copies])
                batch_losses = numpy.nan_to_num(batch_losses) + errors
        losses[offset : offset + len(batch)] = batch_losses
        offset += len(batch)
    return losses
