"""The rsft components' dense layers on torch's BLAS (spacy_rsft/pipeline/cpu_ops.py)."""
import numpy
import pytest
from thinc.api import Maxout, NumpyOps

from spacy_rsft.pipeline.cpu_ops import TorchGemmOps, use_torch_gemm
from util import make_examples, make_tiny_ner_nlp


@pytest.mark.parametrize("trans1", [False, True])
@pytest.mark.parametrize("trans2", [False, True])
def test_torch_gemm_matches_blis(trans1, trans2):
    rng = numpy.random.default_rng(0)
    x = rng.normal(size=(7, 5) if trans1 else (5, 7)).astype("float32")
    y = rng.normal(size=(3, 7) if trans2 else (7, 3)).astype("float32")
    expected = NumpyOps().gemm(x, y, trans1=trans1, trans2=trans2)
    got = TorchGemmOps().gemm(x, y, trans1=trans1, trans2=trans2)
    assert isinstance(got, numpy.ndarray) and got.dtype == numpy.float32
    numpy.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    out = numpy.full((5, 3), numpy.nan, dtype="float32")
    assert TorchGemmOps().gemm(x, y, out=out, trans1=trans1, trans2=trans2) is out
    numpy.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_torch_gemm_falls_back_where_torch_cannot_share_the_memory():
    x = numpy.arange(6, dtype="float64").reshape(2, 3)
    y = numpy.ones((3, 2), dtype="float32")
    y.flags.writeable = False
    ops = TorchGemmOps()
    numpy.testing.assert_allclose(ops.gemm(x.astype("float32"), y), x @ y)
    numpy.testing.assert_allclose(ops.gemm(numpy.asfortranarray(x.astype("float32")), y), x @ y)


def test_only_plain_numpy_ops_are_switched():
    class OtherOps(NumpyOps):  # e.g. AppleOps, or a GPU's ops: left alone
        pass

    kept = Maxout(nO=4, nI=3)
    for node in kept.walk():
        node.ops = OtherOps()
    use_torch_gemm(kept)
    assert all(type(node.ops) is OtherOps for node in kept.walk())
    switched = use_torch_gemm(Maxout(nO=4, nI=3))
    assert all(isinstance(node.ops, TorchGemmOps) for node in switched.walk())


def test_ner_trains_and_predicts_on_torch_gemm(tiny_bert):
    nlp = make_tiny_ner_nlp(tiny_bert)
    ner = nlp.get_pipe("rsft_ner")
    examples = make_examples(nlp, [("Anna lives in Paris .", [(0, 4, "PER"), (14, 19, "LOC")])])
    nlp.initialize(lambda: examples)
    # another label set rebuilds the output layer: the new one is switched too
    ner.initialize(lambda: examples, labels=["LOC", "ORG", "PER"])
    assert all(isinstance(node.ops, TorchGemmOps) for node in ner.model.walk())
    optimizer = nlp.resume_training()
    losses = [nlp.update(examples, sgd=optimizer)["rsft_ner"] for _ in range(3)]
    assert all(numpy.isfinite(losses))
    doc = nlp("Anna lives in Paris .")
    assert len(doc.spans["rsft_ner"].attrs["scores"]) == len(doc.spans["rsft_ner"])
