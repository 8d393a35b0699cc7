from .ner import RsftEntityRecognizer, make_rsft_ner

__all__ = ["RsftEntityRecognizer", "make_rsft_ner"]
from .entity_linker import RsftEntityLinker, make_rsft_entity_linker  # noqa: E402

__all__ += ["RsftEntityLinker", "make_rsft_entity_linker"]
