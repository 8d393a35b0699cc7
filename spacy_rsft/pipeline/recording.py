"""Per-example and per-token losses recorded during training, for the rejection-sampling
reader (`spacy_rsft.ty.LossRecorder`, `TokenLossRecorder`)."""
from typing import Dict, Iterable, Sequence

import numpy
from spacy.training import Example

from ..util import get_example_id


class ExampleLossRecorder:
    """Keeps the latest loss of each reader-tagged example until the reader takes them."""

    def __init__(self) -> None:
        self.losses: Dict[int, float] = {}
        self.token_losses: Dict[int, numpy.ndarray] = {}

    def record(self, examples: Iterable[Example], values: Iterable[float]) -> None:
        """Remember each tagged example's loss (untagged examples and NaN are skipped).

        examples (Iterable[Example]): The examples of an update.
        values (Iterable[float]): Their losses, in the same order.
        """
        for eg, value in zip(examples, values):
            example_id = get_example_id(eg)
            if example_id is not None and numpy.isfinite(value):
                self.losses[example_id] = float(value)

    def pop(self) -> Dict[int, float]:
        """Hand over (and forget) what was recorded since the last call.

        RETURNS (Dict[int, float]): Example id -> loss.
        """
        recorded, self.losses = self.losses, {}
        return recorded

    def record_tokens(self, examples: Sequence[Example], values: Sequence[numpy.ndarray]) -> None:
        """Remember the loss of every reference token of each tagged example.

        examples (Sequence[Example]): The examples of an update.
        values (Sequence[ndarray]): One loss per *predicted* token of each example (NaN
            where not scored); moved onto the reference tokens here.
        """
        for eg, losses in zip(examples, values):
            example_id = get_example_id(eg)
            if example_id is not None:
                self.token_losses[example_id] = reference_token_losses(eg, numpy.asarray(losses))

    def pop_tokens(self) -> Dict[int, numpy.ndarray]:
        """Hand over (and forget) the per-token losses recorded since the last call.

        RETURNS (Dict[int, ndarray]): Example id -> one loss per reference token.
        """
        recorded, self.token_losses = self.token_losses, {}
        return recorded


def reference_token_losses(example: Example, predicted_losses: numpy.ndarray) -> numpy.ndarray:
    """Per-token losses of the predicted doc moved onto the reference tokens (a reference
    token gets the mean over the predicted tokens aligned to it; NaN where none is).

    example (Example): The example.
    predicted_losses (ndarray): One loss per predicted token, NaN where not scored.
    RETURNS (ndarray): One loss per reference token.
    """
    n_ref = len(example.reference)
    if len(example.predicted) == n_ref and [t.text for t in example.predicted] == [t.text for t in example.reference]:
        return predicted_losses.astype("float32")
    out = numpy.full((n_ref,), numpy.nan, dtype="float32")
    y2x = example.alignment.y2x
    lengths = numpy.asarray(y2x.lengths)
    data = numpy.asarray(y2x.data)
    ends = numpy.cumsum(lengths)
    for j in range(n_ref):
        values = predicted_losses[data[ends[j] - lengths[j] : ends[j]]]
        values = values[~numpy.isnan(values)]
        if values.size:
            out[j] = values.mean()
    return out
