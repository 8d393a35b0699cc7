"""int8 dynamic quantization of a component's transformer, for CPU inference.

`quantize = "int8"` on `rsft_ner` or `rsft_entity_linker` (or `python -m spacy_rsft quantize
IN OUT`, which sets it for a saved pipeline) replaces the `torch.nn.Linear` layers of the
component's Hugging Face transformer with `torch.ao.quantization.quantize_dynamic`'s int8
versions when the trained pipeline is loaded: weights stored in int8 (7 bits used) with one
scale per output channel, activations quantized on the fly to 8 bits (`int8_scheme`), on
the CPU only. In "int8" mode the few input columns of a layer that are far larger than
the rest (they would set the activation scale for all of them) stay in fp32
(`split_outliers`, calibrated once at load on a short built-in text). The weights on disk
stay fp32 (the component keeps its fp32 transformer to save them; the int8 one shares its
embeddings and LayerNorms, `shared_copy`), so a quantized pipeline saves, loads and packages
like any other, and the setting can be switched off again. A quantized component predicts;
it does not train.
"""
import warnings
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

from thinc.api import Model

from ..errors import Errors

# Both modes quantize every Linear layer. "int8" keeps the few outlier input columns of the
# layers that have them in fp32 (`split_outliers`); "int8-all" quantizes everything.
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


def quantized_layers(transformer) -> List[str]:
    """The names of the Linear layers `quantize` turns into int8: all of them (Linear's
    subclasses too). Earlier releases left the FFN down-projections in fp32 in "int8" mode:
    their input, the GELU output, has a few columns 5-20x larger than the rest, which set
    the per-tensor activation scale. `split_outliers` now keeps just those columns in fp32,
    which loses less and runs faster (see the README's int8 results)."""
    import torch

    return [layer_name for layer_name, module in transformer.named_modules() if isinstance(module, torch.nn.Linear)]


# Outlier columns (see int8_linear.OutlierSplitLinear): a Linear layer keeps its top
# OUTLIER_COLUMNS input columns in fp32 when the largest calibrated column maximum is at
# least OUTLIER_RATIO times the (OUTLIER_COLUMNS + 1)-th; the other layers lose little to
# the shared scale and are not worth the extra pass.
OUTLIER_COLUMNS = 8
OUTLIER_RATIO = 3.0
# What the outlier columns are calibrated on: plain sentences of several kinds. Outlier
# columns are a property of the model (they appear on almost any input), so a short
# generic text finds them; on MiniLM these sentences and 40 CoNLL training documents gave
# the same hidden-state error to within 0.001.
CALIBRATION_TEXT = [
    "The weather was mild on Tuesday, and the market in the old town square opened early.",
    "She said the company would report its results next week after the board meeting in Geneva.",
    "Researchers at the university published a study on sleep, diet and memory in older adults.",
    "The team scored twice in the second half to win 2-1 and move up to third place in the league.",
    "Prices of oil and gold rose slightly as investors waited for the central bank's decision.",
    "LONDON 1996-08-30 -- Police arrested three men after a robbery at a bank on Oxford Street.",
    "Dr. Maria Lopez, 54, will lead the new cancer research centre, the hospital said on Monday.",
    "Shares in Siemens AG fell 3.5 percent to 71.20 marks in Frankfurt trading.",
]


def input_column_maxima(transformer, tokenizer, names: List[str], texts: List[str]) -> Dict[str, "torch.Tensor"]:
    """The largest |input| of every input column of each named Linear layer over `texts`,
    each text on its own (no padding positions) and with dropout off."""
    import torch

    maxima: Dict[str, torch.Tensor] = {}

    def hook(layer_name):
        def record(module, inputs, output):
            x = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(0)
            maxima[layer_name] = torch.maximum(maxima[layer_name], x) if layer_name in maxima else x
        return record

    handles = [transformer.get_submodule(n).register_forward_hook(hook(n)) for n in names]
    # A loaded pipeline's transformer is built from its config in training mode: with
    # dropout on, the maxima (and the columns chosen) would change from load to load.
    was_training = transformer.training
    transformer.eval()
    try:
        with torch.inference_mode():
            for text in texts:
                transformer(**tokenizer([text], truncation=True, max_length=128, return_tensors="pt"))
    finally:
        transformer.train(was_training)
        for handle in handles:
            handle.remove()
    return maxima


