"""`spacy-rsft.TransformerTagger.v1`: transformer features plus case-aware hash features,
then a small feed-forward layer that scores BILUO tags for every token."""
from typing import List, Optional

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Linear, Maxout, Model, chain, concatenate, with_array
from thinc.types import Floats2d

from .types import TaggerModel, Tok2VecModel


@registry.architectures("spacy-rsft.TransformerTagger.v1")
def build_transformer_tagger(
    tok2vec: Tok2VecModel,
    case_features: Optional[Tok2VecModel] = None,
    hidden_width: int = 256,
    dropout: float = 0.1,
    nO: Optional[int] = None,
) -> TaggerModel:
    """Build the tag-scoring model of `rsft_ner`.

    The packaged transformer is uncased, and capitalization is one of the strongest
    NER cues, so spaCy's hash embeddings of NORM, PREFIX, SUFFIX and SHAPE (which keep
    the case pattern, e.g. "Xxxxx") are concatenated to the transformer's token vectors.

    tok2vec (Model[List[Doc], List[Floats2d]]): The transformer features: an embedded
        `spacy-rsft.TransformerEncoder.v1` or a `spacy-transformers.TransformerListener.v1`.
    case_features (Optional[Model[List[Doc], List[Floats2d]]]): Case-aware token features,
        e.g. `spacy.MultiHashEmbed.v2`; None to use the transformer alone.
    hidden_width (int): Width of the hidden Maxout layer.
    dropout (float): Dropout of the hidden layer.
    nO (Optional[int]): Number of tags; set by the component from its labels.
    RETURNS (Model[List[Doc], List[Floats2d]]): Tag logits, one (n_tokens, n_tags) array
        per doc.
    """
    if case_features is None:
        features = tok2vec
    else:
        # A listener's backprop hands the gradient to the shared transformer and returns
        # None, which thinc's concatenate cannot add to the other branch's: it gets a
        # wrapper that returns its input. (Only then: the embedded encoder keeps the model
        # structure that saved pipelines have.)
        features = concatenate(_returns_input(tok2vec) if is_listener(tok2vec) else tok2vec, case_features)
    hidden = Maxout(nO=hidden_width, nP=2, dropout=dropout, normalize=True)
    output_layer = Linear(nO=nO)
    model: Model[List[Doc], List[Floats2d]] = chain(
        features, with_array(chain(hidden, output_layer))
    )
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("output_layer", output_layer)
    model.attrs["has_case_features"] = case_features is not None
    return model


def is_listener(model: Model) -> bool:
    """Whether the model reads a shared `transformer` component (a spacy-transformers
    listener), instead of running a transformer of its own."""
    from spacy_transformers.layers.listener import TransformerListener

    return any(isinstance(node, TransformerListener) for node in model.walk())


def check_upstream_ran(model: Model, docs, name: str) -> None:
    """A listener reads what the shared transformer wrote on each doc, and reads zeros where
    it did not run: refuse that instead of scoring with zeros."""
    if is_listener(model) and any(len(doc) and doc._.trf_data is None for doc in docs):
        from ..errors import Errors

        raise ValueError(Errors.E334.format(name=name))


def _returns_input(layer: Model) -> Model:
    """The listener, with a backprop that returns its input, and (0, width) outputs for
    empty docs (it gives (0, 0), which cannot be concatenated with the case features)."""

    def forward(model: Model, X, is_train: bool):
        Y, backprop_layer = layer(X, is_train)
        width = next((y.shape[1] for y in Y if y.shape[0]), None)
        if width is not None:
            Y = [y if y.shape[0] else model.ops.alloc2f(0, width) for y in Y]

        def backprop(dY):
            backprop_layer(dY)
            return X

        return Y, backprop

    return Model("returns_input", forward, layers=[layer], init=lambda model, X=None, Y=None: layer.initialize(X=X, Y=Y))
