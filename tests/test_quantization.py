"""int8 dynamic quantization of the components' transformer (CPU inference): the setting,
the `quantize` command, save/load, and predictions that stay valid and close to fp32."""
import numpy
import pytest
import spacy
import torch

from spacy_rsft.cli.quantize import quantize_pipeline
from spacy_rsft.pipeline.quantization import hf_shims, is_quantized, quantized_layers

from util import TRAIN_DATA, make_examples, make_tiny_ner_nlp


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny rsft_ner trained a few steps (no dropout: fp32 and int8 see the same model)."""
    from spacy_rsft.testing import make_tiny_bert

    root = tmp_path_factory.mktemp("quant")
    nlp = make_tiny_ner_nlp(str(make_tiny_bert(root / "bert", dropout=0.0)))
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(15):
        nlp.update(examples, sgd=optimizer, drop=0.0)
    nlp.to_disk(root / "fp32")
    return root


def log_probs(nlp, texts):
    ner = nlp.get_pipe("rsft_ner")
    return ner.predict([nlp.make_doc(t) for t in texts])


def test_quantized_pipeline_predicts_valid_entities_close_to_fp32(trained):
    texts = [t for t, _ in TRAIN_DATA] + ["A sentence that is a good deal longer than the ones it was trained on, in Rome ."]
    fp32 = spacy.load(trained / "fp32")
    names = quantize_pipeline(trained / "fp32", trained / "int8")
    assert names == ["rsft_ner"]
    int8 = spacy.load(trained / "int8")
    ner = int8.get_pipe("rsft_ner")
    assert ner.quantize == "int8" and is_quantized(ner.model) and not is_quantized(fp32.get_pipe("rsft_ner").model)
    import torch

    layers = dict(hf_shims(ner.model)[0]._model.named_modules())
    # Every Linear layer is int8 (with its outlier input columns in fp32 where it has them).
    assert not any(type(m) is torch.nn.Linear for m in layers.values())
    quantized = [m for m in layers.values() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert len(quantized) == len(quantized_layers(hf_shims(fp32.get_pipe("rsft_ner").model)[0]._model))
    if torch.backends.quantized.engine in ("x86", "fbgemm"):  # 8-bit activations
        from spacy_rsft.pipeline.int8_linear import FullRangeDynamicLinear

        assert all(isinstance(m, FullRangeDynamicLinear) for m in quantized)
    # close to fp32: the same tag at almost every token, probabilities within a few points
    for a, b in zip(log_probs(fp32, texts), log_probs(int8, texts)):
        assert a.shape == b.shape
        assert (a.argmax(-1) == b.argmax(-1)).mean() >= 0.9
        assert numpy.abs(numpy.exp(a) - numpy.exp(b)).max() < 0.1
    for doc in int8.pipe(texts):  # valid entities and confidences
        for span in doc.spans["rsft_ner"]:
            assert 0 <= span.start < span.end <= len(doc)
        assert all(0.0 <= s <= 1.0 for s in doc.spans["rsft_ner"].attrs["scores"])


def test_int8_all_quantizes_every_linear_layer(trained, tmp_path):
    import torch

    quantize_pipeline(trained / "fp32", tmp_path / "all", mode="int8-all")
    ner = spacy.load(tmp_path / "all").get_pipe("rsft_ner")
    assert ner.quantize == "int8-all"
    modules = list(hf_shims(ner.model)[0]._model.modules())
    assert not any(type(m) is torch.nn.Linear for m in modules)
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in modules)
    texts = [t for t, _ in TRAIN_DATA]
    fp32 = spacy.load(trained / "fp32")
    for a, b in zip(log_probs(fp32, texts), log_probs(spacy.load(tmp_path / "all"), texts)):
        assert (a.argmax(-1) == b.argmax(-1)).mean() >= 0.9
    with pytest.raises(ValueError, match="E008.*int4"):
        quantize_pipeline(trained / "fp32", tmp_path / "bad", mode="int4")
    assert not (tmp_path / "bad").exists()


def test_quantized_pipeline_saves_fp32_weights_and_reloads_the_same(trained, tmp_path):
    quantize_pipeline(trained / "fp32", tmp_path / "int8")
    once = spacy.load(tmp_path / "int8")
    once.to_disk(tmp_path / "again")  # a quantized pipeline saves like any other
    again = spacy.load(tmp_path / "again")
    texts = [t for t, _ in TRAIN_DATA]
    for a, b in zip(log_probs(once, texts), log_probs(again, texts)):
        numpy.testing.assert_array_equal(a, b)  # saved fp32, quantized the same way on load
    # switched off again: the fp32 model, exactly
    plain = spacy.load(tmp_path / "again", config={"components": {"rsft_ner": {"quantize": None}}})
    fp32 = spacy.load(trained / "fp32")
    for a, b in zip(log_probs(plain, texts), log_probs(fp32, texts)):
        numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_int8_holds_one_copy_of_the_weights_it_does_not_quantize(trained, tmp_path):
    """The quantized transformer and the fp32 one kept for saving share the embeddings and
    LayerNorms (no second fp32 copy), and the fp32 one keeps its own Linear layers."""
    from spacy_rsft.pipeline.quantization import FP32_ATTR

    quantize_pipeline(trained / "fp32", tmp_path / "int8")
    shim = hf_shims(spacy.load(tmp_path / "int8").get_pipe("rsft_ner").model)[0]
    fp32, int8 = getattr(shim, FP32_ATTR), shim._model
    assert int8 is not fp32
    fp32_tensors = {t.data_ptr() for t in list(fp32.parameters()) + list(fp32.buffers())}
    int8_params = list(int8.parameters())
    assert int8_params and all(p.data_ptr() in fp32_tensors for p in int8_params)
    assert fp32.embeddings.word_embeddings.weight is int8.embeddings.word_embeddings.weight
    linears = [m for m in fp32.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(type(m) is torch.nn.Linear for m in linears)
    reloaded = hf_shims(spacy.load(trained / "fp32").get_pipe("rsft_ner").model)[0]._model
    for (name, a), (_, b) in zip(fp32.state_dict().items(), reloaded.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_a_quantized_component_refuses_to_train(trained):
    nlp = spacy.load(trained / "fp32", config={"components": {"rsft_ner": {"quantize": "int8"}}})
    with pytest.raises(ValueError, match="E317.*quantize"):
        nlp.update(make_examples(nlp))


def test_bad_settings_and_inputs_are_refused(trained, tmp_path):
    with pytest.raises(ValueError, match="quantize"):
        spacy.load(trained / "fp32", config={"components": {"rsft_ner": {"quantize": "int4"}}})
    blank = spacy.blank("en")
    blank.to_disk(tmp_path / "blank")
    with pytest.raises(ValueError, match="E318"):
        quantize_pipeline(tmp_path / "blank", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_quantization_is_refused_on_a_gpu(trained, monkeypatch):
    import torch

    from spacy_rsft.pipeline import quantization

    nlp = spacy.load(trained / "fp32")
    model = nlp.get_pipe("rsft_ner").model
    # no GPU here: make the transformer's weights report CUDA
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    with pytest.raises(ValueError, match="E316.*GPU"):
        quantization.quantize_model(model, "rsft_ner")


X86_ONLY = pytest.mark.skipif(
    torch.backends.quantized.engine not in ("x86", "fbgemm"),
    reason="the 8-bit-activation scheme is x86's (fbgemm); elsewhere torch's default applies",
)


@X86_ONLY
def test_int8_scheme_is_closer_to_fp32_than_torchs_default_and_cannot_saturate():
    """The quantized Linear layers take 8-bit activations and 7-bit weights (torch's default:
    7 and 8): every weight fits -64..63, so an AVX2 pair sum of u8 x s8 products stays in
    int16, and on inputs with an outlier channel (what LayerNorm and GELU outputs have) the
    output is closer to fp32 than torch's, for every seed."""
    import copy

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    from spacy_rsft.pipeline.int8_linear import WEIGHT_QUANT_RANGE, FullRangeDynamicLinear
    from spacy_rsft.pipeline.quantization import int8_scheme

    qconfig, mapping = int8_scheme()
    for seed in range(5):
        torch.manual_seed(seed)
        fp32 = torch.nn.Sequential(torch.nn.Linear(64, 32))
        x = torch.randn(200, 64)
        x[:, 3] *= 30  # one outlier channel sets the per-tensor activation scale
        ours = quantize_dynamic(copy.deepcopy(fp32), {"0": qconfig}, dtype=torch.qint8, mapping=mapping)
        torchs = quantize_dynamic(copy.deepcopy(fp32), {"0": per_channel_dynamic_qconfig}, dtype=torch.qint8)
        assert isinstance(ours[0], FullRangeDynamicLinear) and not isinstance(torchs[0], FullRangeDynamicLinear)
        weight = ours[0].weight().int_repr()
        assert WEIGHT_QUANT_RANGE[0] <= int(weight.min()) and int(weight.max()) <= WEIGHT_QUANT_RANGE[1]
        with torch.no_grad():
            reference = fp32(x)
            error_ours = float((ours(x) - reference).norm() / reference.norm())
            error_torch = float((torchs(x) - reference).norm() / reference.norm())
        assert error_ours < 0.75 * error_torch, (seed, error_ours, error_torch)


