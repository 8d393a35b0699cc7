"""The int8 Linear layer of `quantize` (see `quantization.int8_scheme`). Its own module
because it subclasses a torch class: imported only when a transformer is quantized, so
that loading spacy-rsft does not import torch, and defined at module level, so that a
quantized pipeline pickles (`nlp.pipe(n_process=...)` with spawn)."""
import torch
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

# Weights take 7 bits so that activations can take 8 (see `quantization.int8_scheme`).
WEIGHT_QUANT_RANGE = (-64, 63)


class FullRangeDynamicLinear(DynamicLinear):
    """torch's dynamic int8 Linear, quantizing its input to 8 bits instead of torch's 7.
    Only safe with weights within WEIGHT_QUANT_RANGE on x86 CPUs without VNNI."""

    def forward(self, x):
        if self._packed_params.dtype != torch.qint8:
            return super().forward(x)
        y = torch.ops.quantized.linear_dynamic(x, self._packed_params._packed_params, reduce_range=False)
        return y.to(x.dtype)
