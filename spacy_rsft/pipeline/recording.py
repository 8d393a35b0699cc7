"""Per-example losses recorded during training, for the rejection-sampling reader."""
from typing import Dict, Iterable

import numpy
from spacy.training import Example

from ..util import get_example_id


class ExampleLossRecorder:
    """Keeps the latest loss of each reader-tagged example until the reader takes them."""

    def __init__(self) -> None:
        self.losses: Dict[int, float] = {}

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
