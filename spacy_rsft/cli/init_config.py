"""`python -m spacy_rsft init-config`: complete, valid training configs for `ner`, `el` and
`ner+el`, like `spacy init config`. The templates in `spacy_rsft/configs/` are the single
source: the project's configs are written by this command (a test keeps them in sync).
Comments in a template are carried into the written config (a `Config` drops them), so the
notes on the step budget reach the user's file.
"""
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from thinc.api import Config

from ..sampling.sampler import parse_target

TEMPLATES = Path(__file__).resolve().parents[1] / "configs"
PIPELINES = ("ner", "el", "ner+el")
# `denoise` as the NoiseBench evidence supports it (README, Results; docs/results.md): rank the tokens outside
# the gold entities apart from the entity spans and reject only them (a token of an entity the
# labels miss keeps a high loss; a hard but right entity has one too), masked in their
# document, from the second sampled epoch at the highest noise rate estimated so far (the
# estimate falls as the model memorizes its labels; the noise does not). Whole examples or
# sentences, ranked by loss, lost to uniform on real noise.
DENOISE_READER = {
    "unit": "span",
    "span_kinds": "outside",
    "context": "document",
    "noise_rate": "auto",
    "noise_rate_estimate": "max",
    "ramp_epochs": 2,
    "temperature": 0.1,
}


def _template(name: str) -> Config:
    return Config().from_disk(TEMPLATES / f"{name}.cfg", interpolate=False)


def _anchor(line: str, section: str) -> Tuple[str, Optional[Tuple[str, str]]]:
    # What a line starts: (section, "") for a header, (section, key) for a setting.
    stripped = line.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        return stripped[1:-1], (stripped[1:-1], "")
    if "=" in stripped and not stripped.startswith("#"):
        return section, (section, stripped.split("=", 1)[0].strip())
    return section, None


def _template_comments() -> Dict[Tuple[str, str], List[str]]:
    # Comment blocks directly above a header or setting, from every template.
    comments: Dict[Tuple[str, str], List[str]] = {}
    for name in ("ner", "el"):
        section, block = "", []
        for line in (TEMPLATES / f"{name}.cfg").read_text(encoding="utf8").splitlines():
            if line.strip().startswith("#"):
                block.append(line.strip())
                continue
            section, anchor = _anchor(line, section)
            if anchor is not None and block:
                comments.setdefault(anchor, block)
            block = []
    return comments


def make_config(pipeline: str = "ner", target: str = "uniform", model: Optional[str] = None,
                shared: bool = True) -> Config:
    """Build a training config.

    pipeline (str): "ner", "el" or "ner+el".
    target (str): The reader's target (e.g. "uniform", "denoise", "hard+balanced");
        "denoise" alone also gets the reader settings of DENOISE_READER.
    model (Optional[str]): Transformer name or path (default: the packaged MiniLM).
    shared (bool): For "ner+el": one `transformer` component that both components listen
        to (one forward pass for both); False: a transformer inside each component.
    RETURNS (Config): The config, not interpolated (it keeps its ${paths} references).
    """
    if pipeline not in PIPELINES:
        raise ValueError(f"Unknown pipeline {pipeline!r}: expected one of {', '.join(PIPELINES)}.")
    parse_target(target)
    if pipeline == "ner+el":
        config = _template("ner")
        el = _template("el")
        config["paths"]["kb"] = el["paths"]["kb"]
        config["paths"]["entities"] = el["paths"]["entities"]
        config["nlp"]["pipeline"] = ["rsft_ner", "rsft_entity_linker"]
        config["components"]["rsft_entity_linker"] = el["components"]["rsft_entity_linker"]
        config["initialize"]["components"] = el["initialize"]["components"]
        # Link what the NER predicts, so the score is end to end.
        config["components"]["rsft_entity_linker"]["use_gold_ents"] = False
        weights = {key: None for key in {**config["training"]["score_weights"], **el["training"]["score_weights"]}}
        weights.update({"ents_f": 0.5, "nel_micro_f": 0.5})
        config["training"]["score_weights"] = weights
        if shared:
            share_transformer(config, ["rsft_ner", "rsft_entity_linker"])
    else:
        config = _template(pipeline)
    config["corpora"]["train"]["target"] = target
    if target == "denoise":
        config["corpora"]["train"].update(DENOISE_READER)
    if model is not None:
        config["paths"]["model"] = model
    return config


def share_transformer(config: Config, names: List[str]) -> None:
    """Move the components' embedded transformer into one `transformer` component at the
    head of the pipeline, and give each component a listener of it instead."""
    embedded = config["components"][names[0]]["model"]["tok2vec"]
    shared = {key: embedded[key] for key in ("name", "get_spans", "tokenizer_config", "transformer_config", "mixed_precision", "grad_scaler_config") if key in embedded}
    config["components"]["transformer"] = {
        "factory": "transformer",
        "max_batch_items": 4096,
        "set_extra_annotations": {"@annotation_setters": "spacy-transformers.null_annotation_setter.v1"},
        "model": {"@architectures": "spacy-rsft.TransformerModel.v1", **shared},
    }
    for name in names:
        tok2vec = config["components"][name]["model"]["tok2vec"]
        config["components"][name]["model"]["tok2vec"] = {
            "@architectures": "spacy-transformers.TransformerListener.v1",
            "grad_factor": tok2vec.get("grad_factor", 1.0),
            "upstream": "transformer",
            "pooling": tok2vec["pooling"],
        }
    config["nlp"]["pipeline"] = ["transformer"] + list(config["nlp"]["pipeline"])


def config_text(pipeline: str = "ner", target: str = "uniform", model: Optional[str] = None,
                shared: bool = True) -> str:
    """The text of a config file: `make_config`'s config with the templates' comments.

    pipeline, target, model, shared: As for `make_config`.
    RETURNS (str): The config, as `write_config` writes it.
    """
    comments = _template_comments()
    lines: List[str] = []
    section = ""
    for line in make_config(pipeline, target, model, shared).to_str().splitlines():
        section, anchor = _anchor(line, section)
        if anchor is not None:
            lines.extend(comments.get(anchor, []))
        lines.append(line)
    return "\n".join(lines)


def write_config(output: Path, pipeline: str = "ner", target: str = "uniform", model: Optional[str] = None,
                 shared: bool = True) -> Path:
    """Write a config file (atomically).

    output (Path): Where to write it.
    pipeline, target, model, shared: As for `make_config`.
    RETURNS (Path): The file.
    """
    from ..io import atomic_output

    text = config_text(pipeline, target, model, shared)
    with atomic_output(output) as tmp:
        tmp.write_text(text, encoding="utf8")
    return output
