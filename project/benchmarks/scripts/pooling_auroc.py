"""Which of a sentence's token losses find its label noise: on one trained NoiseBench model,
the AUROC for "this sentence's labels differ from the clean ones" of each way of pooling the
sentence's token losses (largest over all tokens, over the tokens outside the labelled
entities, over those inside them; mean; sum), and how the noisy sentences differ (only
missing entities, only spurious, only a type, a mix).

The reader ranks sentences by one pooled loss (`unit_loss`, `loss_tokens`); its stats keep
only that one, so the alternatives are scored here from scratch: `get_token_losses` (no
dropout, no gradient) over the noisy training docs. Nothing is trained.

    python scripts/pooling_auroc.py "training/full/nb_denoise_sentmix@noise_crowdbest/seed1/model-best" \\
        corpus/full/noisebench/noise_crowdbest.spacy corpus/full/noisebench/clean.spacy \\
        --output results/full/pooling_auroc_sentmix_crowd_seed1.json
"""
from collections import Counter
from pathlib import Path
from typing import Annotated, Dict, List, Optional

import numpy
import spacy
import typer
from spacy.tokens import Doc, DocBin
from spacy.training import Example

from bench import write_json
from data import noise_kind
from spacy_rsft.sampling.detection import auroc


def main(
    model: Annotated[Path, typer.Argument(help="A trained pipeline with an rsft_ner component")],
    noisy_train: Annotated[Path, typer.Argument(help="The noisy training DocBin")],
    clean_train: Annotated[Path, typer.Argument(help="The same docs with the clean labels")],
    output: Annotated[Optional[Path], typer.Option(help="Write the numbers here as JSON")] = None,
    batch_size: Annotated[int, typer.Option()] = 16,
) -> None:
    nlp, noisy, clean = load_model_and_docs(model, noisy_train, clean_train)
    ner = nlp.get_pipe("rsft_ner")
    examples = [Example(Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]), d) for d in noisy]
    losses: List[numpy.ndarray] = []
    for i in range(0, len(examples), batch_size):
        losses += ner.get_token_losses(examples[i : i + batch_size])
    positive, kinds, pools = pooled_sentences(clean, noisy, losses)
    result = {
        "model": str(model),
        "noisy_train": str(noisy_train),
        "sentences": len(positive),
        "noisy": int(positive.sum()),
        "noisy_by_kind": dict(kinds),
        "auroc": {name: auroc(numpy.asarray(v), positive) for name, v in pools.items()},
    }
    print(f"{result['noisy']} of {result['sentences']} sentences noisy: {result['noisy_by_kind']}")
    for name, value in result["auroc"].items():
        print(f"  {name:<12} AUROC {value:.3f}")
    if output is not None:
        write_json(output, result)


def load_model_and_docs(model: Path, noisy_train: Path, clean_train: Path):
    """The trained pipeline and the noisy and clean training docs, in the pipeline's vocab."""
    nlp = spacy.load(model)
    noisy = list(DocBin().from_disk(noisy_train).get_docs(nlp.vocab))
    clean = list(DocBin().from_disk(clean_train).get_docs(nlp.vocab))
    return nlp, noisy, clean


def pooled_sentences(clean: List[Doc], noisy: List[Doc], losses: List[numpy.ndarray]):
    """Per sentence of the noisy docs: whether its labels differ from the clean ones, how
    (counted), and its token losses pooled each way of POOLS."""
    pools: Dict[str, List[float]] = {name: [] for name in POOLS}
    flags: List[bool] = []
    kinds: Counter = Counter()
    for gold_doc, doc, doc_losses in zip(clean, noisy, losses):
        inside = numpy.zeros((len(doc),), dtype=bool)
        for ent in doc.ents:
            inside[ent.start : ent.end] = True
        for sent in doc.sents:
            kind = noise_kind(gold_doc, doc, sent.start, sent.end)
            flags.append(kind is not None)
            if kind is not None:
                kinds[kind] += 1
            values, ins = doc_losses[sent.start : sent.end], inside[sent.start : sent.end]
            for name, pool in POOLS.items():
                pools[name].append(pool(values, ins))
    return numpy.asarray(flags), kinds, pools


def _max(values: numpy.ndarray) -> float:
    values = values[~numpy.isnan(values)]
    return float(values.max()) if len(values) else 0.0


POOLS = {
    "max_all": lambda v, ins: _max(v),
    "max_outside": lambda v, ins: _max(v[~ins]),
    "max_entity": lambda v, ins: _max(v[ins]),
    "mean_all": lambda v, ins: float(numpy.nanmean(v)) if (~numpy.isnan(v)).any() else 0.0,
    "sum_all": lambda v, ins: float(numpy.nansum(v)),
}


if __name__ == "__main__":
    typer.run(main)
