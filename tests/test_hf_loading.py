"""Loading a saved pipeline holds fewer copies of the transformer's weights at once
(`spacy_rsft/models/hf_loading.py`), and loads exactly what was saved.

Python's `tracemalloc` sees the serialized bytes (Python objects) but not torch's tensors,
so the tests measure the bytes: the model file's own and the weights' bytes inside it."""
import gc
import tracemalloc

import numpy
import pytest
import spacy
import torch
from transformers import AutoModel, BertConfig, BertModel

from spacy_rsft.models.hf_loading import LeanHFShim
from spacy_rsft.pipeline.quantization import hf_shims
from spacy_rsft.testing import make_tiny_bert

from util import TRAIN_DATA, make_examples, make_tiny_ner_nlp


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A saved rsft_ner whose transformer's weights are most of its model file (a wide
    embedding table: ~13 MB), so that copies of them stand out from everything else a
    load allocates."""
    root = tmp_path_factory.mktemp("hf_loading")
    bert = make_tiny_bert(root / "bert")
    config = BertConfig.from_pretrained(bert)
    config.vocab_size = 40000  # rows past the toy tokenizer's vocab are never looked up
    BertModel(config).save_pretrained(bert)
    nlp = make_tiny_ner_nlp(str(bert))
    optimizer = nlp.initialize(lambda: make_examples(nlp))
    nlp.update(make_examples(nlp), sgd=optimizer)
    nlp.to_disk(root / "pipeline")
    return nlp, root / "pipeline"


def test_a_loaded_pipeline_has_the_saved_weights_and_predicts_the_same(saved):
    nlp, path = saved
    loaded = spacy.load(path)
    (shim,) = hf_shims(loaded.get_pipe("rsft_ner").model)
    assert isinstance(shim, LeanHFShim)
    original = hf_shims(nlp.get_pipe("rsft_ner").model)[0]._model.state_dict()
    state = shim._model.state_dict()
    assert state.keys() == original.keys()
    for name, tensor in original.items():
        assert torch.equal(state[name], tensor), name
    docs = [nlp.make_doc(text) for text, _ in TRAIN_DATA]
    for a, b in zip(nlp.get_pipe("rsft_ner").predict(docs), loaded.get_pipe("rsft_ner").predict(docs)):
        numpy.testing.assert_array_equal(a, b)


def test_the_weights_bytes_are_released_before_the_model_is_built(saved, monkeypatch):
    """spacy-transformers' HFShim builds the (randomly initialized) model while it still holds
    the file's bytes, the weights' bytes unpacked from them and the state dict read from
    those; here only the unpacked model message (about one copy) is alive by then."""
    _, path = saved
    size = (path / "rsft_ner" / "model").stat().st_size
    traced_at_build = []
    from_config = AutoModel.from_config

    def recording_from_config(*args, **kwargs):
        # what is still referenced, not cyclic garbage a collection has yet to free: when the
        # collector last ran depends on the tests before this one
        gc.collect()
        traced_at_build.append(tracemalloc.get_traced_memory()[0])
        return from_config(*args, **kwargs)

    monkeypatch.setattr(AutoModel, "from_config", recording_from_config)
    # tracemalloc counts every Python allocation of the process in the window, not only the
    # load's; in two full suite runs something else held about 0.8 copies' worth more at the
    # build (1.83 copies against 1.3, never when this file runs alone). What the load holds is
    # the same every time and anything else only adds, so the smaller of two loads measures it.
    peaks = []
    for _ in range(2):
        tracemalloc.start()
        try:
            spacy.load(path)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert len(traced_at_build) == 2
    copies = [round(traced / size, 2) for traced in traced_at_build]
    # one copy of the serialized model (the model message thinc holds) and small change;
    # HFShim held three (file bytes, message, weights' bytes)
    assert min(traced_at_build) < 1.5 * size, copies
    # at most two copies at any moment (the message and the weights' bytes unpacked from
    # it, while torch reads them); spaCy's load held the file's bytes beside those (3x)
    assert min(peaks) < 2.6 * size, [round(peak / size, 2) for peak in peaks]
