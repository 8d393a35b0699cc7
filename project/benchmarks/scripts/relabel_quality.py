"""How right the model's entities are in the sentences a run rejected, against the clean labels:
would relabeling them (the reader's `rejected = "relabel"`) give better labels than the noisy
ones it masked?

For one sampled epoch of a finished run (default: the last), the rejected and the accepted
sentences are each scored three ways against the clean labels, entity-level micro P/R/F
(a span and label both right): the noisy labels the run trained on, and the entities a model
of the run predicts (model-last by default: the model at the end, not the one that relabeled
that epoch, so it is an estimate of what relabeling gives late in training). Nothing is
trained; the model runs once over the training documents.

    python scripts/relabel_quality.py "training/full/nb_denoise_sentmix@noise_distant/seed2" \\
        corpus/full/noisebench/noise_distant.spacy corpus/full/noisebench/clean.spacy
"""
import json
from pathlib import Path
from typing import Annotated, Dict, List, Optional, Set, Tuple

import numpy
import spacy
import typer
from spacy.tokens import Doc, DocBin

Entity = Tuple[int, int, int, str]  # doc, start char, end char, label


def main(
    run_dir: Annotated[Path, typer.Argument(help="A run folder with sampler_stats.jsonl, its units file and a model")],
    noisy_train: Annotated[Path, typer.Argument(help="The DocBin the run trained on")],
    clean_train: Annotated[Path, typer.Argument(help="The same docs with the clean labels")],
    model: Annotated[str, typer.Option(help="The run's model folder to predict with")] = "model-last",
    epoch: Annotated[Optional[int], typer.Option(help="The sampled epoch whose rejections to score (default: the last)")] = None,
    output: Annotated[Optional[Path], typer.Option(help="Also write the scores to this JSON file")] = None,
) -> None:
    nlp = spacy.load(run_dir / model)
    clean = list(DocBin().from_disk(clean_train).get_docs(nlp.vocab))
    noisy = list(DocBin().from_disk(noisy_train).get_docs(nlp.vocab))
    units = json.loads((run_dir / "sampler_stats.units.json").read_text(encoding="utf8"))
    if units["unit"] != "sentence":
        raise SystemExit(f"{run_dir}: units are {units['unit']!r}; relabeling is per sentence")
    lines = [json.loads(t) for t in (run_dir / "sampler_stats.jsonl").read_text(encoding="utf8").splitlines() if t]
    sampled = [line for line in lines if not line["warmup"] and (epoch is None or line["epoch"] == epoch)]
    if not sampled:
        raise SystemExit(f"{run_dir}: no sampled epoch {epoch if epoch is not None else ''} in its stats")
    line = sampled[-1]
    accepted = numpy.zeros((len(units["doc"]),), dtype=bool)
    accepted[line["accepted_indices"]] = True
    predicted = list(nlp.pipe((nlp.make_doc(doc.text) for doc in noisy), batch_size=16))
    scores = {"run": str(run_dir), "model": model, "epoch": line["epoch"]}
    for name, members in (("rejected", ~accepted), ("accepted", accepted)):
        spans = [(units["doc"][u], units["start"][u], units["end"][u]) for u in numpy.flatnonzero(members)]
        gold = entities(clean, spans, clean)
        scores[name] = {"sentences": len(spans), "clean_entities": len(gold),
                        "noisy_labels": prf(entities(noisy, spans, clean), gold),
                        "model": prf(entities(predicted, spans, clean), gold)}
    print(json.dumps(scores, indent=1))
    if output is not None:
        output.write_text(json.dumps(scores, indent=1) + "\n", encoding="utf8")


def entities(docs: List[Doc], spans: List[Tuple[int, int, int]], reference: List[Doc]) -> Set[Entity]:
    """The entities of `docs` inside the sentences `spans` (token offsets of the reference
    docs), as character offsets so that differently tokenized docs compare."""
    out: Set[Entity] = set()
    for d, start, end in spans:
        ref = reference[d]
        first = ref[start].idx
        last = ref[end - 1].idx + len(ref[end - 1])
        for ent in docs[d].ents:
            if ent.start_char >= first and ent.end_char <= last:
                out.add((d, ent.start_char, ent.end_char, ent.label_))
    return out


def prf(found: Set[Entity], gold: Set[Entity]) -> Dict[str, float]:
    right = len(found & gold)
    p = right / len(found) if found else 0.0
    r = right / len(gold) if gold else 0.0
    return {"entities": len(found), "p": round(p, 4), "r": round(r, 4), "f": round(2 * p * r / (p + r), 4) if p + r else 0.0}


if __name__ == "__main__":
    typer.run(main)
