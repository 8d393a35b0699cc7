"""`python -m spacy_rsft quantize IN OUT`: a copy of a trained pipeline whose rsft components
run their transformer with int8 dynamic quantization when loaded (CPU inference)."""
from pathlib import Path
from typing import List, Optional

from ..errors import Errors
from ..pipeline.quantization import check_mode
from ..io import atomic_output

RSFT_FACTORIES = ("rsft_ner", "rsft_entity_linker")


def rsft_components(config) -> List[str]:
    """Names of the pipeline's rsft components, from its config."""
    return [name for name in config["nlp"]["pipeline"]
            if config["components"].get(name, {}).get("factory") in RSFT_FACTORIES]


TRANSFORMER_FACTORIES = ("transformer", "rsft_transformer")


def listened_to(config, name: str) -> Optional[str]:
    """The shared transformer component that component `name` listens to, or None when it
    has a transformer of its own (from its config: a TransformerListener's `upstream`)."""
    transformers = [n for n in config["nlp"]["pipeline"]
                    if config["components"].get(n, {}).get("factory") in TRANSFORMER_FACTORIES]
    stack = [config["components"][name].get("model", {})]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if "TransformerListener" in str(node.get("@architectures", "")):
            upstream = node.get("upstream", "*")
            # "*" listens to the first transformer before it, as spaCy links listeners
            before = [n for n in transformers if config["nlp"]["pipeline"].index(n) < config["nlp"]["pipeline"].index(name)]
            return upstream if upstream != "*" else (before[-1] if before else None)
        stack.extend(node.values())
    return None


def quantize_targets(config) -> List[str]:
    """What int8 applies to: each rsft component with a transformer of its own, and each
    shared transformer an rsft component listens to, in pipeline order."""
    targets = set()
    for name in rsft_components(config):
        upstream = listened_to(config, name)
        targets.add(upstream if upstream is not None else name)
    return [n for n in config["nlp"]["pipeline"] if n in targets]


def quantize_pipeline(input_path: Path, output_path: Path, components: Optional[List[str]] = None,
                      mode: str = "int8") -> List[str]:
    """Write a copy of the pipeline at `input_path` to `output_path` that runs its
    transformers with int8 dynamic quantization when loaded: `quantize = "int8"` on each rsft
    component with a transformer of its own, and on each shared transformer the rsft
    components listen to (its factory becomes `rsft_transformer`, spacy-transformers'
    component with that setting). The weights stay fp32 on disk. Written atomically.

    input_path (Path): A saved pipeline.
    output_path (Path): Where to write the copy.
    components (Optional[List[str]]): Component names (rsft components, shared
        transformers); default: all of them.
    mode (str): "int8" (outlier input columns stay fp32) or "int8-all".
    RETURNS (List[str]): The components set to quantize.
    """
    import spacy
    from spacy.util import load_config

    check_mode("python -m spacy_rsft quantize", mode)
    config = load_config(Path(input_path) / "config.cfg")
    targets = quantize_targets(config)
    pipeline = config["nlp"]["pipeline"]
    if not targets:
        raise ValueError(Errors.E318.format(path=input_path, pipeline=pipeline))
    names = targets
    if components:
        for name in components:
            upstream = listened_to(config, name) if name in rsft_components(config) else None
            if upstream is not None:
                raise ValueError(Errors.E335.format(name=name, upstream=upstream, path=input_path))
        unknown = [c for c in components if c not in targets]
        if unknown:
            raise ValueError(Errors.E318.format(path=input_path, pipeline=pipeline) + f" Not quantizable: {unknown}.")
        names = list(components)
    overrides = {}
    for name in names:
        if config["components"][name]["factory"] in TRANSFORMER_FACTORIES:
            overrides[f"components.{name}.factory"] = "rsft_transformer"
        overrides[f"components.{name}.quantize"] = mode
    nlp = spacy.load(input_path, config=overrides)
    with atomic_output(output_path) as tmp:
        nlp.to_disk(tmp)
    return names
