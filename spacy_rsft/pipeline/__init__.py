from .ner import RsftEntityRecognizer, make_rsft_ner

__all__ = ["RsftEntityRecognizer", "make_rsft_ner"]
from .entity_linker import RsftEntityLinker, make_rsft_entity_linker  # noqa: E402

__all__ += ["RsftEntityLinker", "make_rsft_entity_linker"]
from .transformer import RsftTransformer, make_rsft_transformer  # noqa: E402

__all__ += ["RsftTransformer", "make_rsft_transformer"]
