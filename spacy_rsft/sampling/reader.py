"""`spacy-rsft.RejectionSampledCorpus.v1`: a drop-in for `spacy.Corpus.v1` that, each
epoch, accepts or rejects every training example with a probability computed from the
current model's loss on it (see `sampler.py` for the math).

spaCy calls the train corpus once per epoch only with `[training] max_epochs = -1`
(`spacy.training.loop.create_train_batches`); any other value is refused with a message
that says what to set. spaCy does not shuffle a streamed corpus, so the reader shuffles
the accepted examples itself (seeded).
"""
import json
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import numpy
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.training import Corpus, Example
from spacy.training.corpus import FILE_TYPE, walk_corpus
from spacy.util import logger, registry

from ..errors import Errors, Warnings
from ..io import atomic_output
from ..ty import SkipCounter
from ..util import set_example_id
from .sampler import RejectionSampler
from .scoring import collect_cached_losses, collect_cached_token_losses, fresh_losses, recording_components
from .units import (
    CONTEXTS, LOSS_TOKENS, SPAN_KINDS, UNIT_LOSSES, UNITS, UnitTable, build_units, loss_token_mask, masked_example,
    relabeled_example, sentences, unit_losses,
)

READER_NAME = "spacy-rsft.RejectionSampledCorpus.v1"
SCORING_MODES = ("cached", "fresh")
# What becomes of a rejected unit inside its example (see `rejected` in the reader)
REJECTED = ("mask", "relabel", "relabel_entities")


