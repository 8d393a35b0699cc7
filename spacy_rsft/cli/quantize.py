"""`python -m spacy_rsft quantize IN OUT`: a copy of a trained pipeline whose rsft components
run their transformer with int8 dynamic quantization when loaded (CPU inference)."""
from pathlib import Path
from typing import List, Optional

from ..errors import Errors
from ..io import atomic_output

RSFT_FACTORIES = ("rsft_ner", "rsft_entity_linker")


def rsft_components(config) -> List[str]:
    """Names of the pipeline's rsft components, from its config."""
    return [name for name in config["nlp"]["pipeline"]
            if config["components"].get(name, {}).get("factory") in RSFT_FACTORIES]


def quantize_pipeline(input_path: Path, output_path: Path, components: Optional[List[str]] = None) -> List[str]:
    """Write a copy of the pipeline at `input_path` to `output_path` with `quantize = "int8"`
    on its rsft components (all of them, or those named). The weights stay fp32 on disk; the
    components quantize their transformer when the copy is loaded. Written atomically.

    input_path (Path): A saved pipeline.
    output_path (Path): Where to write the copy.
    components (Optional[List[str]]): Component names; default: every rsft component.
    RETURNS (List[str]): The components set to quantize.
    """
    import spacy
    from spacy.util import load_config

    config = load_config(Path(input_path) / "config.cfg")
    names = rsft_components(config)
    if components:
        unknown = [c for c in components if c not in names]
        if unknown:
            raise ValueError(Errors.E318.format(path=input_path, pipeline=config["nlp"]["pipeline"]) + f" Not rsft components: {unknown}.")
        names = list(components)
    if not names:
        raise ValueError(Errors.E318.format(path=input_path, pipeline=config["nlp"]["pipeline"]))
    overrides = {f"components.{name}.quantize": "int8" for name in names}
    nlp = spacy.load(input_path, config=overrides)
    with atomic_output(output_path) as tmp:
        nlp.to_disk(tmp)
    return names
