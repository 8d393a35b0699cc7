"""Optimizer steps on a PyTorch model's parameters in place, without thinc's chain of views.

thinc's `PyTorchShim.finish_update` hands each parameter to the optimizer as
`tensor.detach().numpy()` and puts the result back as `torch.from_dlpack(array)`. The new
tensor's memory is then owned by that array, which holds the tensor it was made from, whose
memory is owned by the array of the update before...: every update adds a link (a tensor, an
array, a DLPack capsule) per parameter to a chain that is never freed. They share one
buffer, so no weights are copied, but the links are small long-lived objects allocated
between an update's short-lived ones: the MiniLM NER keeps ~200 more tensor objects after
every update, and the heap in use grew by ~60 MB over 960 updates, pinning the pages
around them.

The optimizers thinc ships (Adam, RAdam, SGD) update the array they are given in place, so
the parameter's tensor can simply stay: `in_place_finish_update` is the shim's
`finish_update` with that change (and a copy back, should an optimizer return new memory).
`use_in_place_updates` installs it on every PyTorch shim of a model; where a parameter is
not on the CPU thinc's own update runs.
"""
from functools import partial

from thinc.api import Model, Optimizer
from thinc.shims import PyTorchShim

_INSTALLED = "_rsft_in_place_update"


def in_place_finish_update(shim: PyTorchShim, optimizer: Optimizer) -> None:
    """`PyTorchShim.finish_update`, with each parameter updated in its own memory."""
    import numpy

    if any(p.device.type != "cpu" for p in shim._model.parameters()):
        PyTorchShim.finish_update(shim, optimizer)  # cupy arrays: thinc's own path
        return
    for name, param in shim._model.named_parameters():
        if param.grad is None:
            continue
        if not shim._grad_scaler.found_inf:  # thinc skips the update when a gradient overflowed
            weights = param.data.numpy()
            updated, _ = optimizer((shim.id, name), weights, param.grad.numpy())
            if not numpy.may_share_memory(updated, weights):
                weights[...] = updated.reshape(weights.shape)
        param.grad.zero_()
    shim._grad_scaler.update()


def use_in_place_updates(model: Model) -> int:
    """Give every PyTorch shim of `model` the in-place update (once per shim). A partial,
    not a bound method, so that the shim (and a trained pipeline) still pickles.

    model (Model): A thinc model (a component's model, a shared transformer's).
    RETURNS (int): The shims that got it with this call.
    """
    installed = 0
    for node in model.walk():
        for shim in node.shims:
            if not isinstance(shim, PyTorchShim) or getattr(shim, _INSTALLED, False):
                continue
            shim.finish_update = partial(in_place_finish_update, shim)
            setattr(shim, _INSTALLED, True)
            installed += 1
    return installed
