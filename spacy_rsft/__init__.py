"""spacy-rsft: transformer NER and entity linking for spaCy, trained with Rejection
Sampling Fine-Tuning.

Everything is registered through entry points (see setup.cfg), so `spacy train` finds it
without `--code`; importing this package is never required in user code.
"""
import importlib

from .about import __version__

# The classes load on first use (PEP 562): importing them here would pull in
# spacy-transformers and transformers (~4.5 s on 2 cores) for every `python -m spacy_rsft`
# command and every entry point, even those that only read files (`convert`, the scorers).
_LAZY = {
    "RejectionSampledCorpus": ".sampling.reader",
    "RsftEntityLinker": ".pipeline.entity_linker",
    "RsftEntityRecognizer": ".pipeline.ner",
}

__all__ = ["__version__", "RejectionSampledCorpus", "RsftEntityLinker", "RsftEntityRecognizer"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
