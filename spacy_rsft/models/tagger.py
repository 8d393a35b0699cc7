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
    features = tok2vec if case_features is None else concatenate(tok2vec, case_features)
    hidden = Maxout(nO=hidden_width, nP=2, dropout=dropout, normalize=True)
    output_layer = Linear(nO=nO)
    model: Model[List[Doc], List[Floats2d]] = chain(
        features, with_array(chain(hidden, output_layer))
    )
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("output_layer", output_layer)
    model.attrs["has_case_features"] = case_features is not None
    return model
