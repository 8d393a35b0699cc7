"""The transformer's forward pass over spans bucketed by length.

spacy-transformers pads every strided span of a batch to the batch's longest span, so the
short last window of each document is mostly padding: on CoNLL dev, in `nlp.pipe`'s
length-grouped batches, 27.4% of the wordpieces the transformer computes are padding.
Sorting the spans by length and running them in buckets, each padded only to its own
longest span, brings that to 11.5% (`scripts/bucket_speed.py` in the benchmark project
measures both, and what it is worth in words/s). The outputs are laid back out as one batch
padded to the longest span, in the original order, so everything downstream (alignment, pooling, `doc._.trf_data`, listeners)
is unchanged; the positions beyond a span's length, which nothing reads, are zero instead
of the transformer's output for padding. Real positions are the same numbers: padding is
masked out of attention.

The bucket boundaries minimise (padded wordpieces + a fixed cost per forward call), by
dynamic programming over the sorted lengths: a run of spans of similar length goes in one
call, and a few short tails do not each pay a call of their own.
"""
from typing import Callable, List, Optional, Sequence, Tuple

import numpy
from spacy.tokens import Doc
from spacy_transformers.align import get_alignment, get_alignment_via_offset_mapping
from spacy_transformers.data_classes import FullTransformerBatch, WordpieceBatch
from spacy_transformers.layers.transformer_model import huggingface_tokenize
from spacy_transformers.truncate import truncate_oversize_splits
from thinc.api import Model

# What one more forward call costs, in padded wordpieces: the per-call work of a 6-layer
# encoder on 2 CPU threads is worth about this many wordpieces of matrix products.
CALL_COST = 256
# Model attr that switches bucketing off (for a side-by-side measurement).
ATTR = "rsft_bucket_spans"
# Outputs that can be laid out again: (spans, length, ...) tensors and per-span vectors.
_SUPPORTED_OUTPUTS = {"last_hidden_state", "pooler_output", "hidden_states"}


def length_buckets(lengths: Sequence[int], call_cost: Optional[int] = None) -> List[List[int]]:
    """Split spans into buckets of similar length at the least padded cost.

    lengths (Sequence[int]): Wordpieces per span.
    call_cost (int): The cost of one more forward call, in padded wordpieces.
    RETURNS (List[List[int]]): Span indices per bucket, shortest bucket first.
    """
    call_cost = CALL_COST if call_cost is None else call_cost
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    sorted_lengths = [lengths[i] for i in order]
    n = len(order)
    # best[j]: the least cost of the first j sorted spans; cut[j]: where its last bucket starts.
    best = [0] + [None] * n
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        longest = sorted_lengths[end - 1]
        for start in range(end):
            cost = best[start] + (end - start) * longest + call_cost
            if best[end] is None or cost < best[end]:
                best[end], cut[end] = cost, start
    buckets = []
    end = n
    while end > 0:
        buckets.append(order[cut[end]:end])
        end = cut[end]
    return buckets[::-1]


def real_lengths(attention_mask) -> Optional[List[int]]:
    """Wordpieces per span, from the attention mask; None unless every span's real
    wordpieces come first (right padding), which trimming the padded columns needs."""
    mask = numpy.asarray(attention_mask) > 0
    lengths = mask.sum(axis=1)
    if not (mask == (numpy.arange(mask.shape[1]) < lengths[:, None])).all():
        return None  # left padding (some tokenizers): run as one batch
    return [int(n) for n in lengths]


def _bucket_batch(wordpieces: WordpieceBatch, indices: List[int], lengths: List[int]) -> WordpieceBatch:
    width = max(lengths[i] for i in indices)
    rows = numpy.asarray(indices)
    type_ids = wordpieces.token_type_ids
    return WordpieceBatch(
        strings=[wordpieces.strings[i] for i in indices],
        input_ids=wordpieces.input_ids[rows, :width],
        attention_mask=wordpieces.attention_mask[rows, :width],
        lengths=[wordpieces.lengths[i] for i in indices],  # as spacy-transformers counts them
        token_type_ids=type_ids[rows, :width] if type_ids is not None else None,
    )


