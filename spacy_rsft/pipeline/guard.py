"""Keep non-finite losses away from the weights, shared by the trainable components."""
import warnings
from typing import Iterable

import numpy

from ..errors import Errors, Warnings


class NonFiniteGuard:
    """Counts updates skipped for a NaN/inf loss or gradient and stops training with a
    clear message when `max_in_a_row` are skipped in a row (the run has diverged)."""

    def __init__(self, name: str, max_in_a_row: int = 10) -> None:
        self.name = name
        self.max_in_a_row = max_in_a_row
        self.skipped = 0
        self.in_a_row = 0

    def ok(self, loss: float, grads: Iterable[numpy.ndarray]) -> bool:
        """True if the update may go ahead; otherwise count, warn, and maybe stop.

        loss (float): The batch loss.
        grads (Iterable[ndarray]): The gradients about to be backpropagated.
        RETURNS (bool): Whether loss and gradients are all finite.
        """
        if numpy.isfinite(loss) and all(numpy.isfinite(g).all() for g in grads):
            self.in_a_row = 0
            return True
        self.skipped += 1
        self.in_a_row += 1
        if self.in_a_row > self.max_in_a_row:
            raise RuntimeError(Errors.E009.format(name=self.name, n=self.in_a_row))
        warnings.warn(Warnings.W004.format(name=self.name, total=self.skipped))
        return False
