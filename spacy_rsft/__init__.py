"""spacy-rsft: transformer NER and entity linking for spaCy, trained with Rejection
Sampling Fine-Tuning.

Everything is registered through entry points (see setup.cfg), so `spacy train` finds it
without `--code`; importing this package is never required in user code.
"""
from .about import __version__
from .pipeline.ner import RsftEntityRecognizer

__all__ = ["__version__", "RsftEntityRecognizer"]
