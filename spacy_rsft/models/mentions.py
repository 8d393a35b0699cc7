"""`spacy-rsft.MentionEncoder.v1`: one vector per entity mention, from a transformer.

Input: the docs and, per doc, the (start, end) token offsets of its mentions. Each mention
is represented by the mean of its own token vectors, the mean of the token vectors in a
window of `context_window` tokens around it and, with `doc_context`, the mean over its whole
document (what the document is about: in a football report "Germany" is the national team,
which eight tokens around the mention often do not say); a linear layer maps that to the
entity-vector space of the KB plus one extra output, the mention's NIL logit (and, with the
linker's `context_type` feature, one score per KB entity type after it). The weights of the linker's
ranking features (`W`, one per scalar feature such as the log prior p(e|m); `T`, a mention
label x entity type table) are parameters of the model too, so the optimizer trains them with
the rest; the component sets their sizes (`nF`, `nL`, `nT`) from its `features` before
initializing (see `spacy_rsft.pipeline.link_features`).
"""
from typing import Callable, List, Optional, Sequence, Tuple

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Linear, Model
from thinc.types import Floats2d

from .types import Tok2VecModel

MentionInput = Tuple[List[Doc], List[Sequence[Tuple[int, int]]]]
FEATURES = ("log_prior", "match")


@registry.architectures("spacy-rsft.MentionEncoder.v1")
def build_mention_encoder(
    tok2vec: Tok2VecModel, context_window: int = 8, nO: Optional[int] = None,
    doc_context: bool = False,
) -> Model[MentionInput, Floats2d]:
    """Build the mention encoder of `rsft_entity_linker`.

    tok2vec (Model[List[Doc], List[Floats2d]]): Token vectors (the embedded transformer or
        a listener).
    context_window (int): Tokens on each side of a mention that form its context.
    nO (Optional[int]): Entity vector length + 1 (+ the number of KB types with
        `context_type`); set from the KB and the features by the component.
    doc_context (bool): Add the mean of the whole document's token vectors to each
        mention's representation.
    RETURNS (Model[MentionInput, Floats2d]): (n_mentions, nO) outputs.
    """
    projection = Linear(nO=nO)
    feature_weights: Model = Model(
        "feature_weights", forward=_no_forward, init=_init_feature_weights,
        params={"W": None, "T": None}, dims={"nF": len(FEATURES), "nL": None, "nT": None},
    )
    return Model(
        "mention_encoder",
        forward=_mention_forward,
        init=_mention_init,
        layers=[tok2vec, projection, feature_weights],
        refs={"tok2vec": tok2vec, "projection": projection, "feature_weights": feature_weights},
        attrs={"context_window": context_window, "doc_context": doc_context},
        dims={"nO": nO},
    )


def _no_forward(model, X, is_train):
    raise NotImplementedError("feature_weights is a parameter holder, not a layer")


def _init_feature_weights(model: Model, X=None, Y=None) -> Model:
    # Start from the prior: the linker's first guess is the KB's most probable entity (the
    # component puts the prior and the match first; it sets the exact initial weights).
    W = model.ops.alloc1f(model.get_dim("nF"))
    W[: min(2, W.shape[0])] = 1.0
    model.set_param("W", W)
    if model.has_dim("nL") is True and model.has_dim("nT") is True:
        model.set_param("T", model.ops.alloc2f(model.get_dim("nL"), model.get_dim("nT")))
    return model


def _mention_init(model: Model, X: Optional[MentionInput] = None, Y=None) -> Model:
    tok2vec, projection, feature_weights = model.layers
    docs = X[0] if X is not None else None
    tok2vec.initialize(X=docs)
    if model.has_dim("nO") is True and projection.has_dim("nO") is not True:
        projection.set_dim("nO", model.get_dim("nO"))
    if projection.has_dim("nI") is not True:
        sample = docs[:1] if docs else [Doc(tok2vec.attrs.get("vocab") or _blank_vocab(), words=["x"])]
        width = tok2vec.predict(sample)[0].shape[1]
        projection.set_dim("nI", _n_blocks(model) * width)
    projection.initialize()
    # Small output weights: the initial scores are then dominated by the prior features.
    projection.set_param("W", projection.get_param("W") * 0.01)
    feature_weights.initialize()
    return model


def _n_blocks(model: Model) -> int:
    """Vectors concatenated per mention: its own, its window's and maybe its document's."""
    return 3 if model.attrs.get("doc_context") else 2


def _blank_vocab():
    from spacy.vocab import Vocab

    return Vocab()


def _mention_forward(
    model: Model, X: MentionInput, is_train: bool
) -> Tuple[Floats2d, Callable]:
    tok2vec, projection, _ = model.layers
    docs, mentions = X
    window = model.attrs["context_window"]
    with_doc = bool(model.attrs.get("doc_context"))
    n_blocks = _n_blocks(model)
    ops = model.ops
    tokvecs, backprop_tok2vec = tok2vec(docs, is_train)
    width = tokvecs[0].shape[1] if tokvecs else projection.get_dim("nI") // n_blocks
    rows, index = [], []
    for d, (vecs, spans) in enumerate(zip(tokvecs, mentions)):
        doc_mean = vecs.mean(axis=0) if with_doc and len(spans) else None
        for start, end in spans:
            lo, hi = max(0, start - window), min(vecs.shape[0], end + window)
            blocks = [vecs[start:end].mean(axis=0), vecs[lo:hi].mean(axis=0)]
            if with_doc:
                blocks.append(doc_mean)
            rows.append(ops.xp.concatenate(blocks))
            index.append((d, start, end, lo, hi))
    features = ops.xp.vstack(rows) if rows else ops.alloc2f(0, n_blocks * width)
    output, backprop_projection = projection(ops.asarray2f(features), is_train)

    def backprop(d_output: Floats2d) -> MentionInput:
        d_features = backprop_projection(d_output)
        d_tokvecs = [ops.alloc2f(*vecs.shape) for vecs in tokvecs]
        d_doc_means = [ops.alloc1f(width) for _ in tokvecs] if with_doc else []
        for row, (d, start, end, lo, hi) in enumerate(index):
            d_tokvecs[d][start:end] += d_features[row, :width] / (end - start)
            d_tokvecs[d][lo:hi] += d_features[row, width : 2 * width] / (hi - lo)
            if with_doc:
                d_doc_means[d] += d_features[row, 2 * width :]
        for d, d_mean in enumerate(d_doc_means):  # every token shares its document's mean
            d_tokvecs[d] += d_mean / max(1, d_tokvecs[d].shape[0])
        backprop_tok2vec(d_tokvecs)
        return X

    return output, backprop