def test_a_quantized_pipeline_pickles_and_predicts_the_same(trained, tmp_path):
    """What `nlp.pipe(n_process=...)` with spawn needs: the int8 layers pickle."""
    import pickle

    quantize_pipeline(trained / "fp32", tmp_path / "int8", mode="int8-all")
    int8 = spacy.load(tmp_path / "int8")
    copy = pickle.loads(pickle.dumps(int8))
    texts = [t for t, _ in TRAIN_DATA]
    for a, b in zip(log_probs(int8, texts), log_probs(copy, texts)):
        numpy.testing.assert_array_equal(a, b)


def outlier_input(seed: int):
    """A Linear layer and inputs whose columns 3 and 10 are 30x and 20x the rest (what
    MiniLM's GELU and LayerNorm outputs look like)."""
    torch.manual_seed(seed)
    fp32 = torch.nn.Sequential(torch.nn.Linear(64, 32))
    x = torch.randn(200, 64)
    x[:, 3] *= 30
    x[:, 10] *= 20
    return fp32, x


@X86_ONLY
def test_outlier_columns_stay_fp32_closer_to_fp32_and_the_input_is_restored():
    import copy
    import pickle

    from torch.ao.quantization import quantize_dynamic

    from spacy_rsft.pipeline.int8_linear import OutlierSplitLinear
    from spacy_rsft.pipeline.quantization import int8_scheme, outlier_columns

    qconfig, mapping = int8_scheme()
    for seed in range(5):
        fp32, x = outlier_input(seed)
        maxima = x.abs().amax(0)
        columns = outlier_columns(maxima, k=2, ratio=3.0)
        assert columns.tolist() == [3, 10]
        assert outlier_columns(torch.randn(200, 64).abs().amax(0), k=2, ratio=3.0) is None
        plain = quantize_dynamic(copy.deepcopy(fp32), {"0": qconfig}, dtype=torch.qint8, mapping=mapping)
        split = OutlierSplitLinear(copy.deepcopy(plain[0]), fp32[0].weight, columns)
        original = x.clone()
        with torch.inference_mode():
            reference = fp32(x)
            error_plain = float((plain(x) - reference).norm() / reference.norm())
            out = split(x)
            error_split = float((out - reference).norm() / reference.norm())
            # the input, zeroed in place for the int8 product, is as it was
            assert torch.equal(x, original)
            # a 3-d batch gives the same rows; the module pickles (nlp.pipe(n_process=...))
            torch.testing.assert_close(split(x.view(4, 50, 64)).reshape(200, 32), out)
            torch.testing.assert_close(pickle.loads(pickle.dumps(split))(x), out)
        assert error_split < 0.5 * error_plain, (seed, error_split, error_plain)


