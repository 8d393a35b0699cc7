"""Loading a saved transformer with two copies of its weights fewer at the peak.

spacy-transformers' `HFShim.from_bytes` (1.4) builds the Hugging Face model from its
config (randomly initialized weights) while the serialized weights are still held twice:
as the bytes of the message and as the state dict `torch.load` reads from them, and spaCy's
`from_disk` still holds the model file's bytes above it. For MiniLM (87 MB of fp32 weights)
loading `rsft_ner` peaked at 847 MB against 510 MB resident once loaded, so a process that
only predicts needed two thirds more memory than it uses. `LeanHFShim` reads the state dict
first and lets go of its bytes before it builds the model, and the rsft components read
their model file with `model_from_file`, which lets go of the file's bytes once they are
unpacked. With both the peak was 669 MB. What they load is the same.
"""
import warnings
from io import BytesIO
from pathlib import Path

import srsly
import torch
from spacy.util import SimpleFrozenDict
from spacy_transformers.data_classes import HFObjects
from spacy_transformers.layers.hf_shim import HFShim
from spacy_transformers.util import make_tempdir
from thinc.api import Model, get_torch_default_device
from thinc.util import convert_recursive, is_xp_array


class LeanHFShim(HFShim):
    """spacy-transformers' HFShim, with a `from_bytes` that frees the serialized weights
    before it builds the model. Everything else (and the format) is HFShim's own."""

    def from_bytes(self, bytes_data: bytes) -> "LeanHFShim":
        msg = srsly.msgpack_loads(bytes_data)
        if not msg["config"]:  # saved before it was initialized: nothing to load
            return super().from_bytes(bytes_data)
        device = get_torch_default_device()
        # the only reference to the weights' bytes goes with the BytesIO, once read
        state = torch.load(BytesIO(msg.pop("state")), map_location=device)
        tokenizer, transformer, vocab_file_contents = self._build(msg["config"], msg["tokenizer"])
        self._hfmodel = HFObjects(tokenizer, transformer, vocab_file_contents, SimpleFrozenDict(), SimpleFrozenDict())
        self._model = transformer
        try:
            transformer.load_state_dict(state)
        except RuntimeError:
            # as HFShim does: a state dict saved with another `transformers` version
            warnings.warn(
                "Error loading saved torch state_dict with strict=True, likely due to "
                "differences between 'transformers' versions. Attempting to load with "
                "strict=False as a fallback...\n\nIf you see errors or degraded performance, "
                "retrain the pipeline with the current 'transformers' and "
                "'spacy-transformers' versions."
            )
            transformer.load_state_dict(state, strict=False)
        del state  # its tensors were copied into the model: free them before any move
        transformer.to(device)
        return self

    def _build(self, config_dict, tok_dict):
        """The tokenizer and the (randomly initialized) model of a saved shim, as
        HFShim.from_bytes builds them."""
        with make_tempdir() as temp_dir:
            config_file = temp_dir / "config.json"
            srsly.write_json(config_file, config_dict)
            config = self.config_cls.from_pretrained(config_file)
            tok_kwargs = tok_dict.pop("kwargs", {})
            for name, file_bytes in tok_dict.items():
                (temp_dir / name).write_bytes(file_bytes)
            tokenizer = self.tokenizer_cls.from_pretrained(str(temp_dir.absolute()), **tok_kwargs)
            vocab_file_contents = None
            if hasattr(tokenizer, "vocab_file"):
                vocab_file_name = tokenizer.vocab_files_names["vocab_file"]
                vocab_file_contents = (temp_dir / vocab_file_name).read_bytes()
        return tokenizer, self.model_cls.from_config(config), vocab_file_contents


def use_lean_loading(model: Model) -> Model:
    """Make every spacy-transformers HFShim in `model` load through `LeanHFShim`.

    model (Model): A model that contains spacy-transformers' HFWrapper(s).
    RETURNS (Model): The same model.
    """
    for node in model.walk():
        for shim in node.shims:
            if type(shim) is HFShim:
                shim.__class__ = LeanHFShim
    return model


def model_from_file(model: Model, path: Path) -> Model:
    """`model.from_bytes(path.read_bytes())` (what spaCy's `from_disk` does), with the file's
    bytes released as soon as they are unpacked instead of held until the model has loaded.

    model (Model): The model to load into.
    path (Path): A file written by `model.to_bytes()` (a component's `model` file).
    RETURNS (Model): The same model.
    """
    with Path(path).open("rb") as file_:
        msg = srsly.msgpack_loads(file_.read())
    return model.from_dict(convert_recursive(is_xp_array, model.ops.asarray, msg))
