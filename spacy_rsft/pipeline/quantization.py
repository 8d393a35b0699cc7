"""int8 dynamic quantization of a component's transformer, for CPU inference.

`quantize = "int8"` on `rsft_ner` or `rsft_entity_linker` (or `python -m spacy_rsft quantize
IN OUT`, which sets it for a saved pipeline) replaces the `torch.nn.Linear` layers of the
component's Hugging Face transformer with `torch.ao.quantization.quantize_dynamic`'s int8
versions when the trained pipeline is loaded: weights stored in int8 (7 bits used) with one
scale per output channel, activations quantized on the fly to 8 bits (`int8_scheme`), on
the CPU only. The weights on disk stay fp32 (the component keeps its fp32 transformer to
save them), so a quantized pipeline saves, loads and packages like any other,
and the setting can be switched off again. A quantized component predicts; it does not train.
"""
import warnings
from contextlib import contextmanager
from typing import Iterator, List, Optional

from thinc.api import Model

from ..errors import Errors

# "int8": every Linear layer but the down-projections (FFN output), which stay fp32;
# "int8-all": every Linear layer. See `quantized_layers`.
QUANTIZE_MODES = ("int8", "int8-all")
# The shim attribute that keeps the fp32 transformer of a quantized one (for saving).
FP32_ATTR = "_rsft_fp32_model"


def int8_scheme():
    """(qconfig, module mapping) for `quantize_dynamic`: on x86 (fbgemm), per-channel
    symmetric weights in 7 bits and activations quantized on the fly to 8 bits; elsewhere
    (QNNPACK on ARM, which ignores `reduce_range`) torch's per-channel default.

    x86 CPUs without VNNI (AVX2) multiply u8 activations by s8 weights and add pairs of
    products in int16 (vpmaddubsw), which saturates: 255 x 127 x 2 > 32,767. torch's default
    therefore gives activations 7 bits (`reduce_range`). But the activation scale is per
    tensor and set by the outlier channels of LayerNorm and GELU outputs, so activations are
    where int8 loses most, while the weights have a scale per output channel. Moving the
    spare bit from the weights to the activations keeps every pair sum in range
    (255 x 64 x 2 = 32,640) and roughly halves the error. On MiniLM over CoNLL dev the last
    hidden state's relative error was 0.30 -> 0.16 (every Linear layer) and 0.21 -> 0.11
    (all but the down-projections); 8-bit activations with 8-bit weights saturate on an AVX2
    CPU (errors of 0.3-0.4 on some random layers where this scheme gave 0.05). See
    project/benchmarks/scripts/quantize_activations.py.
    """
    import torch
    from torch.ao.quantization import PerChannelMinMaxObserver, QConfig, per_channel_dynamic_qconfig

    if torch.backends.quantized.engine not in ("x86", "fbgemm"):
        return per_channel_dynamic_qconfig, None
    from .int8_linear import WEIGHT_QUANT_RANGE, FullRangeDynamicLinear

    weight = PerChannelMinMaxObserver.with_args(
        dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
        quant_min=WEIGHT_QUANT_RANGE[0], quant_max=WEIGHT_QUANT_RANGE[1],
    )
    qconfig = QConfig(activation=per_channel_dynamic_qconfig.activation, weight=weight)
    # Linear's subclasses too (what `quantized_layers` selects by isinstance)
    linears = (torch.nn.Linear, torch.nn.modules.linear.NonDynamicallyQuantizableLinear)
    return qconfig, {cls: FullRangeDynamicLinear for cls in linears}


def check_mode(name: str, quantize: Optional[str]) -> None:
    """Refuse an unknown `quantize` setting, naming the component."""
    if quantize is not None and quantize not in QUANTIZE_MODES:
        options = "null or " + ", ".join(repr(m) for m in QUANTIZE_MODES)
        raise ValueError(Errors.E008.format(name=name, setting="quantize", value=quantize, options=options))


def hf_shims(model: Model) -> List:
    """The spacy-transformers Hugging Face shims inside a thinc model."""
    from spacy_transformers.layers.hf_shim import HFShim

    return [shim for node in model.walk() for shim in node.shims if isinstance(shim, HFShim)]


def is_quantized(model: Model) -> bool:
    return any(getattr(shim, FP32_ATTR, None) is not None for shim in hf_shims(model))


def quantized_layers(transformer, mode: str) -> List[str]:
    """The names of the Linear layers that `mode` quantizes.

    "int8" leaves the down-projections (in_features > out_features: the FFN output
    projection of every layer, 1,536 -> 384 in MiniLM) in fp32. Their input is the GELU
    output, whose outlier activations lose most to int8's on-the-fly activation scale. With
    `int8_scheme`, over three trained models, quantizing everything cost 0.24 dev F1 on
    average and everything but the down-projections 0.11
    (project/benchmarks/results/full/quantize_schemes_*.json). "int8-all" quantizes every
    Linear layer. The rule reads layer shapes, not names, so it holds for any encoder.
    """
    import torch

    return [
        layer_name
        for layer_name, module in transformer.named_modules()
        if isinstance(module, torch.nn.Linear) and (mode == "int8-all" or module.in_features <= module.out_features)
    ]


def quantize_model(model: Model, name: str, mode: str = "int8") -> int:
    """Quantize the Linear layers of every (loaded) transformer in `model` to int8, in place.

    model (Model): The component's model.
    name (str): The component's name, for errors.
    mode (str): "int8" or "int8-all" (see `quantized_layers`).
    RETURNS (int): How many transformers were quantized (already quantized ones count).
    """
    import torch
    from torch.ao.quantization import quantize_dynamic

    from ..models.tagger import is_listener

    if is_listener(model):
        raise ValueError(Errors.E333.format(name=name))
    count = 0
    for shim in hf_shims(model):
        if getattr(shim, FP32_ATTR, None) is not None:
            count += 1
            continue
        transformer = shim._model
        if transformer is None:  # not initialized yet: nothing to quantize
            continue
        if any(p.is_cuda for p in transformer.parameters()):
            raise ValueError(Errors.E316.format(name=name))
        # Per-channel weight scales: with one scale per matrix, the outlier weights of
        # MiniLM's FFN output projections cost 4.4 dev F1 on a NoiseBench model (1.0 with
        # per-channel scales); see the README's int8 results.
        qconfig, mapping = int8_scheme()
        spec = {layer: qconfig for layer in quantized_layers(transformer, mode)}
        with warnings.catch_warnings():
            # torch.ao's notices that eager quantization moves to torchao: it still works in
            # the pinned torch, and the notices say nothing a pipeline user can act on
            warnings.simplefilter("ignore")
            quantized = quantize_dynamic(transformer, spec, dtype=torch.qint8, mapping=mapping)
        quantized.eval()
        setattr(shim, FP32_ATTR, transformer)
        shim._model = quantized
        count += 1
    return count


@contextmanager
def fp32_weights(model: Model) -> Iterator[None]:
    """Within the block, every quantized transformer in `model` is its fp32 original again
    (so serialization writes fp32 weights); afterwards the quantized one is back."""
    swapped = []
    for shim in hf_shims(model):
        original = getattr(shim, FP32_ATTR, None)
        if original is not None:
            swapped.append((shim, shim._model))
            shim._model = original
    try:
        yield
    finally:
        for shim, quantized in swapped:
            shim._model = quantized


def check_trainable(model: Model, name: str) -> None:
    """Refuse to train a quantized component, with what to do instead."""
    if is_quantized(model):
        raise ValueError(Errors.E317.format(name=name))
