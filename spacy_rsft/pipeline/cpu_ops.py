"""thinc's CPU ops with the matrix products of torch's BLAS, for the rsft components' own
dense layers (the tagger's Maxout and output layer, the case features' mixing layer).

thinc's `NumpyOps.gemm` calls BLIS, single-threaded, which on this project's CPUs (AVX2)
ran these shapes 3x slower than torch's BLAS on one thread, and torch uses every thread it
is given: at 2 threads the tagger's head took 7% of `rsft_ner`'s inference time with BLIS.
torch is loaded anyway, and its thread count is the one `threads.py` already manages for
`nlp.pipe(n_process=N)`, so no second thread pool to tune (numpy's OpenBLAS would be one).

The same idea as thinc-apple-ops' `AppleOps` (a `NumpyOps` whose `gemm` calls Accelerate),
applied per component instead of globally: only the nodes of an rsft component's model that
run on plain `NumpyOps` switch; a GPU's ops, or other CPU ops a user chose, are left alone.
"""
import numpy
import torch
from thinc.api import Model, NumpyOps


class TorchGemmOps(NumpyOps):
    """`NumpyOps` whose float32 `gemm` runs `torch.mm` on the same memory."""

    def gemm(self, x, y, *, out=None, trans1=False, trans2=False):
        if not _torch_can_share(x, y, out):
            return super().gemm(x, y, out=out, trans1=trans1, trans2=trans2)
        a = torch.from_numpy(x)
        b = torch.from_numpy(y)
        if trans1:
            a = a.t()
        if trans2:
            b = b.t()
        if out is None:
            return torch.mm(a, b).numpy()
        torch.mm(a, b, out=torch.from_numpy(out))
        return out


def _torch_can_share(*arrays) -> bool:
    """float32 2-d numpy arrays torch can wrap without a copy or a warning (read-only
    arrays make torch.from_numpy warn)."""
    for array in arrays:
        if array is None:
            continue
        if not isinstance(array, numpy.ndarray) or array.dtype != numpy.float32 or array.ndim != 2:
            return False
        if not array.flags.c_contiguous or not array.flags.writeable:
            return False
    return True


_SHARED = TorchGemmOps()


def use_torch_gemm(model: Model) -> Model:
    """Switch the nodes of `model` that run on plain `NumpyOps` to `TorchGemmOps`.

    model (Model): A component's model.
    RETURNS (Model): The same model.
    """
    for node in model.walk():
        if type(node.ops) is NumpyOps:
            node.ops = _SHARED
    return model
