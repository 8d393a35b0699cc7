from .encoder import build_transformer_encoder, resolve_model_name
from .tagger import build_transformer_tagger

__all__ = ["build_transformer_encoder", "build_transformer_tagger", "resolve_model_name"]