def _lay_out(outputs: List, buckets: List[List[int]], n_spans: int, width: int):
    """One output batch from the buckets' outputs: rows back in span order, padded to
    `width` wordpieces with zeros."""
    import torch

    def place(tensors: List["torch.Tensor"]) -> "torch.Tensor":
        first = tensors[0]
        shape = (n_spans, width, *first.shape[2:]) if first.dim() >= 3 else (n_spans, *first.shape[1:])
        full = first.new_zeros(shape)
        for indices, tensor in zip(buckets, tensors):
            rows = torch.as_tensor(indices, device=tensor.device)
            if tensor.dim() >= 3:
                full[rows, : tensor.shape[1]] = tensor
            else:
                full[rows] = tensor
        return full

    laid_out = outputs[0].__class__()
    with torch.no_grad():  # each bucket backpropagates through its own graph
        for key in outputs[0].keys():
            values = [output[key] for output in outputs]
            if isinstance(values[0], tuple):
                laid_out[key] = tuple(place(list(layer)) for layer in zip(*values))
            else:
                laid_out[key] = place(values)
    return laid_out


def run_in_buckets(transformer: Model, wordpieces: WordpieceBatch, is_train: bool) -> Tuple:
    """The HF wrapper's forward pass over length buckets of the spans.

    transformer (Model): spacy-transformers' HFWrapper.
    wordpieces (WordpieceBatch): All spans, padded to the longest.
    is_train (bool): Whether to return a backprop callback that trains the transformer.
    RETURNS (Tuple[ModelOutput, Callable]): The outputs as one padded batch, and backprop.
    """
    import torch
    from transformers.modeling_outputs import BaseModelOutput

    lengths = real_lengths(wordpieces.attention_mask)
    buckets = length_buckets(lengths) if lengths is not None else []
    if len(buckets) <= 1:
        return transformer(wordpieces, is_train)
    first = transformer(_bucket_batch(wordpieces, buckets[0], lengths), is_train)
    if not set(first[0].keys()) <= _SUPPORTED_OUTPUTS:
        # e.g. attentions requested in transformer_config: not laid out here; one call.
        return transformer(wordpieces, is_train)
    results = [first] + [transformer(_bucket_batch(wordpieces, bucket, lengths), is_train) for bucket in buckets[1:]]
    outputs = [output for output, _ in results]
    width = wordpieces.input_ids.shape[1]
    model_output = _lay_out(outputs, buckets, len(wordpieces.lengths), width)

    def backprop(d_output) -> List:
        d_hidden = next(iter(d_output.values()))  # the gradient of last_hidden_state
        for bucket, (output, bucket_backprop) in zip(buckets, results):
            rows = torch.as_tensor(bucket, device=d_hidden.device)
            d_bucket = d_hidden[rows, : output["last_hidden_state"].shape[1]]
            bucket_backprop(BaseModelOutput(last_hidden_state=d_bucket))
        return []

    return model_output, backprop


def bucketed_forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[FullTransformerBatch, Callable]:
    """spacy-transformers' `TransformerModel` forward pass, with the transformer run over
    length buckets of the spans (see the module docstring). The rest is theirs, unchanged.
    """
    tokenizer = model.tokenizer
    transformer = model.layers[0]
    nested_spans = model.attrs["get_spans"](docs)
    flat_spans = [span for doc_spans in nested_spans for span in doc_spans]
    batch_encoding = huggingface_tokenize(tokenizer, [span.text for span in flat_spans])
    wordpieces = WordpieceBatch.from_batch_encoding(batch_encoding)
    if "offset_mapping" in batch_encoding:
        align = get_alignment_via_offset_mapping(flat_spans, batch_encoding["offset_mapping"])
    else:
        align = get_alignment(flat_spans, wordpieces.strings, tokenizer.all_special_tokens)
    wordpieces, align = truncate_oversize_splits(wordpieces, align, tokenizer.model_max_length)
    if model.attrs.get(ATTR, True):
        model_output, bp_tensors = run_in_buckets(transformer, wordpieces, is_train)
    else:
        model_output, bp_tensors = transformer(wordpieces, is_train)
    output = FullTransformerBatch(spans=nested_spans, wordpieces=wordpieces, model_output=model_output, align=align)

    def backprop_transformer(d_output: FullTransformerBatch) -> List[Doc]:
        bp_tensors(d_output.model_output)
        return docs

    return output, backprop_transformer


def use_bucketed_forward(model: Model) -> Model:
    """Make every spacy-transformers `TransformerModel` in `model` run its spans in length
    buckets.

    model (Model): A TransformerModel or a model that contains one.
    RETURNS (Model): The same model.
    """
    from spacy_transformers.layers import TransformerModel

    for node in model.walk():
        if isinstance(node, TransformerModel):
            node._func = bucketed_forward
    return model
