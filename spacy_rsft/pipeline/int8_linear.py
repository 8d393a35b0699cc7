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


class OutlierSplitLinear(torch.nn.Module):
    """An int8 Linear layer whose few outlier input columns stay in fp32.

    The activation scale of dynamic int8 is one per tensor, so a single input column of
    values 5-10x larger than the rest (MiniLM's FFN inputs have such columns in every layer)
    leaves the other columns a few dozen of int8's 256 levels. Here those columns are
    zeroed before the int8 product and their exact fp32 product is added after it
    (LLM.int8()'s decomposition, Dettmers et al. 2022, with columns chosen once by
    calibration instead of per batch: a per-batch search cost more time than it saved).

    The input is zeroed in place and restored before returning, which saves a copy of it;
    the layer is for inference (`quantize`), where nothing else reads the tensor meanwhile.
    """

    def __init__(self, quantized: torch.nn.Module, weight: torch.Tensor, columns: torch.Tensor) -> None:
        super().__init__()
        self.quantized = quantized
        self.register_buffer("columns", columns.to(torch.long))
        # (columns, out_features): the rows the fp32 product needs, contiguous
        self.register_buffer("outlier_weight", weight.detach().index_select(1, self.columns).t().contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad or not x.is_contiguous():
            x = x.detach().contiguous().clone()
        outliers = x.index_select(-1, self.columns)
        x.index_fill_(-1, self.columns, 0.0)
        try:
            y = self.quantized(x)
        finally:
            x.index_copy_(-1, self.columns, outliers)
        y.view(-1, y.shape[-1]).addmm_(outliers.view(-1, outliers.shape[-1]), self.outlier_weight)
        return y
