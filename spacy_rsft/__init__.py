"""spacy-rsft: transformer NER and entity linking for spaCy, trained with Rejection
Sampling Fine-Tuning.

Everything is registered through entry points (see setup.cfg), so `spacy train` finds it
without `--code`; importing this package is never required in user code.
"""
from .about import __version__
from .pipeline.entity_linker import RsftEntityLinker
from .pipeline.ner import RsftEntityRecognizer
from .sampling.reader import RejectionSampledCorpus

__all__ = ["__version__", "RejectionSampledCorpus", "RsftEntityLinker", "RsftEntityRecognizer"]
