from .ner import RsftEntityRecognizer, make_rsft_ner

__all__ = ["RsftEntityRecognizer", "make_rsft_ner"]
