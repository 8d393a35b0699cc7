"""Can a loss on the labelled entities find the sentences whose labels mistype them?

sentmix ranks sentences by their largest loss outside the labelled entities, which finds
missing entities and cannot see a wrong type (`rejection_whatif.py --by-kind`: 4-6% of crowd's
mistyped sentences in its top 800). The all-token loss sees types but also every hard entity.
This scores, on one trained NoiseBench model, two signals over each sentence's labelled
entities (the largest over its entities of the mean over each entity's tokens):

- `entity_loss`: the loss of the labelled tag, −log p(tag);
- `type_loss`: the loss of the labelled type given the tag's position, −log(p(X-TYPE) /
  Σ_type' p(X-TYPE')) for the entity's BILU positions X: the model's doubt about the type,
  without its doubt about whether and where there is an entity, so a hard but correctly typed
  entity scores low.

It prints their AUROC against the clean labels per kind of noise and, with `--run RUN_DIR` (a
sentence-unit rejecting run with its stats), among the sentences that run's last epoch would
keep (the top k by its recorded loss, k its expected rejections): what a second channel could
add to sentmix. Scores are fresh (no dropout) from a saved model, not what a run sees in
training. Nothing is trained.

    python scripts/type_signal.py "training/full/nb_denoise_sentmix@noise_crowdbest/seed2/model-best" \\
        corpus/full/noisebench/noise_crowdbest.spacy corpus/full/noisebench/clean.spacy \\
        --run "training/full/nb_denoise_sentmix@noise_crowdbest/seed2" \\
        --output results/full/type_signal_sentmix_crowd_seed2.json
"""
import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Dict, List, Optional, Sequence, Tuple

import numpy
import typer
from spacy.tokens import Doc

from bench import write_json
from data import noise_kind
from pooling_auroc import load_model_and_docs
from spacy_rsft.cli.filter import predict_tag_log_probs
from spacy_rsft.sampling.detection import auroc

SIGNALS = ("entity_loss", "type_loss")


def main(
    model: Annotated[Path, typer.Argument(help="A trained pipeline with an rsft_ner component")],
    noisy_train: Annotated[Path, typer.Argument(help="The noisy training DocBin")],
    clean_train: Annotated[Path, typer.Argument(help="The same docs with the clean labels")],
    run: Annotated[Optional[Path], typer.Option(help="A sentence-unit run folder: score the sentences its last epoch keeps")] = None,
    output: Annotated[Optional[Path], typer.Option(help="Write the numbers here as JSON")] = None,
    batch_size: Annotated[int, typer.Option()] = 16,
) -> None:
    nlp, noisy, clean = load_model_and_docs(model, noisy_train, clean_train)
    log_probs = predict_tags(nlp, noisy, batch_size)
    tags = nlp.get_pipe("rsft_ner").tags
    kinds, scores = [], {name: [] for name in SIGNALS}
    for gold_doc, doc, doc_log_probs in zip(clean, noisy, log_probs):
        for sent in doc.sents:
            kinds.append(noise_kind(gold_doc, doc, sent.start, sent.end))
            for name, value in sentence_signals(doc_log_probs, doc, sent.start, sent.end, tags).items():
                scores[name].append(value)
    result = {"model": str(model), "noisy_train": str(noisy_train), "noisy_by_kind": dict(Counter(filter(None, kinds))),
              "all": summarize(kinds, {n: numpy.asarray(v) for n, v in scores.items()})}
    if run is not None:
        kept = kept_sentences(run, noisy)
        result["run"] = str(run)
        result["kept"] = summarize([kinds[i] for i in kept], {n: numpy.asarray(v)[kept] for n, v in scores.items()})
    print(json.dumps(result, indent=1))
    if output is not None:
        write_json(output, result)


def predict_tags(nlp, docs: Sequence[Doc], batch_size: int = 16) -> List[numpy.ndarray]:
    """rsft_ner's tag log-probabilities over unannotated copies of the docs (the components
    before it run first, e.g. a shared transformer)."""
    return predict_tag_log_probs(nlp, docs, batch_size)[0]