def test_int8_splits_the_layers_with_outlier_columns(trained, tmp_path, monkeypatch):
    """The tiny random BERT has no outlier columns; with the ratio at 1 every layer counts as
    having them, and the pipeline then loads, predicts close to fp32, saves and reloads."""
    from spacy_rsft.pipeline import quantization
    from spacy_rsft.pipeline.int8_linear import OutlierSplitLinear

    quantize_pipeline(trained / "fp32", tmp_path / "int8")
    plain = [m for m in hf_shims(spacy.load(tmp_path / "int8").get_pipe("rsft_ner").model)[0]._model.modules()]
    assert not any(isinstance(m, OutlierSplitLinear) for m in plain)
    monkeypatch.setattr(quantization, "OUTLIER_RATIO", 1.0)
    int8 = spacy.load(tmp_path / "int8")
    modules = list(hf_shims(int8.get_pipe("rsft_ner").model)[0]._model.modules())
    n_linear = len(quantized_layers(hf_shims(spacy.load(trained / "fp32").get_pipe("rsft_ner").model)[0]._model))
    assert sum(isinstance(m, OutlierSplitLinear) for m in modules) == n_linear
    texts = [t for t, _ in TRAIN_DATA]
    fp32 = spacy.load(trained / "fp32")
    for a, b in zip(log_probs(fp32, texts), log_probs(int8, texts)):
        assert (a.argmax(-1) == b.argmax(-1)).mean() >= 0.9
    int8.to_disk(tmp_path / "again")
    for a, b in zip(log_probs(int8, texts), log_probs(spacy.load(tmp_path / "again"), texts)):
        numpy.testing.assert_array_equal(a, b)


def test_outlier_calibration_is_the_same_at_every_load(tmp_path, monkeypatch):
    """A loaded transformer is in training mode; calibrating with dropout on would choose
    other columns at every load. With BERT's dropout 0.1, two loads predict the same."""
    from spacy_rsft.pipeline import quantization
    from spacy_rsft.pipeline.int8_linear import OutlierSplitLinear
    from spacy_rsft.testing import make_tiny_bert

    nlp = make_tiny_ner_nlp(str(make_tiny_bert(tmp_path / "bert", dropout=0.1)))
    nlp.initialize(lambda: make_examples(nlp))
    nlp.to_disk(tmp_path / "fp32")
    quantize_pipeline(tmp_path / "fp32", tmp_path / "int8")
    monkeypatch.setattr(quantization, "OUTLIER_RATIO", 1.0)
    texts = [t for t, _ in TRAIN_DATA]
    loads = [spacy.load(tmp_path / "int8") for _ in range(2)]
    columns = [[m.columns.tolist() for m in hf_shims(n.get_pipe("rsft_ner").model)[0]._model.modules()
                if isinstance(m, OutlierSplitLinear)] for n in loads]
    assert columns[0] and columns[0] == columns[1]
    for a, b in zip(log_probs(loads[0], texts), log_probs(loads[1], texts)):
        numpy.testing.assert_array_equal(a, b)
