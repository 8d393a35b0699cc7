import numpy
from hypothesis import given, settings
from hypothesis import strategies as st

from spacy_rsft.pipeline.biluo import (
    constrained_viterbi,
    constrained_viterbi_batch,
    spans_from_tags,
    tag_names,
    transition_mask,
)

TAGS = tag_names(["PER", "LOC"])
ALLOWED, START, END = transition_mask(TAGS)


def is_valid(tags):
    open_label = None
    for tag in tags:
        prefix, label = (tag, "") if tag == "O" else (tag[0], tag[2:])
        if open_label is not None:
            if prefix not in ("I", "L") or label != open_label:
                return False
            if prefix == "L":
                open_label = None
        elif prefix in ("I", "L"):
            return False
        elif prefix == "B":
            open_label = label
    return open_label is None


def test_tag_names():
    assert TAGS == ["O", "B-PER", "I-PER", "L-PER", "U-PER", "B-LOC", "I-LOC", "L-LOC", "U-LOC"]


def test_viterbi_follows_scores_when_valid():
    path = ["B-PER", "L-PER", "O", "U-LOC"]
    log_probs = numpy.full((4, len(TAGS)), -5.0)
    for i, tag in enumerate(path):
        log_probs[i, TAGS.index(tag)] = 0.0
    decoded = [TAGS[i] for i in constrained_viterbi(log_probs, ALLOWED, START, END)]
    assert decoded == path
    assert spans_from_tags(decoded) == [(0, 2, "PER"), (3, 4, "LOC")]


def test_viterbi_repairs_invalid_argmax():
    # Per-token argmax would be "I-PER I-LOC": invalid on both counts. The best valid
    # path is B-PER L-PER (-1 - 2), ahead of O U-LOC (-5 - 1.5) and everything else.
    log_probs = numpy.full((2, len(TAGS)), -5.0)
    log_probs[0, TAGS.index("I-PER")] = 0.0
    log_probs[0, TAGS.index("B-PER")] = -1.0
    log_probs[1, TAGS.index("I-LOC")] = 0.0
    log_probs[1, TAGS.index("L-PER")] = -2.0
    log_probs[1, TAGS.index("U-LOC")] = -1.5
    decoded = [TAGS[i] for i in constrained_viterbi(log_probs, ALLOWED, START, END)]
    assert decoded == ["B-PER", "L-PER"]


def test_viterbi_empty():
    assert constrained_viterbi(numpy.zeros((0, len(TAGS))), ALLOWED, START, END).shape == (0,)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=30), st.integers(min_value=0, max_value=2**31 - 1))
def test_viterbi_output_always_valid(n_tokens, seed):
    rng = numpy.random.default_rng(seed)
    log_probs = rng.normal(size=(n_tokens, len(TAGS))) * 3
    decoded = [TAGS[i] for i in constrained_viterbi(log_probs, ALLOWED, START, END)]
    assert is_valid(decoded)
    spans = spans_from_tags(decoded)
    covered = [i for start, end, _ in spans for i in range(start, end)]
    assert len(covered) == len(set(covered))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=25), min_size=0, max_size=6), st.integers(min_value=0, max_value=2**31 - 1))
def test_batched_viterbi_gives_each_docs_own_path(lengths, seed):
    rng = numpy.random.default_rng(seed)
    # float32 like the component's log-probabilities; ties (rounded scores) break alike
    docs = [numpy.round(rng.normal(size=(n, len(TAGS))) * 3, 1).astype("float32") for n in lengths]
    batched = constrained_viterbi_batch(docs, ALLOWED, START, END)
    assert len(batched) == len(docs)
    for log_probs, path in zip(docs, batched):
        assert path.dtype == numpy.int64
        numpy.testing.assert_array_equal(path, constrained_viterbi(log_probs, ALLOWED, START, END))