def out_of_fold_log_probs(folds_dir: Path, docs: Sequence[Doc]) -> Tuple[List[numpy.ndarray], List[str]]:
    """Each doc's tag log-probabilities under the fold model that never saw it (the folds of
    folds_dir/folds.json, the models in folds_dir/modelK/model-best), and the tags: the
    filter's own fold loop, which refuses fold models with different tags."""
    from spacy_rsft.cli.filter import fold_columns, predict_tag_log_probs, read_folds

    folds = read_folds(folds_dir / "folds.json", len(docs))
    return fold_columns(str(folds_dir / "model{fold}" / "model-best"), folds, docs, predict_tag_log_probs)


def sentence_signals(log_probs: numpy.ndarray, doc: Doc, start: int, end: int, tags: Sequence[str]) -> Dict[str, float]:
    """The largest, over the sentence's labelled entities, of each signal's mean over the
    entity's tokens (0 for a sentence without labelled entities)."""
    index = {tag: i for i, tag in enumerate(tags)}
    types = sorted({tag[2:] for tag in tags if tag != "O"})
    best = {name: 0.0 for name in SIGNALS}
    for ent in doc.ents:
        if not (start <= ent.start and ent.end <= end):
            continue
        prefixes = bilu_prefixes(len(ent))
        rows = log_probs[ent.start : ent.end]
        own = numpy.asarray([rows[k, index[f"{p}-{ent.label_}"]] for k, p in enumerate(prefixes)])
        # log Σ over types of p(X-TYPE) at each position: the probability that the token has
        # this position in some entity
        position = numpy.asarray([numpy.logaddexp.reduce([rows[k, index[f"{p}-{t}"]] for t in types])
                                  for k, p in enumerate(prefixes)])
        best["entity_loss"] = max(best["entity_loss"], float(-own.mean()))
        best["type_loss"] = max(best["type_loss"], float((position - own).mean()))
    return best


def unannotated(vocab, docs: Sequence[Doc]) -> List[Doc]:
    """The docs' words and spaces without their annotation, for a pipeline to predict on."""
    return [Doc(vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]) for d in docs]


def bilu_prefixes(n: int) -> List[str]:
    """The BILU positions of an entity of n tokens."""
    return ["U"] if n == 1 else ["B"] + ["I"] * (n - 2) + ["L"]


def kept_sentences(run: Path, noisy: List[Doc]) -> numpy.ndarray:
    """Indices (in doc.sents order) of the sentences the run's last scored epoch would keep:
    all but the top k by its recorded loss, k the epoch's expected rejections."""
    units = json.loads((run / "sampler_stats.units.json").read_text(encoding="utf8"))
    if units["unit"] != "sentence":
        raise ValueError(f"{run}: --run needs a sentence-unit run; its units are {units['unit']!r}")
    lines = [json.loads(line) for line in (run / "sampler_stats.jsonl").read_text(encoding="utf8").splitlines()]
    last = [line for line in lines if line.get("losses")][-1]
    losses = numpy.asarray([numpy.nan if x is None else x for x in last["losses"]])
    k = int(round(float((1 - numpy.asarray(last["acceptance"])).sum())))
    order = {(d, s.start): i for i, (d, s) in enumerate((d, s) for d, doc in enumerate(noisy) for s in doc.sents)}
    sentence_of_unit = numpy.asarray([order[(d, s)] for d, s in zip(units["doc"], units["start"])])
    rejected = sentence_of_unit[numpy.argsort(-numpy.nan_to_num(losses, nan=-numpy.inf), kind="mergesort")[:k]]
    return numpy.setdiff1d(numpy.arange(len(order)), rejected)


def summarize(kinds: List[Optional[str]], scores: Dict[str, numpy.ndarray], ks=(50, 100, 200, 400)) -> Dict:
    """Per signal: AUROC for any noise and for each kind against the clean sentences, and what
    the top k hold."""
    noisy = numpy.asarray([k is not None for k in kinds])
    out = {"sentences": len(kinds), "noisy": int(noisy.sum())}
    for name, values in scores.items():
        entry = {"auroc_any": auroc(values, noisy)}
        for kind in sorted(set(filter(None, kinds))):
            chosen = numpy.asarray([k is None or k == kind for k in kinds])
            entry[f"auroc_{kind}"] = auroc(values[chosen], noisy[chosen])
        order = numpy.argsort(-values, kind="mergesort")
        entry["top"] = {str(k): dict(Counter(kinds[i] or "clean" for i in order[:k])) for k in ks if k <= len(kinds)}
        out[name] = entry
    return out


if __name__ == "__main__":
    typer.run(main)
