"""`rsft_transformer`: spacy-transformers' shared `transformer` component, plus
`quantize = "int8"` for CPU inference.

A pipeline whose `rsft_ner` and `rsft_entity_linker` listen to one shared transformer
(`init-config -p ner+el`) runs that transformer once for both, so int8 has to reach it there,
not inside the listening components. This subclass changes nothing else: the same model,
the same serialization (a pipeline saved with `transformer` loads as `rsft_transformer` and
back), the same listeners. With `quantize = "int8"` its Hugging Face model's Linear layers
are quantized when the trained pipeline is loaded, as for the components (see
`quantization.py`): the weights on disk stay fp32 and a quantized transformer does not train.
`python -m spacy_rsft quantize IN OUT` switches a saved pipeline's `transformer` to it.
"""
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

from spacy.errors import Errors as SpacyErrors
from spacy.language import Language
from spacy_transformers.pipeline_component import DEFAULT_CONFIG, Transformer
from thinc.api import Config, Model

from ..models.hf_loading import model_from_file
from .quantization import check_mode as check_quantize_mode
from .quantization import check_trainable, fp32_weights, quantize_model
from .threads import before_torch_runs
from .torch_update import use_in_place_updates

_DEFAULT = Config(DEFAULT_CONFIG["transformer"]).copy()
_DEFAULT["quantize"] = None


@Language.factory("rsft_transformer", assigns=["doc._.trf_data"], default_config=_DEFAULT)
def make_rsft_transformer(nlp: Language, name: str, model: Model, set_extra_annotations: Callable,
                          max_batch_items: int, quantize: Optional[str]) -> "RsftTransformer":
    """spacy-transformers' `transformer` component with a `quantize` setting.

    model, set_extra_annotations, max_batch_items: As for spacy-transformers' `transformer`.
    quantize (Optional[str]): "int8" or "int8-all": when the trained pipeline is
        loaded, run the transformer with int8 dynamic quantization of its Linear layers
        (with outlier input columns in fp32, or without; CPU inference only; every component
        listening to it reads the quantized outputs).
    """
    return RsftTransformer(nlp.vocab, model, set_extra_annotations, name=name,
                           max_batch_items=max_batch_items, quantize=quantize)


class RsftTransformer(Transformer):
    def __init__(self, vocab, model: Model, set_extra_annotations: Callable, *, name: str = "transformer",
                 max_batch_items: int = 128 * 32, quantize: Optional[str] = None) -> None:
        check_quantize_mode(name, quantize)
        super().__init__(vocab, model, set_extra_annotations, name=name, max_batch_items=max_batch_items)
        self.quantize = quantize

    def _quantize_loaded(self) -> None:
        if self.quantize is not None:
            quantize_model(self.model, self.name, self.quantize)

    def predict(self, docs):
        before_torch_runs()  # nlp.pipe(n_process=N): see threads.py
        return super().predict(docs)

    def initialize(self, get_examples: Callable, *, nlp: Optional[Language] = None) -> None:
        check_trainable(self.model, self.name)
        super().initialize(get_examples, nlp=nlp)

    def update(self, examples, *, drop: float = 0.0, sgd=None, losses=None):
        check_trainable(self.model, self.name)
        before_torch_runs()
        # spacy-transformers' update applies `sgd` through the model, not finish_update
        use_in_place_updates(self.model)
        return super().update(examples, drop=drop, sgd=sgd, losses=losses)

    def finish_update(self, sgd) -> None:
        """Transformer.finish_update, with the parameters updated in place (see
        `torch_update.py`: thinc's own update leaves tensor objects behind every step)."""
        use_in_place_updates(self.model)
        super().finish_update(sgd)

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        with fp32_weights(self.model):  # a quantized transformer is saved as its fp32 original
            super().to_disk(path, exclude=exclude)

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        with fp32_weights(self.model):
            return super().to_bytes(exclude=exclude)

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "RsftTransformer":
        model_file = Path(path) / "model"
        if "model" in exclude or not model_file.is_file():  # (a directory: spacy-transformers v1.0)
            super().from_disk(path, exclude=exclude)
        else:  # the model read with `model_from_file` (less memory at the peak)
            super().from_disk(path, exclude=[*exclude, "model"])
            try:
                model_from_file(self.model, model_file)
            except AttributeError:
                raise ValueError(SpacyErrors.E149) from None
        self._quantize_loaded()
        return self

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "RsftTransformer":
        super().from_bytes(bytes_data, exclude=exclude)
        self._quantize_loaded()
        return self
