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
or a fixed share). `heldout` asks a carefully labelled set the model did not train on (the
dev set) what clean labels cost: its units' losses are the null distribution, and a training
unit is rejected when its conformal p-value against them is at most `alpha` (Bates et al.
2023, "Testing for outliers with conformal p-values"): about `alpha` of the clean units are
rejected whatever the noise rate, which the mixture has to guess from the losses' shape. Each
training unit is compared with the held-out losses of the model that scored it (with folds,
its fold's model): only those are exchangeable with a clean training unit's loss. Scored by a
model that trained on them, clean training units have lower losses than the held-out ones,
so fewer than `alpha` of them are rejected (and fewer noisy ones found): use `--folds`.
`choose = "random"` rejects as many units chosen blindly: the control that tells "better
data" from "less data", as the reader's `target = "random"`.

`mask_outside_top = Q` adds a finer pass over the units kept: per entity label, the share Q of
their tokens labelled "O" (outside every gold entity) to which the model gives that label the
highest probability (the sum over its BILU tags) is masked too, and the rest of the sentence
keeps its labels. Labels that miss entities teach "O" exactly where a model expects one. The
unit ranking cannot reach those left in the kept units: every token there already costs less
than the cut (on NoiseBench's distant labels, below an entity probability of 0.1-0.2), and a
label the labels mostly miss (distant supervision misses 68% of MISC) gets little probability
anywhere, so it is ranked against itself, not against the confident labels; a rank, not a
probability bar, because its probabilities are small. `mask_outside_choose = "random"` masks
as many "O" tokens of the kept units blindly: its control (fewer "O" tokens alone can help
when entities go unlabelled).

A model scoring the sentences it trained on has memorized many of their labels, mistakes
included. Confident Learning scores each example with a model that never saw it (k-fold
cross-validation), and so can this: `python -m spacy_rsft folds` splits the training set
into k folds of whole docs and writes, for each fold, the set without it; train one model on
each; then `filter MODEL ... --folds folds.json`, with `{fold}` in MODEL, scores every doc
with the model its fold was held out of and decides over all the losses at once.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

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
RATES = ("mixture", "auto", "heldout")
CHOICES = ("loss", "random")
DEFAULT_ALPHA = 0.1  # rate "heldout": the conformal p-value at or under which a unit goes


@dataclass
class FilterResult:
    """What `filter_docs` decided: the units, their losses, the rate and the rejected ones."""

    units: UnitTable
    losses: numpy.ndarray  # one per unit, NaN where no counted token was scored
    rate: float  # the share of the scored units rejected
    rejected: numpy.ndarray  # bool, one per unit
    # with rate "heldout": per scoring model (one, or each fold's), reject above this loss
    thresholds: Optional[List[float]] = None
    # with mask_outside_top: per doc, which tokens of the kept units are masked as well
    masked_tokens: Optional[List[numpy.ndarray]] = None

    def summary(self) -> Dict[str, Union[int, float]]:
        summary = {
            "units": len(self.units),
            "scored": int((~numpy.isnan(self.losses)).sum()),
            "rate": round(self.rate, 4),
            "rejected": int(self.rejected.sum()),
        }
        if self.thresholds is not None:
            summary["thresholds"] = [round(x, 5) for x in self.thresholds]
        if self.masked_tokens is not None:
            summary["tokens_masked"] = int(sum(int(m.sum()) for m in self.masked_tokens))
        return summary


def check_settings(unit: str, unit_loss: str, loss_tokens: str, rate: str, choose: str = "loss",
                   alpha: Optional[float] = None, mask_outside_top: Optional[float] = None,
                   mask_outside_choose: str = "loss") -> Optional[float]:
    """The settings, checked; returns the fixed rate, or None for an estimated one. `alpha`
    belongs to rate "heldout" (None: its default, 0.1); `mask_outside_top` (None: off) is a
    share."""
    for setting, value, options in (("--unit", unit, UNITS), ("--unit-loss", unit_loss, UNIT_LOSSES),
                                    ("--loss-tokens", loss_tokens, LOSS_TOKENS), ("--choose", choose, CHOICES),
                                    ("--mask-outside-choose", mask_outside_choose, CHOICES)):
        if value not in options:
            raise ValueError(Errors.E336.format(setting=setting, value=value, options="one of " + ", ".join(options)))
    if mask_outside_top is None and mask_outside_choose != "loss":
        raise ValueError(Errors.E336.format(setting="--mask-outside-choose", value=mask_outside_choose,
                                            options="read only with --mask-outside-top: add it, or leave this out"))
    if mask_outside_top is not None and not 0.0 < mask_outside_top < 1.0:
        raise ValueError(Errors.E336.format(setting="--mask-outside-top", value=mask_outside_top,
                                            options="a share of the kept O tokens in (0, 1), e.g. 0.003"))
    if alpha is not None and rate != "heldout":
        raise ValueError(Errors.E344.format(option="--alpha", rate=rate))
    if alpha is not None and not 0.0 < alpha < 1.0:
        raise ValueError(Errors.E336.format(setting="--alpha", value=alpha, options="a p-value in (0, 1), e.g. 0.1"))
    if rate in RATES:
        return None
    try:
        fixed = float(rate)
    except ValueError:
        fixed = -1.0
    if not 0.0 <= fixed < 1.0:
        raise ValueError(Errors.E336.format(setting="--rate", value=rate, options="mixture, auto, heldout or a share in [0, 1)"))
    return fixed


def filter_docs(
    nlp, references: Sequence[Doc], unit: str = "sentence", unit_loss: str = "max",
    loss_tokens: str = "outside", rate: str = "mixture", batch_size: int = 16, choose: str = "loss",
    seed: int = 0, token_losses: Optional[Sequence[numpy.ndarray]] = None,
    heldout_losses: Optional[Sequence[numpy.ndarray]] = None, alpha: Optional[float] = None,
    doc_models: Optional[Sequence[int]] = None, mask_outside_top: Optional[float] = None,
    mask_outside_choose: str = "loss", label_probs: Optional[Sequence[numpy.ndarray]] = None,
) -> FilterResult:
    """Score every unit of the gold docs with the pipeline and choose the ones to reject.

    nlp (Language): A trained pipeline (its rsft components give per-token losses).
    references (Sequence[Doc]): The training docs with their (noisy) gold entities.
    unit, unit_loss, loss_tokens (str): As the reader's settings of the same names.
    rate (str): "mixture", "auto", "heldout" or a fixed share of the scored units, e.g. "0.3".
    batch_size (int): Docs per forward pass.
    choose (str): "loss" (the highest losses) or "random" (as many scored units, blindly).
    seed (int): The random choice's seed.
    token_losses (Optional[Sequence[numpy.ndarray]]): Each doc's token losses, already
        scored (e.g. by the fold models, `per_fold`); `nlp` scores them otherwise.
    heldout_losses (Optional[Sequence[numpy.ndarray]]): With rate "heldout": per scoring
        model, the unit losses of the carefully labelled held-out docs under it (as
        `heldout_losses_of` gives them).
    alpha (Optional[float]): With rate "heldout": the conformal p-value at or under which a
        unit is rejected (about the share of clean units that will be); None: 0.1.
    doc_models (Optional[Sequence[int]]): With rate "heldout" and several scoring models:
        which of them scored each doc (its fold's model), so that its units are compared
        with that model's held-out losses. None: one model scored every doc.
    mask_outside_top (Optional[float]): Also mask, per entity label, this share of the kept
        units' "O" tokens to which the model gives the label the highest probability. None:
        no token pass.
    mask_outside_choose (str): "loss" (those tokens) or "random" (as many "O" tokens of the
        kept units, blindly: the token pass's control).
    label_probs (Optional[Sequence[numpy.ndarray]]): With mask_outside_top: each doc's
        (n_tokens, n_labels) label probabilities, already predicted (e.g. by the fold models,
        `fold_label_probs`); `nlp` predicts them otherwise.
    RETURNS (FilterResult): The units, their losses and which are rejected.
    """
    fixed = check_settings(unit, unit_loss, loss_tokens, rate, choose, alpha, mask_outside_top, mask_outside_choose)
    if token_losses is None:
        token_losses = score_tokens(nlp, references, batch_size)
    table, losses = pooled_losses(references, token_losses, unit, unit_loss, loss_tokens)
    thresholds = None
    if rate == "heldout":
        models = numpy.zeros(len(table), dtype=int) if doc_models is None else numpy.asarray(doc_models)[table.example]
        rejected, thresholds = conformal_rejections_by_model(
            losses, models, as_nulls(heldout_losses), DEFAULT_ALPHA if alpha is None else alpha)
        share = rejected.sum() / max(int((~numpy.isnan(losses)).sum()), 1)
    else:
        share = fixed if fixed is not None else (
            estimate_noise_rate_by_mixture(losses) if rate == "mixture" else estimate_noise_rate(losses))
        rejected = top_share(losses, share)
    if choose == "random":
        rejected = random_like(losses, int(rejected.sum()), seed)
    masked_tokens = None
    if mask_outside_top is not None:
        if label_probs is None:
            label_probs = predict_label_probs(nlp, references, batch_size)[0]
        masked_tokens = outside_token_masks(references, label_probs, table, rejected, mask_outside_top,
                                            mask_outside_choose, seed)
    return FilterResult(table, losses, float(share), rejected, thresholds, masked_tokens)


def outside_token_masks(references: Sequence[Doc], label_probs: Sequence[numpy.ndarray], table: UnitTable,
                        rejected: numpy.ndarray, share: float, choose: str = "loss",
                        seed: int = 0) -> List[numpy.ndarray]:
    """Per doc, the "O" tokens of the kept units to mask: per label (a column of
    `label_probs`), the `share` of those tokens with the highest probability of it, all labels
    together; with `choose` "random", as many of those tokens, chosen blindly."""
    in_rejected = [numpy.zeros((len(doc),), dtype=bool) for doc in references]
    for u in numpy.flatnonzero(rejected):
        in_rejected[int(table.example[u])][int(table.start[u]) : int(table.end[u])] = True
    candidates = [loss_token_mask(doc, "outside") & ~gone for doc, gone in zip(references, in_rejected)]
    flat = numpy.concatenate(candidates) if candidates else numpy.zeros(0, dtype=bool)
    where = numpy.flatnonzero(flat)
    probs = numpy.concatenate([numpy.asarray(p, dtype="float64").reshape(len(c), -1)
                               for p, c in zip(label_probs, candidates)])[where]
    n = int(round(share * where.size))
    chosen = numpy.zeros(flat.shape, dtype=bool)
    for column in range(probs.shape[1] if n else 0):
        chosen[where[numpy.argsort(-probs[:, column], kind="stable")[:n]]] = True
    if choose == "random":
        return random_tokens_like(candidates, int(chosen.sum()), seed)
    return numpy.split(chosen, numpy.cumsum([len(c) for c in candidates])[:-1])


def predict_tag_log_probs(nlp, references: Sequence[Doc], batch_size: int = 16) -> Tuple[List[numpy.ndarray], List[str]]:
    """Each doc's (n_tokens, n_tags) tag log-probabilities under the pipeline's rsft_ner, over
    unannotated copies of the docs (the components before it run first, e.g. a shared
    transformer), and its tags."""
    name = next((n for n in nlp.pipe_names if nlp.get_pipe_meta(n).factory == "rsft_ner"), None)
    if name is None:
        raise ValueError(Errors.E348.format(names=nlp.pipe_names))
    copies = [unannotated(nlp.vocab, d) for d in references]
    for other, proc in nlp.pipeline:
        if other == name:
            break
        copies = list(proc.pipe(copies))
    ner = nlp.get_pipe(name)
    out: List[numpy.ndarray] = []
    for i in range(0, len(copies), batch_size):
        out += ner.predict(copies[i : i + batch_size])
    return out, list(ner.tags)


def predict_label_probs(nlp, references: Sequence[Doc], batch_size: int = 16) -> Tuple[List[numpy.ndarray], List[str]]:
    """Each doc's (n_tokens, n_labels) probability of each entity label (the sum over its BILU
    tags) under the pipeline's rsft_ner, and the labels."""
    log_probs, tags = predict_tag_log_probs(nlp, references, batch_size)
    labels = sorted({tag[2:] for tag in tags if tag != "O"})
    columns = [[i for i, tag in enumerate(tags) if tag != "O" and tag[2:] == label] for label in labels]
    probs = [numpy.exp(doc_log_probs) for doc_log_probs in log_probs]
    return [numpy.stack([p[:, c].sum(axis=1) for c in columns], axis=1) if len(p) else numpy.zeros((0, len(labels)))
            for p in probs], labels


def random_tokens_like(candidates: List[numpy.ndarray], n: int, seed: int) -> List[numpy.ndarray]:
    """`n` of the candidate tokens (over all docs), chosen at random. Its own random stream,
    so that it does not repeat the units' random choice of the same seed."""
    flat = numpy.concatenate(candidates) if candidates else numpy.zeros(0, dtype=bool)
    picked = numpy.zeros(flat.shape, dtype=bool)
    picked[numpy.random.default_rng([seed, 1]).choice(numpy.flatnonzero(flat), size=n, replace=False)] = True
    return numpy.split(picked, numpy.cumsum([len(c) for c in candidates])[:-1])


def pooled_losses(references: Sequence[Doc], token_losses: Sequence[numpy.ndarray], unit: str = "sentence",
                  unit_loss: str = "max", loss_tokens: str = "outside") -> Tuple[UnitTable, numpy.ndarray]:
    """The docs' units and each unit's loss, pooled from its token losses as the reader pools
    them (NaN where no counted token was scored)."""
    table = build_units(references, unit)
    counted = None if loss_tokens == "all" else {i: loss_token_mask(d, loss_tokens) for i, d in enumerate(references)}
    losses = unit_losses(table, dict(enumerate(token_losses)), numpy.full((len(table),), numpy.nan),
                         pool=unit_loss, counted=counted)
    return table, losses


def conformal_rejections(losses: numpy.ndarray, heldout_losses: Optional[numpy.ndarray], alpha: float,
                         source: str = "The held-out set") -> Tuple[numpy.ndarray, float]:
    """Reject each scored unit whose conformal p-value against the held-out (clean) unit
    losses is at most `alpha`: p = (1 + #{held-out losses >= its loss}) / (n + 1). A clean
    unit, exchangeable with the held-out ones, gets p <= alpha with probability at most
    alpha. Returns the rejections and the loss above which units are rejected. `source`
    names the held-out losses in errors."""
    threshold = conformal_threshold(heldout_losses, alpha, source)
    rejected = ~numpy.isnan(losses) & (numpy.nan_to_num(losses, nan=-numpy.inf) > threshold)
    return rejected, threshold


def conformal_threshold(heldout_losses: Optional[numpy.ndarray], alpha: float,
                        source: str = "The held-out set") -> float:
    """The loss above which a unit's conformal p-value against `heldout_losses` is at most
    `alpha`; an error when no held-out unit was scored or too few were for that alpha."""
    null = numpy.sort(numpy.asarray([] if heldout_losses is None else heldout_losses, dtype=float))
    null = null[~numpy.isnan(null)]
    if null.size == 0:
        raise ValueError(Errors.E346.format(source=source))
    # the largest count of held-out losses at or above a loss that still rejects it; the
    # epsilon keeps e.g. 0.29 * 100 (28.999...) from flooring to 28
    allowed = int(numpy.floor(alpha * (null.size + 1) + 1e-9)) - 1
    if allowed < 0:  # no p-value gets that small: refuse rather than reject nothing silently
        needed = int(numpy.ceil(1.0 / alpha - 1e-9)) - 1
        raise ValueError(Errors.E347.format(source=source, n=null.size, alpha=alpha, needed=needed))
    # #{null >= s} <= allowed  <=>  s > the (allowed+1)-th largest held-out loss (allowed < n)
    return float(null[null.size - 1 - allowed])


def as_nulls(heldout_losses) -> List[numpy.ndarray]:
    """The held-out losses as one array per scoring model (one array alone: one model)."""
    if heldout_losses is None:
        return []
    if isinstance(heldout_losses, numpy.ndarray) and heldout_losses.ndim == 1:
        return [heldout_losses]
    return [numpy.asarray(null, dtype=float) for null in heldout_losses]


def conformal_rejections_by_model(losses: numpy.ndarray, models: numpy.ndarray,
                                  heldout_losses: Sequence[numpy.ndarray],
                                  alpha: float) -> Tuple[numpy.ndarray, List[float]]:
    """`conformal_rejections` for units scored by different models (cross-fitting): each
    unit against the held-out losses of the model that scored it (`models[u]` indexes
    `heldout_losses`). A pooled null would mix models whose losses differ in scale, and count
    each held-out unit once per model. Returns the rejections and each model's threshold."""
    if len(heldout_losses) == 0:
        raise ValueError(Errors.E343)
    rejected = numpy.zeros(losses.shape, dtype=bool)
    thresholds = []
    for m, null in enumerate(heldout_losses):
        mine = models == m
        source = null_source("The held-out set", m, len(heldout_losses))
        rejected[mine], threshold = conformal_rejections(losses[mine], null, alpha, source)
        thresholds.append(threshold)
    return rejected, thresholds


def score_tokens(nlp, references: Sequence[Doc], batch_size: int = 16) -> List[numpy.ndarray]:
    """Each doc's per-token losses under the pipeline: the reader's fresh scoring pass (no
    dropout, no gradient)."""
    from ..sampling.scoring import fresh_losses

    # predicted docs with the reference's own tokens, so every token loss has its token
    examples = [Example(unannotated(nlp.vocab, d), d) for d in references]
    return fresh_losses(nlp, examples, batch_size=batch_size, per_token=True)


def unannotated(vocab, doc: Doc) -> Doc:
    """The doc's words and spaces without its annotation, for a pipeline to predict on."""
    return Doc(vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc])


def split_folds(n_docs: int, k: int, seed: int = 0) -> List[List[int]]:
    """`k` folds of whole docs: a seeded shuffle dealt round-robin, so fold sizes differ by at
    most one doc. Each fold's indices are sorted."""
    if not 2 <= k <= n_docs:
        raise ValueError(Errors.E339.format(k=k, n=n_docs))
    order = numpy.random.default_rng(seed).permutation(n_docs)
    return [sorted(int(i) for i in order[f::k]) for f in range(k)]


def write_folds(input_path: Path, output_dir: Path, k: int = 2, seed: int = 0) -> List[List[int]]:
    """Split a DocBin into `k` folds; write `train{f}.spacy` (every doc outside fold f: what
    fold f's model trains on) and `folds.json` (each fold's doc indices, for `filter --folds`)."""
    import spacy
    import srsly

    docs = read_references(input_path, spacy.blank("xx").vocab)
    folds = split_folds(len(docs), k, seed)
    for f, fold in enumerate(folds):
        held_out = set(fold)
        with atomic_output(Path(output_dir) / f"train{f}.spacy") as tmp:
            DocBin(docs=[d for i, d in enumerate(docs) if i not in held_out], store_user_data=True).to_disk(tmp)
    with atomic_output(Path(output_dir) / "folds.json") as tmp:
        srsly.write_json(tmp, {"input": str(input_path), "docs": len(docs), "seed": seed, "folds": folds})
    return folds


def read_folds(path: Path, n_docs: int) -> List[List[int]]:
    """The folds of `folds.json`, checked against the corpus they are to cover."""
    import srsly

    try:
        folds = srsly.read_json(path)["folds"]
    except Exception as err:
        raise ValueError(Errors.E340.format(path=path, err=f"{type(err).__name__}: {err}")) from None
    covered = sorted(i for fold in folds for i in fold)
    if covered != list(range(n_docs)):
        raise ValueError(Errors.E340.format(
            path=path, err=f"its folds cover {len(covered)} doc indices, not each of the corpus's {n_docs} docs once"))
    return folds


def per_fold(model_template: str, folds: Sequence[Sequence[int]], references: Sequence[Doc],
             *scorers: Callable[[Any, List[Doc]], Sequence]) -> List[List]:
    """Each scorer's per-doc values (scorer(nlp, docs) gives one per doc) under the model of
    each doc's fold (`model_template` with `{fold}` filled in): the model that did not train
    on it. One pipeline is loaded at a time, once for all the scorers; one list per scorer."""
    import spacy

    outs: List[List] = [[None] * len(references) for _ in scorers]
    for f, fold in enumerate(folds):
        nlp = spacy.load(fold_model(model_template, f))
        # the fold's docs in this pipeline's vocab, as its own corpus reader would give them
        docs = list(DocBin(docs=[references[i] for i in fold]).get_docs(nlp.vocab))
        for out, scorer in zip(outs, scorers):
            for i, value in zip(fold, scorer(nlp, docs)):
                out[i] = value
        del nlp
    return outs


def columns_scorer(predict: Callable[..., Tuple[List[numpy.ndarray], List[str]]], batch_size: int = 16
                   ) -> Tuple[Callable[[Any, List[Doc]], List[numpy.ndarray]], List[str]]:
    """A `per_fold` scorer of `predict` (`predict_tag_log_probs` or `predict_label_probs`: per
    doc, one column per tag or label), and the list it fills with the first model's column
    names; a later model with others is refused (every doc's columns must mean the same)."""
    columns: List[str] = []
    models_seen = [0]

    def scorer(nlp, docs: List[Doc]) -> List[numpy.ndarray]:
        values, names = predict(nlp, docs, batch_size)
        if models_seen[0] and names != columns:
            raise ValueError(Errors.E349.format(fold=models_seen[0], labels=names, first=columns))
        columns[:], models_seen[0] = names, models_seen[0] + 1
        return values

    return scorer, columns


def fold_columns(model_template: str, folds: Sequence[Sequence[int]], references: Sequence[Doc],
                 predict: Callable[..., Tuple[List[numpy.ndarray], List[str]]],
                 batch_size: int = 16) -> Tuple[List[numpy.ndarray], List[str]]:
    """`predict` (`predict_label_probs` or `predict_tag_log_probs`) of each doc under the model
    of its fold (`per_fold`), and the names of its columns, the same for every fold model."""
    scorer, columns = columns_scorer(predict, batch_size)
    return per_fold(model_template, folds, references, scorer)[0], columns


def fold_label_probs(model_template: str, folds: Sequence[Sequence[int]], references: Sequence[Doc],
                     batch_size: int = 16) -> Tuple[List[numpy.ndarray], List[str]]:
    """`predict_label_probs` of each doc under the model of its fold, and the labels."""
    return fold_columns(model_template, folds, references, predict_label_probs, batch_size)


def checked_nulls(nulls: List[numpy.ndarray], heldout: Path, settings: Dict) -> List[numpy.ndarray]:
    """The held-out losses, each model's checked: enough scored units for the alpha."""
    alpha = settings.get("alpha")
    for m, null in enumerate(nulls):
        conformal_threshold(null, DEFAULT_ALPHA if alpha is None else alpha, null_source(str(heldout), m, len(nulls)))
    return nulls


def null_source(held_out: str, model: int, n_models: int) -> str:
    """How errors name one scoring model's held-out losses."""
    return held_out + (f" under fold model {model}" if n_models > 1 else "")


def doc_folds(folds: Sequence[Sequence[int]], n_docs: int) -> numpy.ndarray:
    """Each doc's fold: which fold model scored it."""
    of_doc = numpy.zeros(n_docs, dtype=int)
    for f, fold in enumerate(folds):
        of_doc[list(fold)] = f
    return of_doc


def fold_model(model_template: str, fold: int) -> Path:
    """The pipeline folder of one fold: `model_template` with `{fold}` filled in."""
    if "{fold}" not in model_template:
        raise ValueError(Errors.E341.format(model=model_template))
    path = Path(model_template.replace("{fold}", str(fold)))
    if not path.is_dir():
        raise ValueError(Errors.E342.format(path=path, fold=fold))
    return path


def heldout_losses_of(pipelines: Sequence, heldout_path: Path, unit: str = "sentence", unit_loss: str = "max",
                      loss_tokens: str = "outside", batch_size: int = 16) -> List[numpy.ndarray]:
    """The held-out docs' unit losses under each pipeline (a loaded one or a path), pooled as
    the training units are: per pipeline, the null distribution of `conformal_rejections` for
    the units it scored. With fold models, each scores every held-out doc (none trained on
    them)."""
    import spacy

    losses = []
    for pipeline in pipelines:
        nlp = spacy.load(pipeline) if isinstance(pipeline, (str, Path)) else pipeline
        docs = read_heldout(heldout_path, nlp.vocab)
        losses.append(pooled_losses(docs, score_tokens(nlp, docs, batch_size), unit, unit_loss, loss_tokens)[1])
    return losses  # checked (E346, E347) by conformal_threshold


def read_heldout(heldout_path: Path, vocab) -> List[Doc]:
    """The held-out docs, or an error naming the file as the held-out set."""
    return read_references(heldout_path, vocab, error=Errors.E345)


def read_references(input_path: Path, vocab, error: str = Errors.E337) -> List[Doc]:
    """The training docs (or, with another `error`, the docs of another role), or an error
    naming the file."""
    try:
        references = list(DocBin().from_disk(input_path).get_docs(vocab))
    except Exception as err:  # a truncated or foreign file: say which and why
        raise ValueError(error.format(path=input_path, err=f"{type(err).__name__}: {err}")) from None
    if not any(d.has_annotation("ENT_IOB") for d in references):
        raise ValueError(error.format(path=input_path, err="it holds no docs with entity annotation"))
    return references


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
    rejected unit goes whole, as in the reader), and the tokens of the token pass."""
    by_doc: Dict[int, List[tuple]] = {}
    for u in numpy.flatnonzero(result.rejected):
        by_doc.setdefault(int(result.units.example[u]), []).append((int(result.units.start[u]), int(result.units.end[u])))
    for i, tokens in enumerate(result.masked_tokens or []):
        by_doc.setdefault(i, []).extend((int(t), int(t) + 1) for t in numpy.flatnonzero(tokens))
    by_doc = {i: ranges for i, ranges in by_doc.items() if ranges}
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
        line = {
            "doc": int(result.units.example[u]), "start": start, "end": end, "text": doc[start:end].text,
            "entities": [[e.start, e.end, e.label_] for e in doc.ents if start <= e.start and e.end <= end],
            "loss": None if numpy.isnan(loss) else round(float(loss), 5), "rejected": bool(result.rejected[u]),
        }
        if result.masked_tokens is not None:  # the token pass's tokens (doc token indices)
            tokens = result.masked_tokens[int(result.units.example[u])][start:end]
            line["masked_tokens"] = [start + int(t) for t in numpy.flatnonzero(tokens)]
        lines.append(line)
    return lines


def filter_corpus(
    model: Union[str, Path], input_path: Path, output_path: Path, report: Optional[Path] = None,
    folds: Optional[Path] = None, heldout: Optional[Path] = None, **settings
) -> FilterResult:
    """Read a DocBin, filter it with the pipeline at `model` (or, with `folds`, each doc with
    the pipeline its fold was held out of: `model` then holds `{fold}`), write the masked
    DocBin (and the report as JSONL), each atomically. With rate "heldout", the docs of
    `heldout` (scored by the same pipeline(s)) set the threshold."""
    import spacy
    import srsly

    check_settings(settings.get("unit", "sentence"), settings.get("unit_loss", "max"),
                   settings.get("loss_tokens", "outside"), settings.get("rate", "mixture"),
                   settings.get("choose", "loss"), settings.get("alpha"), settings.get("mask_outside_top"),
                   settings.get("mask_outside_choose", "loss"))
    if settings.get("rate") == "heldout" and heldout is None:
        raise ValueError(Errors.E343)
    if heldout is not None and settings.get("rate") != "heldout":
        raise ValueError(Errors.E344.format(option="--heldout", rate=settings.get("rate", "mixture")))
    if heldout is not None:  # a bad held-out file fails before the (long) scoring of the training set
        read_heldout(heldout, spacy.blank("xx").vocab)
    pooling = {k: settings[k] for k in ("unit", "unit_loss", "loss_tokens", "batch_size") if k in settings}
    if folds is None:
        nlp = spacy.load(model)
        references = read_references(input_path, nlp.vocab)
        if heldout is not None:
            settings["heldout_losses"] = checked_nulls(heldout_losses_of([nlp], heldout, **pooling), heldout, settings)
        result = filter_docs(nlp, references, **settings)
    else:
        fold_model(str(model), 0)  # a bad template fails before the corpus is read
        nlp = spacy.blank("xx")
        references = read_references(input_path, nlp.vocab)
        fold_list = read_folds(folds, len(references))
        models = [fold_model(str(model), f) for f in range(len(fold_list))]  # all, before any loads
        if heldout is not None:  # before the training set: a held-out set too small fails early
            settings["heldout_losses"] = checked_nulls(heldout_losses_of(models, heldout, **pooling), heldout, settings)
            settings["doc_models"] = doc_folds(fold_list, len(references))
        batch_size = settings.get("batch_size", 16)
        scorers = [lambda nlp, docs: score_tokens(nlp, docs, batch_size)]
        if settings.get("mask_outside_top") is not None:  # the token pass: the same load of each fold model
            scorers.append(columns_scorer(predict_label_probs, batch_size)[0])
        token_losses, *label_probs = per_fold(str(model), fold_list, references, *scorers)
        if label_probs:
            settings["label_probs"] = label_probs[0]
        result = filter_docs(nlp, references, token_losses=token_losses, **settings)
    if not (~numpy.isnan(result.losses)).any():
        names = nlp.pipe_names if folds is None else "(the fold models)"
        raise ValueError(Errors.E338.format(model=model, names=names))
    with atomic_output(output_path) as tmp:
        DocBin(docs=masked_docs(references, result)).to_disk(tmp)
    if report is not None:
        with atomic_output(report) as tmp:
            srsly.write_jsonl(tmp, report_lines(references, result))
    return result