@registry.readers(READER_NAME)
class RejectionSampledCorpus(Corpus):
    """A DocBin corpus whose every epoch is a rejection-sampled subset of the examples.
    Registered as `spacy-rsft.RejectionSampledCorpus.v1` (the class is the reader)."""

    def __init__(
        self,
        path: Optional[Union[str, Path]],
        *,
        target: str = "uniform",
        temperature: float = 0.5,
        epsilon: float = 0.0,
        min_accept: float = 0.05,
        warmup_epochs: int = 1,
        scoring: str = "cached",
        alpha: float = 1.0,
        denoise_quantile: float = 0.7,
        noise_rate: Union[float, str, None] = None,
        ramp_epochs: int = 1,
        noise_rate_estimate: str = "latest",
        unit: str = "example",
        context: str = "document",
        span_kinds: str = "both",
        unit_loss: str = "mean",
        loss_tokens: str = "all",
        rejected: str = "mask",
        seed: int = 0,
        acceptance_from: Optional[Union[str, Path]] = None,
        stats_path: Optional[Union[str, Path]] = None,
        score_batch_size: int = 64,
        gold_preproc: bool = False,
        max_length: int = 0,
        limit: int = 0,
        augmenter: Optional[Callable] = None,
    ) -> None:
        """Create the reader.

        path (Union[str, Path]): A .spacy file or a directory of them.
        target (str): "uniform", "hard", "denoise", "balanced", or a product such as
            "denoise+balanced".
        temperature (float): T > 0 of the loss targets; lower is more selective.
        epsilon (float): Envelope slack: acceptances scale by exp(-epsilon).
        min_accept (float): Acceptance floor in (0, 1].
        warmup_epochs (int): Epochs that accept everything first.
        scoring (str): "cached" (losses recorded during the components' own updates) or
            "fresh" (a no-gradient scoring pass over the pool before each epoch).
        alpha (float): Strength of the `balanced` target.
        denoise_quantile (float): Loss rank below which `denoise` keeps every example.
        noise_rate (Union[float, str, None]): `denoise` rejects from the top noise_rate of
            the loss ranks (estimated each epoch: "auto", units above ln 2; "mixture", units
            in the high-loss component of a mixture of log losses); null: above
            denoise_quantile.
        ramp_epochs (int): Sampled epochs over which noise_rate is reached.
        noise_rate_estimate (str): With an estimated noise_rate: "latest" (each epoch's estimate)
            or "max" (the highest since the second sampled epoch: the estimate falls as the
            model memorizes its noisy labels, the noise does not).
        unit (str): What is accepted or rejected: "example", "sentence", or "span" (gold
            entity spans and outside tokens, ranked apart). See `units.py`.
        context (str): "document": the examples stay whole and rejected units are masked
            out of the loss; "sentence" (unit "sentence" only): the accepted sentences are
            the training examples.
        span_kinds (str): With unit "span", which units may be rejected: "both", "outside"
            (tokens outside the gold entities: missing entities) or "entity" (gold entity
            spans: spurious or mislabeled ones); the others are always accepted.
        unit_loss (str): How a unit's loss pools its tokens' losses: "mean" or "max" (unit
            "sentence" or "span"; with context "sentence" too, where the sentences are the
            training examples).
        loss_tokens (str): With unit "sentence" (either context), the tokens whose losses make
            the sentence's loss: "all", "outside" (those outside the gold entities, where a
            missing entity shows) or "entity".
        rejected (str): What becomes of a rejected sentence (unit "sentence", context
            "document"): "mask" (its entity annotation is set missing: it teaches nothing)
            or "relabel" (its entity annotation is replaced by what the pipeline predicts
            for it at the start of the epoch: self-training on the sentences whose labels
            the model disagrees with; costs one prediction pass over the examples with a
            rejected sentence each epoch), or "relabel_entities" (only the predicted
            entities are placed, the sentence's other tokens stay missing: the model's
            entities teach, the entities it misses are not taught as "O").
        seed (int): Seed of the accept/reject draws and the shuffle.
        acceptance_from (Optional[Union[str, Path]]): With target "random": the stats file
            of another run over the same units (usually the `denoise` run this one
            controls), or that file cut down by `replay_lines` (what it needs of each
            epoch, small enough to keep with the run's results); each epoch, every unit
            is accepted with that run's mean acceptance in the same epoch and group, so the control trains on as many units as that
            run did, chosen blindly (without it, "random" takes the rate its own losses
            give, which drifts from the other run's as the two models differ).
        stats_path (Optional[Union[str, Path]]): JSONL file with one line per epoch.
        score_batch_size (int): Batch size of the fresh scoring pass.
        gold_preproc, max_length, limit, augmenter: As for `spacy.Corpus.v1`.
        """
        if path is None or not Path(path).exists():
            raise ValueError(Errors.E103.format(path=path))
        if scoring not in SCORING_MODES:
            raise ValueError(
                Errors.E101.format(setting="scoring", value=scoring, expected=" | ".join(SCORING_MODES))
            )
        if unit not in UNITS:
            raise ValueError(Errors.E101.format(setting="unit", value=unit, expected=" | ".join(UNITS)))
        if span_kinds not in SPAN_KINDS or (span_kinds != "both" and unit != "span"):
            expected = " | ".join(f'"{kind}"' for kind in SPAN_KINDS) + ' ("both" unless unit = "span")'
            raise ValueError(Errors.E101.format(setting="span_kinds", value=span_kinds, expected=expected))
        if context not in CONTEXTS or (context == "sentence" and unit != "sentence"):
            expected = '"document", or "sentence" with unit = "sentence"'
            raise ValueError(Errors.E101.format(setting="context", value=context, expected=expected))
        masks_units = unit != "example" and context == "document"
        if unit_loss not in UNIT_LOSSES or (unit_loss != "mean" and unit == "example"):
            expected = '"mean", or "max" with unit "sentence" or "span"'
            raise ValueError(Errors.E101.format(setting="unit_loss", value=unit_loss, expected=expected))
        if loss_tokens not in LOSS_TOKENS or (loss_tokens != "all" and unit != "sentence"):
            expected = " | ".join(f'"{kind}"' for kind in LOSS_TOKENS) + ' ("all" unless unit = "sentence")'
            raise ValueError(Errors.E101.format(setting="loss_tokens", value=loss_tokens, expected=expected))
        if rejected not in REJECTED or (rejected != "mask" and (unit != "sentence" or not masks_units)):
            expected = '"mask", or "relabel" | "relabel_entities" with unit = "sentence" and context = "document"'
            raise ValueError(Errors.E101.format(setting="rejected", value=rejected, expected=expected))
        super().__init__(
            path, limit=limit, gold_preproc=gold_preproc, max_length=max_length,
            augmenter=augmenter, shuffle=False,
        )
        self.sampler = RejectionSampler(
            target, temperature=temperature, epsilon=epsilon, min_accept=min_accept,
            warmup_epochs=warmup_epochs, alpha=alpha, denoise_quantile=denoise_quantile,
            noise_rate=noise_rate, ramp_epochs=ramp_epochs, noise_rate_estimate=noise_rate_estimate, seed=seed,
        )
        if acceptance_from is not None and list(self.sampler.targets) != ["random"]:
            expected = 'null, or the stats file of the run to match with target = "random" (alone)'
            raise ValueError(Errors.E101.format(setting="acceptance_from", value=str(acceptance_from), expected=expected))
        # epoch -> the other run's acceptance of every unit (None: rates from own losses)
        self.replayed = None
        if acceptance_from is not None:
            units = {"unit": unit, "context": context, "span_kinds": span_kinds}
            self.replayed = read_acceptances(Path(acceptance_from), units)
        self.acceptance_from = None if acceptance_from is None else str(acceptance_from)
        self.unit = unit
        self.context = context
        self.span_kinds = span_kinds
        self.unit_loss_pool = unit_loss
        self.loss_tokens = loss_tokens
        self.rejected = rejected
        # Units finer than the (training) example, masked inside it: losses per token.
        self.masks_units = masks_units
        # Unit losses pooled from token losses: units masked in their example, or sentences
        # that are the training examples (context "sentence") judged by their max or by
        # some of their tokens (the example's own mean loss is the plain pool).
        self.pools_tokens = masks_units or unit_loss != "mean" or loss_tokens != "all"
        # Example index -> the tokens whose losses count (None: all; built with the table)
        self.counted_tokens: Optional[Dict[int, numpy.ndarray]] = None
        self.table: Optional[UnitTable] = None
        self._table_examples = 0
        self.unit_loss: Optional[numpy.ndarray] = None
        # Where each training example came from: (corpus doc, first token, end token).
        self.origins: List[tuple] = []
        self.scoring = scoring
        self.score_batch_size = score_batch_size
        self.stats_path = Path(stats_path) if stats_path is not None else None
        self.epoch = 0
        # Latest known loss of each example, by its position in the corpus.
        self.losses: Dict[int, float] = {}
        self.stats: List[Dict[str, Any]] = []
        self._last_call: Optional[float] = None
        self.skipped_empty = 0
        # The corpus as read once, and the vocab it was read with (see load_examples).
        self._examples: Optional[List[Example]] = None
        self._examples_vocab = None
        self._replay_warned: set = set()
        self._relabel_counts: Dict[str, Any] = {}

    # -- reading ----------------------------------------------------------------------
    def read_docbin(self, vocab, locs):
        """As `Corpus.read_docbin`, but counting the empty docs it leaves out (reported in
        the stats) and naming a corrupt file in its error."""
        self.skipped_empty = 0
        count = 0
        for loc in locs:
            try:
                docs = list(DocBin().from_disk(loc).get_docs(vocab))
            except (ValueError, KeyError, TypeError, OSError) as err:
                raise ValueError(Errors.E108.format(path=loc, err=err)) from None
            for doc in docs:
                if not len(doc):
                    self.skipped_empty += 1
                    continue
                yield doc
                count += 1
                if self.limit >= 1 and count >= self.limit:
                    return

    def load_examples(self, nlp: Language) -> List[Example]:
        """All examples of the corpus (before augmentation), each tagged with its
        0-based position, which is its identity across epochs.

        The corpus is read and tokenized once per pipeline; later epochs get fresh copies
        of the predicted docs (training may annotate them) with the same references and
        alignments. Reading, tokenizing and aligning CoNLL-2003 train (205,000 words) took
        6.7 s on this project's 2-core machine with two trainings beside it; the copies of
        a later epoch 0.9 s.

        nlp (Language): The pipeline (for its tokenizer and vocab).
        RETURNS (List[Example]): The examples.
        """
        if self._examples is None or self._examples_vocab is not nlp.vocab:
            self._examples = self._read_examples(nlp)
            self._examples_vocab = nlp.vocab
        return [Example(eg.predicted.copy(), eg.reference, alignment=eg.alignment) for eg in self._examples]

    def _read_examples(self, nlp: Language) -> List[Example]:
        ref_docs = self.read_docbin(nlp.vocab, walk_corpus(self.path, FILE_TYPE))
        if self.gold_preproc:
            examples = list(self.make_examples_gold_preproc(nlp, ref_docs))
        else:
            examples = list(self.make_examples(nlp, ref_docs))
        if not examples:
            limit = f", limit = {self.limit}" if self.limit else ""
            raise ValueError(Errors.E104.format(path=self.path, limit=limit))
        self.origins = [(i, 0, len(eg.reference)) for i, eg in enumerate(examples)]
        if self.context == "sentence":
            examples, self.origins = split_sentences(nlp, examples)
        for i, eg in enumerate(examples):
            set_example_id(eg, i)
        return examples

    def __call__(self, nlp: Language) -> Iterator[Example]:
        """Yield this epoch's accepted examples, shuffled.

        nlp (Language): The pipeline being trained.
        YIELDS (Example): The examples.
        """
        examples = self.load_examples(nlp)
        if _is_initializing(nlp):
            # nlp.initialize() reads the corpus for labels and shapes: that is not an
            # epoch, so nothing is sampled or counted. With max_epochs = -1 spaCy reads
            # only the first 100 examples then, so one example of every label comes first.
            yield from self._augment(nlp, labels_first(examples))
            return
        _check_training_settings(nlp)
        started = time.perf_counter()
        # Wall time of the previous epoch (its sampling, training and evaluation), so the
        # cost of scoring can be reported as a fraction of an epoch.
        previous_epoch = None if self._last_call is None else started - self._last_call
        self._last_call = started
        table = self._unit_table(examples)
        losses = self._update_losses(nlp, examples, table)
        scoring_seconds = time.perf_counter() - started
        # span units: entity spans and outside tokens are ranked apart
        groups = entity_groups(self.unit, table)
        acceptance = self.sampler.acceptance(self.epoch, losses, table.labels, groups)
        if self.replayed is not None:
            acceptance = self._replayed_acceptance(acceptance, groups)
        if self.span_kinds != "both":  # the other kind is never rejected
            acceptance[table.entity != (self.span_kinds == "entity")] = 1.0
        draw = self.sampler.draw(self.epoch, acceptance)
        epoch_examples = self._epoch_examples(nlp, examples, table, draw.accepted)
        skips = {name: proc.skip_counts() for name, proc in nlp.pipeline if isinstance(proc, SkipCounter)}
        self._report(draw, losses, table, epoch_examples, scoring_seconds, previous_epoch, skips)
        self.epoch += 1
        yield from self._augment(nlp, epoch_examples)

    def _replayed_acceptance(self, acceptance: numpy.ndarray, groups: Optional[numpy.ndarray]) -> numpy.ndarray:
        """Every unit at the other run's mean acceptance of its group in this epoch (an
        epoch past the other run's last takes its last)."""
        epoch = min(self.epoch, max(self.replayed))
        if epoch != self.epoch and epoch not in self._replay_warned:
            self._replay_warned.add(epoch)
            warnings.warn(Warnings.W011.format(path=self.acceptance_from, epoch=self.epoch, last=epoch))
        other = self.replayed[epoch]
        if other.units != acceptance.shape[0]:
            problem = f"its epoch {epoch} has {other.units} units, this corpus {acceptance.shape[0]}"
            raise ValueError(Errors.E109.format(path=self.acceptance_from, problem=problem))
        replayed = numpy.empty_like(acceptance)
        for name, members in acceptance_groups(groups):
            replayed[members] = other.mean(name, members, self.acceptance_from)
        return replayed

    def _unit_table(self, examples: List[Example]) -> UnitTable:
        """The units of the training examples (built once: the corpus does not change)."""
        if self.table is None or self._table_examples != len(examples):
            self._table_examples = len(examples)
            unit = self.unit if self.masks_units else "example"
            self.table = build_units([eg.reference for eg in examples], unit)
            if unit == "example":  # an example's labels include its text categories
                self.table.labels = [_labels(eg) for eg in examples]
            self.unit_loss = numpy.full((len(self.table),), numpy.nan)
            if self.loss_tokens != "all":
                self.counted_tokens = {
                    i: loss_token_mask(eg.reference, self.loss_tokens) for i, eg in enumerate(examples)
                }
            self._write_unit_table()
        return self.table

    def _epoch_examples(self, nlp: Language, examples: List[Example], table: UnitTable,
                        accepted: numpy.ndarray) -> List[Example]:
        """This epoch's examples, in the draw's (shuffled) order: the accepted ones, or, with
        units masked inside their example, every example with an accepted unit, its
        rejected units masked out of the loss (or, with rejected = "relabel", every example,
        its rejected sentences relabeled by the pipeline's predictions)."""
        if not self.masks_units:
            return [examples[i] for i in accepted]
        keep = numpy.zeros((len(table),), dtype=bool)
        keep[accepted] = True
        order = list(dict.fromkeys(int(table.example[u]) for u in accepted))
        # the table is sorted by example: each example's units are one slice of it
        bounds = numpy.searchsorted(table.example, numpy.arange(len(examples) + 1))
        rejected = {
            i: [(int(table.start[u]), int(table.end[u])) for u in range(bounds[i], bounds[i + 1]) if not keep[u]]
            for i in range(len(examples))
        }
        if self.rejected != "mask":
            # an example whose every sentence was rejected is relabeled whole, not dropped:
            # each goes to a random place in the shuffled order (the draw's seed and epoch)
            rng = numpy.random.default_rng([self.sampler.seed, self.epoch, 1])
            for i in sorted(set(range(len(examples))) - set(order)):
                order.insert(int(rng.integers(len(order) + 1)), i)
            return self._relabeled_examples(nlp, examples, order, rejected)
        return [masked_example(examples[i], rejected[i]) for i in order]

    def _relabeled_examples(self, nlp: Language, examples: List[Example], order: List[int],
                            rejected: Dict[int, List[tuple]]) -> List[Example]:
        """The examples in `order`, their rejected sentences relabeled with the entities the
        pipeline predicts (up to its last component that sets `doc.ents`); counts go to the
        epoch's stats."""
        started = time.perf_counter()
        relabel = [i for i in order if rejected[i]]
        predicted = dict(zip(relabel, predict_entities(nlp, [examples[i].predicted for i in relabel],
                                                        self.score_batch_size)))
        counts = {"units": sum(len(rejected[i]) for i in relabel), "entities": 0, "missing_tokens": 0}
        out = []
        for i in order:
            if i not in predicted:
                out.append(examples[i])
                continue
            example, placed = relabeled_example(examples[i], rejected[i], predicted[i],
                                                predicted_outside=self.rejected == "relabel")
            counts["entities"] += placed["entities"]
            counts["missing_tokens"] += placed["missing_tokens"]
            out.append(example)
        counts["seconds"] = round(time.perf_counter() - started, 3)
        self._relabel_counts = counts
        return out

    def _augment(self, nlp: Language, examples: List[Example]) -> Iterator[Example]:
        for eg in examples:
            yield from self.augmenter(nlp, eg)  # type: ignore[operator]

    # -- losses -----------------------------------------------------------------------
    def _update_losses(self, nlp: Language, examples: List[Example], table: UnitTable) -> numpy.ndarray:
        """The latest loss of every unit (NaN where none is known yet)."""
        if not self.pools_tokens:  # the units are the examples, their mean loss is enough
            return self._update_example_losses(nlp, examples)
        needs_losses = self.sampler.uses_losses and self.epoch >= self.sampler.warmup_epochs
        if self.scoring == "fresh":
            if needs_losses:
                tokens = fresh_losses(nlp, examples, self.score_batch_size, per_token=True)
                self.unit_loss = self._pool(table, dict(enumerate(tokens)))
            return self.unit_loss
        if self.sampler.uses_losses and not recording_components(nlp):
            raise ValueError(Errors.E107.format(pipeline=nlp.pipe_names))
        # Drain both, even in warm-up epochs, so those losses are used. A component that
        # records only example losses gives each of the example's tokens that loss.
        tokens = collect_cached_token_losses(nlp)
        for example_id, loss in collect_cached_losses(nlp).items():
            if example_id not in tokens and example_id < len(examples):
                tokens[example_id] = numpy.full((len(examples[example_id].reference),), loss, dtype="float32")
        self.unit_loss = self._pool(table, tokens)
        if needs_losses and numpy.isnan(self.unit_loss).all():
            warnings.warn(Warnings.W002.format(reader=READER_NAME, epoch=self.epoch, recorders=recording_components(nlp)))
        return self.unit_loss

    def _pool(self, table: UnitTable, tokens: Dict[int, numpy.ndarray]) -> numpy.ndarray:
        return unit_losses(table, tokens, self.unit_loss, pool=self.unit_loss_pool, counted=self.counted_tokens)

    def _update_example_losses(self, nlp: Language, examples: List[Example]) -> numpy.ndarray:
        needs_losses = self.sampler.uses_losses and self.epoch >= self.sampler.warmup_epochs
        if self.scoring == "fresh":
            if needs_losses:
                fresh = fresh_losses(nlp, examples, self.score_batch_size)
                self.losses.update({i: v for i, v in enumerate(fresh) if not numpy.isnan(v)})
        else:
            if self.sampler.uses_losses and not recording_components(nlp):
                raise ValueError(Errors.E107.format(pipeline=nlp.pipe_names))
            # Drain what was recorded even in warm-up epochs, so those losses are used.
            self.losses.update(collect_cached_losses(nlp))
            if needs_losses and not self.losses:
                warnings.warn(
                    Warnings.W002.format(
                        reader=READER_NAME, epoch=self.epoch, recorders=recording_components(nlp)
                    )
                )
        values = numpy.full((len(examples),), numpy.nan)
        for i, loss in self.losses.items():
            if i < len(values):
                values[i] = loss
        return values

    # -- statistics -------------------------------------------------------------------
    def _report(self, draw, losses, table: UnitTable, epoch_examples: List[Example], scoring_seconds: float,
                previous_epoch: Optional[float], skips: Dict[str, Dict[str, int]]) -> None:
        """One stats line: counts over the units (the examples, when unit = "example")."""
        n = len(draw.acceptance)
        mask = numpy.zeros((n,), dtype=bool)
        mask[draw.accepted] = True
        per_label: Dict[str, int] = {}
        for i in draw.accepted:
            for label in table.labels[i]:
                per_label[label] = per_label.get(label, 0) + 1
        line = {
            "epoch": self.epoch,
            "target": self.sampler.target,
            "scoring": self.scoring,
            "unit": self.unit,
            "context": self.context,
            "span_kinds": self.span_kinds,
            "unit_loss": self.unit_loss_pool,
            "loss_tokens": self.loss_tokens,
            "rejected_as": self.rejected,
            "warmup": draw.warmup,
            "proposed": n,
            "scored": int((~numpy.isnan(losses)).sum()),
            "skipped_empty_docs": self.skipped_empty,
            # Cumulative counts of what the components left out of training, and why.
            "component_skips": skips,
            "accepted": int(mask.sum()),
            "acceptance_rate": float(mask.mean()) if n else 0.0,
            "expected_accepted": float(draw.acceptance.sum()),
            # the mean acceptance per group of units ranked together: all a control that
            # replays this run needs (`replay_lines` keeps it and drops the per-unit lists)
            "mean_acceptance": group_means(draw.acceptance, entity_groups(self.unit, table)),
            "examples_trained": len(epoch_examples),
            "denoise_quantiles": [round(q, 4) for q in self.sampler.last_quantiles],
            "acceptance_from": self.acceptance_from,
            "mean_loss_accepted": _nanmean(losses[mask]),
            "mean_loss_rejected": _nanmean(losses[~mask]),
            "accepted_per_label": dict(sorted(per_label.items())),
            "scoring_seconds": round(scoring_seconds, 3),
            "previous_epoch_seconds": None if previous_epoch is None else round(previous_epoch, 3),
            # indices of the accepted units (in the unit table; = examples for unit "example")
            "accepted_indices": sorted(int(i) for i in draw.accepted),
            # every unit's acceptance probability, for how well rejection finds noise
            "acceptance": [round(float(a), 3) for a in draw.acceptance],
        }
        if self.rejected != "mask":
            # rejected sentences relabeled this epoch, the entities predicted into them, the
            # tokens left missing (a predicted entity not inside them), the prediction time
            line["relabeled"] = self._relabel_counts
        if self.unit == "span":
            entity = table.entity
            line["entity_units"] = {"proposed": int(entity.sum()), "accepted": int((mask & entity).sum())}
            line["outside_units"] = {"proposed": int((~entity).sum()), "accepted": int((mask & ~entity).sum())}
        if self.unit != "example":
            # sentences or spans (masked, or split off as the examples): every unit's loss in
            # unit order, so how well the loss ranks noise can be read against the units
            line["losses"] = [None if numpy.isnan(v) else round(float(v), 4) for v in losses]
        else:
            # Known losses of the accepted and rejected examples (for histograms).
            line["accepted_losses"] = _rounded(losses[mask])
            line["rejected_losses"] = _rounded(losses[~mask])
        self.stats.append(line)
        logger.info(
            "[rsft] epoch %d (%s%s): accepted %d/%d (%.1f%%), mean loss accepted %s / rejected %s",
            line["epoch"], line["target"], ", warm-up" if draw.warmup else "",
            line["accepted"], n, 100 * line["acceptance_rate"],
            _fmt(line["mean_loss_accepted"]), _fmt(line["mean_loss_rejected"]),
        )
        if self.stats_path is not None:
            write_jsonl_atomic(self.stats_path, self.stats)

    def _write_unit_table(self) -> None:
        """The units, in the corpus docs' token offsets, beside the stats file
        (STATS.units.json), so `accepted_indices` and `acceptance` can be read back."""
        if self.stats_path is None or self.table is None:
            return
        table = self.table
        origin = [self.origins[int(i)] for i in table.example]
        data = {
            "unit": self.unit,
            "context": self.context,
            "doc": [o[0] for o in origin],
            "start": [o[1] + int(s) for o, s in zip(origin, table.start)],
            "end": [o[1] + int(e) for o, e in zip(origin, table.end)],
            "entity": table.entity.astype(int).tolist(),
        }
        path = self.stats_path.with_name(self.stats_path.stem + ".units.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps(data), encoding="utf8")


# Units ranked apart (span units: outside tokens 0, entity spans 1) and their names in
# the stats' `mean_acceptance`; units of the other shapes form one group, "all".
GROUP_NAMES = {0: "outside", 1: "entity"}
# What a replay file keeps of a stats line: the epoch, the unit settings, how many units
# there were and their mean acceptance per group (not the per-unit lists).
REPLAY_KEYS = ("epoch", "target", "unit", "context", "span_kinds", "warmup", "proposed", "accepted",
               "expected_accepted", "mean_acceptance")


def entity_groups(unit: str, table: UnitTable) -> Optional[numpy.ndarray]:
    """Span units: entity spans (1) and outside tokens (0) are ranked apart; else None."""
    return table.entity.astype("int64") if unit == "span" else None


def acceptance_groups(groups: Optional[numpy.ndarray]) -> List[Tuple[str, Any]]:
    """(name, index) of every group of units; one group, "all", when groups is None."""
    if groups is None:
        return [("all", slice(None))]
    return [(GROUP_NAMES[int(g)], groups == g) for g in numpy.unique(groups)]


def group_means(acceptance: numpy.ndarray, groups: Optional[numpy.ndarray]) -> Dict[str, float]:
    """Mean acceptance of every group of units, rounded to 6 decimals."""
    return {name: round(float(acceptance[members].mean()), 6) for name, members in acceptance_groups(groups)
            if acceptance[members].size}


@dataclass
class ReplayedEpoch:
    """One epoch of the run a `random` control replays: how many units it had, and either
    every unit's acceptance (a stats file) or the mean per group (a replay file)."""

    units: int
    acceptance: Optional[numpy.ndarray] = None
    means: Optional[Dict[str, float]] = None

    def mean(self, group: str, members: Any, path: Optional[str]) -> float:
        if self.means is None:
            return float(self.acceptance[members].mean())
        if group not in self.means:
            problem = f"it has no mean acceptance of the {group!r} units (it has {sorted(self.means)})"
            raise ValueError(Errors.E109.format(path=path, problem=problem))
        return self.means[group]


def read_acceptances(path: Path, units: Dict[str, str]) -> Dict[int, ReplayedEpoch]:
    """A run's stats file, or its replay file (`replay_lines`), as epoch -> what the run
    accepted; its epochs must run 0, 1, 2, ... and its unit settings (where recorded)
    equal `units`."""
    if not path.is_file():
        raise ValueError(Errors.E109.format(path=path, problem="there is no such file"))
    acceptances: Dict[int, ReplayedEpoch] = {}
    for number, text in enumerate(path.read_text(encoding="utf8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
            epoch = int(line["epoch"])
            if "acceptance" in line:
                acceptance = numpy.asarray(line["acceptance"], dtype="float64")
                replayed = ReplayedEpoch(units=acceptance.shape[0], acceptance=acceptance)
            else:
                means = {str(k): float(v) for k, v in dict(line["mean_acceptance"]).items()}
                replayed = ReplayedEpoch(units=int(line["proposed"]), means=means)
        except (ValueError, KeyError, TypeError) as err:
            problem = (f"line {number} is not a stats line with `epoch` and `acceptance` (or a replay line with "
                       f"`epoch`, `proposed` and `mean_acceptance`) ({err!r})")
            raise ValueError(Errors.E109.format(path=path, problem=problem)) from None
        if epoch != len(acceptances):
            problem = f"line {number} is epoch {epoch}, expected epoch {len(acceptances)}"
            raise ValueError(Errors.E109.format(path=path, problem=problem))
        differ = {k: line[k] for k, v in units.items() if k in line and line[k] != v}
        if differ:
            problem = f"its units were {differ}, this reader's are {units}"
            raise ValueError(Errors.E109.format(path=path, problem=problem))
        acceptances[epoch] = replayed
    if not acceptances:
        raise ValueError(Errors.E109.format(path=path, problem="it has no epochs"))
    return acceptances


def replay_lines(stats: List[Dict[str, Any]], entity: Optional[List[int]] = None) -> List[Dict[str, Any]]:
    """A stats file's lines cut to what `acceptance_from` needs (REPLAY_KEYS): a few hundred
    bytes an epoch instead of every unit's loss and acceptance, small enough to keep with a
    run's results so its control can be run later, elsewhere. Stats written before the
    lines recorded `mean_acceptance` get it from `acceptance`, grouped by the unit table's
    `entity` flags (STATS.units.json) for span units.
    """
    lines = []
    for line in stats:
        line = dict(line)
        if "mean_acceptance" not in line:
            if line.get("unit") == "span" and entity is None:
                raise ValueError(Errors.E109.format(
                    path="(stats lines)", problem="span units need the unit table's `entity` flags to group them"))
            groups = numpy.asarray(entity, dtype="int64") if line.get("unit") == "span" else None
            line["mean_acceptance"] = group_means(numpy.asarray(line["acceptance"], dtype="float64"), groups)
        lines.append({key: line[key] for key in REPLAY_KEYS if key in line})
    return lines


def predict_entities(nlp: Language, docs: List[Doc], batch_size: int) -> List[Doc]:
    """Copies of `docs` annotated by the pipeline up to its last component that sets
    `doc.ents` (the components after it, e.g. a linker, are not run).

    nlp (Language): The pipeline being trained.
    docs (List[Doc]): Unannotated docs (the examples' predicted docs; not changed).
    batch_size (int): Batch size of `nlp.pipe`.
    RETURNS (List[Doc]): The annotated copies, in order.
    """
    setters = [name for name in nlp.pipe_names if "doc.ents" in nlp.get_pipe_meta(name).assigns]
    if not setters:
        raise ValueError(Errors.E110.format(pipeline=nlp.pipe_names))
    after = nlp.pipe_names[nlp.pipe_names.index(setters[-1]) + 1 :]
    return list(nlp.pipe((doc.copy() for doc in docs), batch_size=batch_size, disable=after))


def write_jsonl_atomic(path: Path, lines: List[Dict[str, Any]]) -> None:
    """Write JSON lines to a temporary file beside `path`, then rename it over `path`, so
    an interrupted write never leaves a truncated file.

    path (Path): The target file.
    lines (List[Dict[str, Any]]): One JSON object per line.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf8") as file_:
            for line in lines:
                file_.write(json.dumps(line) + "\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def split_sentences(nlp: Language, examples: List[Example]) -> Tuple[List[Example], List[tuple]]:
    """One example per reference sentence (`context = "sentence"`), and where each came from.

    nlp (Language): The pipeline (its tokenizer makes the predicted docs).
    examples (List[Example]): The corpus examples.
    RETURNS (Tuple[List[Example], List[tuple]]): The sentence examples, and per example
        (corpus doc, first token, end token).
    """
    out, origins = [], []
    for i, eg in enumerate(examples):
        for sent in sentences(eg.reference):
            reference = sent.as_doc()
            out.append(Example(nlp.make_doc(reference.text), reference))
            origins.append((i, sent.start, sent.end))
    return out, origins


def _is_initializing(nlp: Language) -> bool:
    # Language.initialize() sets nlp._optimizer only when it finishes, so while it reads
    # the corpus the optimizer is still unset. There is no public flag for this.
    return getattr(nlp, "_optimizer", None) is None


def _check_training_settings(nlp: Language) -> None:
    training = nlp.config.get("training", {})
    max_epochs = training.get("max_epochs", -1)
    if max_epochs != -1:
        raise ValueError(Errors.E105.format(max_epochs=max_epochs))
    if not training.get("max_steps", 0) and not training.get("patience", 0):
        raise ValueError(Errors.E106)


def labels_first(examples: List[Example]) -> List[Example]:
    """The examples, reordered so that the first example of each label comes first.

    examples (List[Example]): The corpus.
    RETURNS (List[Example]): The same examples, label-covering ones first.
    """
    first, seen = [], set()
    for i, eg in enumerate(examples):
        new = set(_labels(eg)) - seen
        if new:
            first.append(i)
            seen.update(new)
    chosen = set(first)
    return [examples[i] for i in first] + [eg for i, eg in enumerate(examples) if i not in chosen]


def _labels(example: Example) -> List[str]:
    labels = {ent.label_ for ent in example.reference.ents}
    labels.update(cat for cat, value in example.reference.cats.items() if value >= 0.5)
    return sorted(labels)


def _nanmean(values: numpy.ndarray) -> Optional[float]:
    values = values[~numpy.isnan(values)]
    finite = values[numpy.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def _rounded(values: numpy.ndarray) -> List[float]:
    return [round(float(v), 4) for v in values if numpy.isfinite(v)]


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.3f}"
