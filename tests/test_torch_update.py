"""In-place optimizer steps on the transformer (spacy_rsft.pipeline.torch_update)."""
import gc
import pickle

import numpy
import pytest
from thinc.api import fix_random_seed
from thinc.shims import PyTorchShim

from spacy_rsft.pipeline import torch_update
from spacy_rsft.testing import make_tiny_bert

from util import make_examples, make_tiny_ner_nlp, noisy_ner_data

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def deterministic_bert(tmp_path_factory):
    """Dropout 0: two trainings from the same seed then see the same updates."""
    return str(make_tiny_bert(tmp_path_factory.mktemp("bert_no_dropout"), dropout=0.0))


def train(model_path, steps, in_place, monkeypatch):
    if not in_place:  # thinc's own PyTorchShim.finish_update (batching.py calls the hook)
        monkeypatch.setattr("spacy_rsft.pipeline.batching.use_in_place_updates", lambda model: 0)
    fix_random_seed(0)
    nlp = make_tiny_ner_nlp(model_path)
    data, _ = noisy_ner_data(16)
    nlp.initialize(lambda: make_examples(nlp, data))
    optimizer = nlp.create_optimizer()
    tensors = []
    for _ in range(steps):
        nlp.update(make_examples(nlp, data), sgd=optimizer, drop=0.0, losses={})
        gc.collect()
        tensors.append(sum(isinstance(o, torch.Tensor) for o in gc.get_objects()))
    shims = [s for node in nlp.get_pipe("rsft_ner").model.walk() for s in node.shims if isinstance(s, PyTorchShim)]
    weights = {name: p.detach().numpy().copy() for s in shims for name, p in s._model.named_parameters()}
    return weights, tensors, shims, nlp


def test_in_place_updates_equal_thincs_and_leave_no_tensors_behind(deterministic_bert, monkeypatch):
    ours, ours_tensors, shims, nlp = train(deterministic_bert, 6, True, monkeypatch)
    assert shims and all(getattr(s, torch_update._INSTALLED, False) for s in shims)
    with monkeypatch.context() as patch:
        thincs, thinc_tensors, _, _ = train(deterministic_bert, 6, False, patch)
    assert ours.keys() == thincs.keys()
    for name in ours:
        numpy.testing.assert_array_equal(ours[name], thincs[name], err_msg=name)
    # thinc's update leaves a tensor object behind every step for each parameter with a
    # gradient (all but BERT's unused pooler: 37 of 39 here, over 4 steps); ours none.
    assert thinc_tensors[-1] - thinc_tensors[1] >= 4 * (len(ours) // 2)
    assert ours_tensors[-1] - ours_tensors[1] <= 4
    # A trained pipeline still pickles and unpickles (the hook is a partial, not a bound method).
    copy = pickle.loads(pickle.dumps(nlp))
    texts = ["Tom visited London .", "Fiat opened an office in Berlin ."]
    a = nlp.get_pipe("rsft_ner").predict([nlp.make_doc(t) for t in texts])
    b = copy.get_pipe("rsft_ner").predict([copy.make_doc(t) for t in texts])
    for x, y in zip(a, b):
        numpy.testing.assert_array_equal(x, y)
