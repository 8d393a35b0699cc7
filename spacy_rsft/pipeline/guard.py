"""Keep non-finite losses away from the weights, shared by the trainable components."""
import warnings
from typing import Iterable

import numpy
from thinc.api import Model

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
        if self.finite(loss, grads):
            self.passed()
            return True
        self.skip()
        return False

    @staticmethod
    def finite(loss: float, grads: Iterable[numpy.ndarray]) -> bool:
        """Whether a loss and its gradients are all finite (nothing is counted)."""
        return bool(numpy.isfinite(loss) and all(numpy.isfinite(g).all() for g in grads))

    def passed(self) -> None:
        """An update went ahead: the run of skipped ones ends."""
        self.in_a_row = 0

    def skip(self) -> None:
        """Count a skipped update, warn, and stop after too many in a row."""
        self.skipped += 1
        self.in_a_row += 1
        if self.in_a_row > self.max_in_a_row:
            raise RuntimeError(Errors.E009.format(name=self.name, n=self.in_a_row))
        warnings.warn(Warnings.W004.format(name=self.name, total=self.skipped))


def discard_gradients(model: Model) -> None:
    """Drop the gradients a model has accumulated since its last optimizer step: those of
    thinc parameters are zeroed, those of PyTorch modules set to None (the shim then skips
    them), so a batch abandoned halfway does not reach the weights."""
    for node in model.walk():
        for name in node.param_names:
            if node.has_grad(name):
                node.get_grad(name).fill(0)
        for shim in node.shims:
            module = getattr(shim, "_model", None)
            if hasattr(module, "zero_grad"):
                module.zero_grad(set_to_none=True)
