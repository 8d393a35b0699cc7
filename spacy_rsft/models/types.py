"""Type aliases for the thinc models of spacy-rsft."""
from typing import List

from spacy.tokens import Doc
from thinc.api import Model
from thinc.types import Floats2d

# Docs in, one (n_tokens, width) array per doc out: spaCy's "tok2vec" contract.
Tok2VecModel = Model[List[Doc], List[Floats2d]]
# Docs in, one (n_tokens, n_tags) array of tag logits per doc out.
TaggerModel = Model[List[Doc], List[Floats2d]]
