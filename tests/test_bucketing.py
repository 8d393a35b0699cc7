"""The transformer runs its spans in length buckets: the partition, and that outputs and
gradients are those of the one padded batch spacy-transformers would run."""
import numpy
import pytest
import spacy
import torch
from spacy_transformers.layers import TransformerModel

from spacy_rsft.models.bucketing import ATTR, length_buckets, real_lengths
from spacy_rsft.models.encoder import build_shared_transformer, build_transformer_encoder
from spacy_rsft.testing import make_tiny_bert

WORDS = "the city of london said john smith will be in paris and berlin for google".split()


@pytest.fixture(scope="module")
def deterministic_bert(tmp_path_factory) -> str:
    # No dropout, so that two training passes can be compared.
    return str(make_tiny_bert(tmp_path_factory.mktemp("bert_no_dropout"), dropout=0.0))


def make_docs():
    nlp = spacy.blank("en")
    # Long documents give full windows plus short tails; short ones are all padding otherwise.
    lengths = [3, 300, 40, 7, 150, 1, 90]
    return [nlp(" ".join(WORDS[i % len(WORDS)] for i in range(n))) for n in lengths]


def transformer_node(model) -> TransformerModel:
    return next(node for node in model.walk() if isinstance(node, TransformerModel))


def test_length_buckets_partition():
    lengths = [5, 100, 101, 7, 60, 128, 128, 30]
    buckets = length_buckets(lengths, call_cost=64)
    assert sorted(i for bucket in buckets for i in bucket) == list(range(len(lengths)))
    # Shortest bucket first, and each bucket a run of the sorted lengths.
    maxima = [max(lengths[i] for i in bucket) for bucket in buckets]
    assert maxima == sorted(maxima)
    assert len(buckets) > 1
    # A call that costs more than any padding: one bucket. Free calls: one per length.
    assert len(length_buckets(lengths, call_cost=10_000)) == 1
    assert len(length_buckets(lengths, call_cost=0)) == len(set(lengths))
    assert length_buckets([], call_cost=64) == []


def test_real_lengths_need_right_padding():
    right = numpy.array([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype="f")
    assert real_lengths(right) == [3, 4, 1]
    # Left padding cannot be trimmed from the right: no buckets, one batch.
    left = numpy.array([[0, 1, 1, 1], [1, 1, 1, 1]], dtype="f")
    assert real_lengths(left) is None


def test_length_buckets_minimise_padding_plus_calls():
    lengths = [10, 10, 10, 200, 200]
    # Two calls (3x10 + 2x200 + 2x50 = 530) beat one call (5x200 + 50 = 1050).
    assert sorted(map(sorted, length_buckets(lengths, call_cost=50))) == [[0, 1, 2], [3, 4]]


@pytest.mark.parametrize("build", [build_transformer_encoder, build_shared_transformer])
def test_bucketed_forward_predicts_as_one_batch(tiny_bert, build):
    model = build(name=tiny_bert)
    docs = make_docs()
    model.initialize(X=docs[:2])
    node = transformer_node(model)
    node.attrs[ATTR] = False
    padded = model.predict(docs)
    node.attrs[ATTR] = True
    bucketed = model.predict(docs)
    if build is build_shared_transformer:
        # Compare the real wordpieces; what sits at padding is never read.
        padded = [real_positions(data) for data in padded.doc_data]
        bucketed = [real_positions(data) for data in bucketed.doc_data]
    assert len(padded) == len(bucketed) == len(docs)
    for doc, a, b in zip(docs, padded, bucketed):
        assert a.shape == b.shape
        if build is build_transformer_encoder:
            assert a.shape[0] == len(doc)
        else:
            assert a.shape[0] > len(doc)
        numpy.testing.assert_allclose(a, b, atol=1e-5)


def test_bucketed_forward_runs_several_calls(tiny_bert, monkeypatch):
    model = build_transformer_encoder(name=tiny_bert)
    docs = make_docs()
    model.initialize(X=docs[:2])
    hf = transformer_node(model).layers[0]
    widths = []
    original = hf._func

    def spy(layer, wordpieces, is_train):
        widths.append(wordpieces.input_ids.shape)
        return original(layer, wordpieces, is_train)

    monkeypatch.setattr(hf, "_func", spy)
    model.predict(docs)
    assert len(widths) > 1
    # The short spans ran without the long ones' padding.
    assert min(width for _, width in widths) < max(width for _, width in widths)


def real_positions(data) -> numpy.ndarray:
    mask = data.wordpieces.attention_mask.astype(bool)
    return data.model_output.last_hidden_state[mask]


def gradients(model, docs, bucketed: bool):
    transformer_node(model).attrs[ATTR] = bucketed
    outputs, backprop = model.begin_update(docs)
    rng = numpy.random.default_rng(0)
    backprop([rng.normal(size=output.shape).astype("f") for output in outputs])
    grads = {}
    for node in model.walk():
        for shim in node.shims:
            for key, param in shim._model.named_parameters():
                if param.grad is not None:
                    grads[key] = param.grad.clone()
                    param.grad = None
    return grads


def test_bucketed_forward_trains_as_one_batch(deterministic_bert):
    model = build_transformer_encoder(name=deterministic_bert)
    docs = make_docs()
    model.initialize(X=docs[:2])
    padded = gradients(model, docs, bucketed=False)
    bucketed = gradients(model, docs, bucketed=True)
    assert padded.keys() == bucketed.keys() and len(padded) > 10
    for key in padded:
        if key.endswith("key.bias"):  # softmax ignores it: its gradient is rounding noise
            continue
        scale = float(padded[key].norm()) + 1e-6
        assert float((padded[key] - bucketed[key]).norm()) / scale < 1e-4, key


def test_bucketed_forward_with_attentions_falls_back(tiny_bert):
    # Outputs it does not lay out again (attentions) run as one padded batch.
    model = build_shared_transformer(name=tiny_bert, transformer_config={"output_attentions": True})
    docs = make_docs()
    model.initialize(X=docs[:2])
    output = model.predict(docs)
    assert "attentions" in output.model_output
    assert all(torch.is_tensor(layer) for layer in output.model_output["attentions"])
