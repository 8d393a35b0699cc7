"""`python -m spacy_rsft filter MODEL IN OUT`: find the likely mislabeled sentences of a
training set with a trained pipeline, and write the set with their entity annotation missing.

The reader rejects units while it trains, so the model has already seen every label for a
warm-up epoch or more before it masks any, and its choice changes from epoch to epoch. This
is the other way round, "filter, then retrain" (Northcutt et al. 2021, Confident Learning):
score every unit once with a finished model (no dropout, no gradient: the reader's fresh
scoring pass), reject the units with the highest loss, and train a new model on the rest from
the start. The rejected units' entity annotation becomes missing (spaCy's "-" tag), as the
reader masks them, so the output trains with any config, the uniform reader included, and
the article keeps its context. The report (`--report`) lists every unit with its loss, so a
person can review the rejected ones instead.

The ranking settings are the reader's (`unit`, `unit_loss`, `loss_tokens`) and so is the rate
(`mixture`: a two-component mixture of the log unit losses; `auto`: the share above ln 2;
or a fixed share). `choose = "random"` rejects as many units chosen blindly: the control that
tells "better data" from "less data", as the reader's `target = "random"`.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy
from spacy.tokens import Doc, DocBin
from spacy.training import Example

from ..errors import Errors
from ..io import atomic_output
from ..sampling.sampler import estimate_noise_rate, estimate_noise_rate_by_mixture
from ..sampling.units import UnitTable, build_units, loss_token_mask, masked_example, unit_losses
from ..ty import UNMASKED_KEY

UNITS = ("sentence", "example")
UNIT_LOSSES = ("max", "mean")
LOSS_TOKENS = ("all", "outside", "entity")
RATES = ("mixture", "auto")
CHOICES = ("loss", "random")


@dataclass
class FilterResult:
    """What `filter_docs` decided: the units, their losses, the rate and the rejected ones."""

    units: UnitTable
    losses: numpy.ndarray  # one per unit, NaN where no counted token was scored
    rate: float  # the share of the scored units rejected
    rejected: numpy.ndarray  # bool, one per unit

    def summary(self) -> Dict[str, Union[int, float]]:
        return {
            "units": len(self.units),
            "scored": int((~numpy.isnan(self.losses)).sum()),
            "rate": round(self.rate, 4),
            "rejected": int(self.rejected.sum()),
        }


def check_settings(unit: str, unit_loss: str, loss_tokens: str, rate: str, choose: str = "loss") -> Optional[float]:
    """The settings, checked; returns the fixed rate, or None for an estimated one."""
    for setting, value, options in (("--unit", unit, UNITS), ("--unit-loss", unit_loss, UNIT_LOSSES),
                                    ("--loss-tokens", loss_tokens, LOSS_TOKENS), ("--choose", choose, CHOICES)):
        if value not in options:
            raise ValueError(Errors.E336.format(setting=setting, value=value, options=list(options)))
    if rate in RATES:
        return None
    try:
        fixed = float(rate)
    except ValueError:
        fixed = -1.0
    if not 0.0 <= fixed < 1.0:
        raise ValueError(Errors.E336.format(setting="--rate", value=rate, options="mixture, auto or a share in [0, 1)"))
    return fixed


def filter_docs(
    nlp, references: Sequence[Doc], unit: str = "sentence", unit_loss: str = "max",
    loss_tokens: str = "outside", rate: str = "mixture", batch_size: int = 16, choose: str = "loss",
    seed: int = 0,
) -> FilterResult:
    """Score every unit of the gold docs with the pipeline and choose the ones to reject.

    nlp (Language): A trained pipeline (its rsft components give per-token losses).
    references (Sequence[Doc]): The training docs with their (noisy) gold entities.
    unit, unit_loss, loss_tokens (str): As the reader's settings of the same names.
    rate (str): "mixture", "auto" or a fixed share of the scored units, e.g. "0.3".
    batch_size (int): Docs per forward pass.
    choose (str): "loss" (the highest losses) or "random" (as many scored units, blindly).
    seed (int): The random choice's seed.
    RETURNS (FilterResult): The units, their losses and which are rejected.
    """
    from ..sampling.scoring import fresh_losses

    fixed = check_settings(unit, unit_loss, loss_tokens, rate, choose)
    # predicted docs with the reference's own tokens, so every token loss has its token
    examples = [Example(Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]), d)
                for d in references]
    token_losses = fresh_losses(nlp, examples, batch_size=batch_size, per_token=True)
    table = build_units(references, unit)
    counted = None if loss_tokens == "all" else {i: loss_token_mask(d, loss_tokens) for i, d in enumerate(references)}
    losses = unit_losses(table, dict(enumerate(token_losses)), numpy.full((len(table),), numpy.nan),
                         pool=unit_loss, counted=counted)
    if fixed is not None:
        share = fixed
    elif rate == "mixture":
        share = estimate_noise_rate_by_mixture(losses)
    else:
        share = estimate_noise_rate(losses)
    rejected = top_share(losses, share)
    if choose == "random":
        rejected = random_like(losses, int(rejected.sum()), seed)
    return FilterResult(table, losses, share, rejected)


def top_share(losses: numpy.ndarray, share: float) -> numpy.ndarray:
    """The `share` of the scored units with the highest losses (ties broken by order)."""
    known = numpy.flatnonzero(~numpy.isnan(losses))
    n = int(round(share * known.size))
    rejected = numpy.zeros(losses.shape, dtype=bool)
    if n > 0:
        order = known[numpy.argsort(-losses[known], kind="stable")]
        rejected[order[:n]] = True
    return rejected


def random_like(losses: numpy.ndarray, n: int, seed: int) -> numpy.ndarray:
    """`n` of the scored units, chosen at random."""
    known = numpy.flatnonzero(~numpy.isnan(losses))
    rejected = numpy.zeros(losses.shape, dtype=bool)
    rejected[numpy.random.default_rng(seed).choice(known, size=n, replace=False)] = True
    return rejected


def masked_docs(references: Sequence[Doc], result: FilterResult) -> List[Doc]:
    """The docs with the rejected units' entity annotation missing (a gold entity crossing a
    rejected unit goes whole, as in the reader)."""
    by_doc: Dict[int, List[tuple]] = {}
    for u in numpy.flatnonzero(result.rejected):
        by_doc.setdefault(int(result.units.example[u]), []).append((int(result.units.start[u]), int(result.units.end[u])))
    out = []
    for i, doc in enumerate(references):
        if i not in by_doc:
            out.append(doc)
            continue
        masked = masked_example(Example(doc, doc), by_doc[i]).reference
        masked.user_data.pop(UNMASKED_KEY, None)  # the noisy labels stay out of the output
        out.append(masked)
    return out


def report_lines(references: Sequence[Doc], result: FilterResult) -> List[Dict]:
    """One line per unit: where it is, its text and labels, its loss and the decision."""
    lines = []
    for u in range(len(result.units)):
        doc = references[int(result.units.example[u])]
        start, end = int(result.units.start[u]), int(result.units.end[u])
        loss = result.losses[u]
        lines.append({
            "doc": int(result.units.example[u]), "start": start, "end": end, "text": doc[start:end].text,
            "entities": [[e.start, e.end, e.label_] for e in doc.ents if start <= e.start and e.end <= end],
            "loss": None if numpy.isnan(loss) else round(float(loss), 5), "rejected": bool(result.rejected[u]),
        })
    return lines


def filter_corpus(
    model: Path, input_path: Path, output_path: Path, report: Optional[Path] = None, **settings
) -> FilterResult:
    """Read a DocBin, filter it with the pipeline at `model`, write the masked DocBin (and the
    report as JSONL), each atomically."""
    import spacy
    import srsly

    check_settings(settings.get("unit", "sentence"), settings.get("unit_loss", "max"),
                   settings.get("loss_tokens", "outside"), settings.get("rate", "mixture"),
                   settings.get("choose", "loss"))
    nlp = spacy.load(model)
    try:
        references = list(DocBin().from_disk(input_path).get_docs(nlp.vocab))
    except Exception as err:  # a truncated or foreign file: say which and why
        raise ValueError(Errors.E337.format(path=input_path, err=f"{type(err).__name__}: {err}")) from None
    if not any(d.has_annotation("ENT_IOB") for d in references):
        raise ValueError(Errors.E337.format(path=input_path, err="it holds no docs with entity annotation"))
    result = filter_docs(nlp, references, **settings)
    if not (~numpy.isnan(result.losses)).any():
        raise ValueError(Errors.E338.format(model=model, names=nlp.pipe_names))
    with atomic_output(output_path) as tmp:
        DocBin(docs=masked_docs(references, result)).to_disk(tmp)
    if report is not None:
        with atomic_output(report) as tmp:
            srsly.write_jsonl(tmp, report_lines(references, result))
    return result
