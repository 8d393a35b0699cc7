"""`python -m spacy_rsft calibrate IN HELDOUT OUT`: fit the temperature of every rsft
component's confidences on held-out data and write the calibrated pipeline."""
from pathlib import Path
from typing import Dict, List, Optional

from ..errors import Errors
from ..io import atomic_output
from .quantize import rsft_components


def calibrate_pipeline(input_path: Path, heldout_path: Path, output_path: Path,
                       components: Optional[List[str]] = None, choose_threshold: bool = False) -> Dict[str, Dict[str, float]]:
    """Fit each rsft component's temperature on the held-out docs (gold entities, and KB ids
    for the linker) and write the pipeline to `output_path` (atomically; it may be
    `input_path`). Predictions do not change; `rsft_ner`'s entity confidences and the
    linker's probabilities do.

    input_path (Path): A trained pipeline.
    heldout_path (Path): A DocBin held out from training (not the evaluation set).
    output_path (Path): Where to write the calibrated pipeline.
    components (Optional[List[str]]): Component names; default: every rsft component.
    choose_threshold (bool): Also choose each linker's NIL `threshold` on the held-out data
        (the best micro F) and write it to the pipeline's config.
    RETURNS (Dict[str, Dict[str, float]]): Per component: temperature, how many outcomes it
        was fitted on, the held-out ECE before and after.
    """
    import spacy
    from spacy.tokens import DocBin
    from spacy.training import Example

    nlp = spacy.load(input_path)
    names = rsft_components(nlp.config)
    if components:
        unknown = [c for c in components if c not in names]
        if unknown:
            raise ValueError(Errors.E331.format(path=input_path, names=unknown, pipeline=nlp.pipe_names))
        names = list(components)
    if not names:
        raise ValueError(Errors.E331.format(path=input_path, names=[], pipeline=nlp.pipe_names))
    try:
        gold = list(DocBin().from_disk(heldout_path).get_docs(nlp.vocab))
    except Exception as err:  # a truncated or foreign file: say which and why
        raise ValueError(Errors.E332.format(path=heldout_path, err=_describe(err))) from None
    if not gold:
        raise ValueError(Errors.E332.format(path=heldout_path, err="it holds no docs"))
    results, thresholds = {}, {}
    for name in names:
        # What runs before the component (a shared transformer, the NER before a linker)
        # annotates the predicted docs first, as in `nlp(text)`.
        predicted = [nlp.make_doc(doc.text) for doc in gold]
        for other, proc in nlp.pipeline:
            if other == name:
                break
            predicted = list(proc.pipe(predicted))
        examples = [Example(p, g) for p, g in zip(predicted, gold)]
        pipe = nlp.get_pipe(name)
        if choose_threshold and nlp.config["components"][name]["factory"] == "rsft_entity_linker":
            results[name] = pipe.calibrate(examples, choose_threshold=True)
            thresholds[name] = pipe.threshold
        else:
            results[name] = pipe.calibrate(examples)
    with atomic_output(output_path) as tmp:
        nlp.to_disk(tmp)
        if thresholds:
            # The threshold is a config setting (`nlp.config` is rebuilt on every access,
            # so it is set in the written config.cfg).
            from thinc.api import Config

            config = Config().from_disk(tmp / "config.cfg", interpolate=False)
            for name, threshold in thresholds.items():
                config["components"][name]["threshold"] = threshold
            config.to_disk(tmp / "config.cfg")
    return results


def _describe(err: Exception) -> str:
    """The error's message, or its type where even that fails (msgpack's errors on a
    foreign file can fail to format themselves)."""
    try:
        return f"{type(err).__name__}: {err}"
    except Exception:
        return type(err).__name__