def outlier_columns(maxima: "torch.Tensor", k: int, ratio: float) -> Optional["torch.Tensor"]:
    """The k input columns with the largest maxima, sorted, when the largest is at least
    `ratio` times the (k+1)-th; else None (the shared scale then costs those columns little)."""
    import torch

    if maxima.numel() <= k:
        return None
    top = torch.topk(maxima, k + 1)
    if float(top.values[0]) < ratio * float(top.values[k]):
        return None
    return top.indices[:k].sort().values


def split_outliers(quantized, fp32, tokenizer, names: List[str], k: Optional[int] = None,
                   ratio: Optional[float] = None) -> int:
    """Wrap each quantized layer of `names` whose inputs have outlier columns (calibrated
    on CALIBRATION_TEXT with the fp32 model) in an `OutlierSplitLinear`.

    quantized (torch.nn.Module): The quantized copy of `fp32`, changed in place.
    fp32 (torch.nn.Module): The Hugging Face model it was quantized from.
    tokenizer: Its tokenizer.
    names (List[str]): The quantized Linear layers.
    k (Optional[int]): Columns per layer (default OUTLIER_COLUMNS).
    ratio (Optional[float]): How many times the (k+1)-th largest column maximum the
        largest must be (default OUTLIER_RATIO).
    RETURNS (int): How many layers were wrapped.
    """
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    from .int8_linear import OutlierSplitLinear

    k = OUTLIER_COLUMNS if k is None else k
    ratio = OUTLIER_RATIO if ratio is None else ratio

    maxima = input_column_maxima(fp32, tokenizer, names, CALIBRATION_TEXT)
    wrapped = 0
    for layer_name in names:
        columns = outlier_columns(maxima[layer_name], k, ratio) if layer_name in maxima else None
        if columns is None:
            continue
        parent_name, _, child = layer_name.rpartition(".")
        parent = quantized.get_submodule(parent_name)
        layer = getattr(parent, child)
        if not isinstance(layer, DynamicLinear):  # left fp32 by the mapping (e.g. on QNNPACK)
            continue
        setattr(parent, child, OutlierSplitLinear(layer, fp32.get_submodule(layer_name).weight, columns))
        wrapped += 1
    return wrapped


def quantize_model(model: Model, name: str, mode: str = "int8") -> int:
    """Quantize the Linear layers of every (loaded) transformer in `model` to int8, in place.

    model (Model): The component's model.
    name (str): The component's name, for errors.
    mode (str): "int8" (outlier input columns in fp32, `split_outliers`) or "int8-all".
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
        layers = quantized_layers(transformer)
        with warnings.catch_warnings():
            # torch.ao's notices that eager quantization moves to torchao: it still works in
            # the pinned torch, and the notices say nothing a pipeline user can act on
            warnings.simplefilter("ignore")
            quantized = quantize_dynamic(
                shared_copy(transformer), {layer: qconfig for layer in layers},
                dtype=torch.qint8, mapping=mapping, inplace=True,
            )
        quantized.eval()
        if mode == "int8":
            _split_or_warn(quantized, transformer, getattr(shim._hfmodel, "tokenizer", None), layers, name)
        setattr(shim, FP32_ATTR, transformer)
        shim._model = quantized
        count += 1
    return count


def _split_or_warn(quantized, fp32, tokenizer, layers: List[str], name: str) -> None:
    """`split_outliers`, or a warning that says why not (the layers then stay all int8)."""
    from ..errors import Warnings

    if tokenizer is None:
        warnings.warn(Warnings.W010.format(name=name, reason="the transformer has no tokenizer"))
        return
    try:
        split_outliers(quantized, fp32, tokenizer, layers)
    except Exception as error:  # a tokenizer that cannot encode the calibration text
        warnings.warn(Warnings.W010.format(name=name, reason=f"{type(error).__name__}: {error}"))


def shared_copy(module):
    """A copy of `module`'s tree of modules that holds the original's own parameter and
    buffer tensors, not copies of them.

    `quantize_dynamic` (not in place) deep-copies the whole model before it replaces the
    Linear layers of the copy, so a quantized component held the fp32 model (kept for
    saving) and a second fp32 copy of everything that is not a Linear weight (MiniLM's
    embeddings alone are 47 MB), and for a moment a copy of the Linear weights too. Quantizing
    this copy in place instead builds each int8 layer from the original's weight and leaves
    the original's layers as they were: the one extra memory is the int8 weights."""
    import copy
    import itertools

    tensors = itertools.chain(module.parameters(), module.buffers())
    return copy.deepcopy(module, memo={id(tensor): tensor for tensor in tensors})


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
