"""`rsft_entity_linker`: link `doc.ents` to a spaCy KnowledgeBase, or to NIL.

For each entity the candidate generator (exact, normalized, optionally fuzzy alias lookup)
proposes KB entities; each candidate is scored by

    s(m, e) = <mention vector, entity vector> + w_prior * log p(e|m) + w_match * match(m, e)

and NIL gets its own score from the mention vector. A softmax over candidates + NIL gives
the probabilities: the best one is linked (`ent.kb_id_`), unless it is NIL or its
probability is under `threshold`. `ent._.kb_score` holds the chosen outcome's probability and
`ent._.kb_candidates` every candidate with its probability, best first.

Training uses the gold entities and their gold ids (softmax cross-entropy over candidates +
NIL). When a mention has more than `max_train_candidates` candidates, the negatives are chosen
by rejection sampling on their current score (hard negatives, the same idea as the RSFT
reader): negative c is accepted with probability max(0.05, exp((s_c - max s) / T)).
"""
import warnings
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import numpy
from spacy import util
from spacy.kb import InMemoryLookupKB, KnowledgeBase
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model, set_dropout_rate

from ..annotations import NIL
from ..errors import Errors, Warnings
from ..kb.candidates import Candidate
from ..models.encoder import encoder_config
from .batching import MAX_BATCH_ITEMS, LengthGroupedPipe, check_release_memory
from .guard import NonFiniteGuard
from .quantization import check_mode as check_quantize_mode
from .quantization import check_trainable, fp32_weights, quantize_model
from .recording import ExampleLossRecorder, reference_token_losses

MIN_PRIOR = 1e-4

DEFAULT_EL_MODEL = """
[model]
@architectures = "spacy-rsft.MentionEncoder.v1"
context_window = 8
"""
DEFAULT_EL_CONFIG = Config().from_str(DEFAULT_EL_MODEL + encoder_config("model.tok2vec"))

@Language.factory(
    "rsft_entity_linker",
    requires=["doc.ents", "token.ent_iob", "token.ent_type"],
    assigns=["token.ent_kb_id", "span._.kb_score", "span._.kb_candidates"],
    default_config={
        "model": DEFAULT_EL_CONFIG["model"],
        "candidate_generator": {"@misc": "spacy-rsft.candidate_generator.v1"},
        "threshold": None,
        "max_train_candidates": 20,
        "hard_negative_temperature": 1.0,
        "use_gold_ents": True,
        "quantize": None,
        "release_memory": 0,
        "scorer": {"@scorers": "spacy-rsft.el_scorer.v1"},
    },
    default_score_weights={
        "nel_micro_f": 1.0,
        "nel_micro_p": None,
        "nel_micro_r": None,
        "nel_inkb_accuracy": None,
        "nel_nil_f": None,
        "nel_candidate_recall": None,
    },
)
def make_rsft_entity_linker(
    nlp: Language,
    name: str,
    model: Model,
    candidate_generator: Callable[[KnowledgeBase, Span], List[Candidate]],
    threshold: Optional[float],
    max_train_candidates: int,
    hard_negative_temperature: float,
    use_gold_ents: bool,
    quantize: Optional[str],
    release_memory: int,
    scorer: Optional[Callable],
) -> "RsftEntityLinker":
    """Create an `rsft_entity_linker`. The KB comes in `initialize` (`kb_loader`).

    model (Model): Mention encoder (`spacy-rsft.MentionEncoder.v1`).
    candidate_generator (Callable): (kb, mention span) -> candidates.
    threshold (Optional[float]): Links with a probability under it become NIL.
    max_train_candidates (int): Candidates per mention in training (gold + sampled hard
        negatives) when there are more.
    hard_negative_temperature (float): Temperature of the hard-negative sampling.
    use_gold_ents (bool): Score on the gold entities when the pipeline has no NER before
        this component (as spaCy's `entity_linker` does).
    quantize (Optional[str]): "int8": when the trained pipeline is loaded, run the
        transformer with int8 dynamic quantization of its linear layers (CPU inference only).
    release_memory (int): Every this many updates, and after every `pipe` stream, hand
        the memory glibc keeps back to the OS (see `LengthGroupedPipe`). 0 (default): never.
    scorer (Optional[Callable]): Scoring method.
    """
    return RsftEntityLinker(
        nlp.vocab, model, name, candidate_generator=candidate_generator, threshold=threshold,
        max_train_candidates=max_train_candidates,
        hard_negative_temperature=hard_negative_temperature, use_gold_ents=use_gold_ents,
        quantize=quantize, release_memory=release_memory, scorer=scorer,
    )


class LinkScores:
    """Scores of one mention: candidate ids and probabilities, and P(NIL)."""

    __slots__ = ("entities", "probs", "nil")

    def __init__(self, entities: List[str], probs: numpy.ndarray, nil: float) -> None:
        self.entities = entities
        self.probs = probs
        self.nil = nil


def mention_token_losses(batch: List[Tuple[Example, list]], per_mention: List[List[float]]) -> List[numpy.ndarray]:
    """One loss per predicted token of each example: each gold mention's loss on its tokens,
    NaN elsewhere.

    batch (List[Tuple[Example, list]]): Examples with their (start, end, ...) gold mentions.
    per_mention (List[List[float]]): The loss of each of those mentions.
    RETURNS (List[ndarray]): The token losses.
    """
    out = []
    for (eg, mentions), values in zip(batch, per_mention):
        losses = numpy.full((len(eg.predicted),), numpy.nan, dtype="float32")
        for (start, end, _, _), value in zip(mentions, values):
            losses[start:end] = value
        out.append(losses)
    return out


def _softmax(x: numpy.ndarray) -> numpy.ndarray:
    e = numpy.exp(x - x.max())
    return e / e.sum()


class RsftEntityLinker(LengthGroupedPipe, TrainablePipe):
    """Transformer-backed entity linker with candidate scores and a trained NIL option."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "rsft_entity_linker",
        *,
        candidate_generator: Callable[[KnowledgeBase, Span], List[Candidate]],
        threshold: Optional[float] = None,
        max_train_candidates: int = 20,
        hard_negative_temperature: float = 1.0,
        use_gold_ents: bool = True,
        quantize: Optional[str] = None,
        release_memory: int = 0,
        scorer: Optional[Callable] = None,
    ) -> None:
        check_quantize_mode(name, quantize)
        self.release_memory = check_release_memory(name, release_memory)
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ValueError(Errors.E008.format(name=name, setting="threshold", value=threshold, options="a probability in [0, 1] or null"))
        self.vocab = vocab
        self.model = model
        self.name = name
        self.candidate_generator = candidate_generator
        self.kb: Optional[KnowledgeBase] = None
        # Settings come from the config every time the component is built; only what the
        # trained weights depend on (the KB's vector length) is saved in cfg.
        self.threshold = threshold
        self.max_train_candidates = max_train_candidates
        self.hard_negative_temperature = hard_negative_temperature
        self.use_gold_ents = use_gold_ents
        self.quantize = quantize
        # max_batch_items: inference sub-batch size in tokens (see `pipe`).
        self.cfg: Dict[str, Any] = {"entity_vector_length": None, "max_batch_items": MAX_BATCH_ITEMS}
        self.loss_recorder = ExampleLossRecorder()
        self._unknown_gold = 0
        # Gold mentions left out of training because no candidate is the gold entity
        # (candidate recall below 1); see nel_candidate_recall in the scores.
        self.skipped_mentions = 0
        self.guard = NonFiniteGuard(name)
        # Draws the hard negatives; `initialize` reseeds it from the training seed.
        self._rng = numpy.random.default_rng(0)
        self._scorer = scorer
        self.scorer = self._score_with_ents if scorer is not None else None

    # -- KB -----------------------------------------------------------------------------
    def set_kb(self, kb_loader: Callable[[Vocab], KnowledgeBase]) -> None:
        """Load the KB with `kb_loader(vocab)` (e.g. `spacy.KBFromFile.v1`)."""
        if not callable(kb_loader):
            raise ValueError(Errors.E201.format(name=self.name, got=type(kb_loader).__name__))
        kb = kb_loader(self.vocab)
        if kb is None or kb.get_size_entities() == 0:
            raise ValueError(Errors.E202.format(name=self.name))
        self._check_vector_length(kb, "kb_loader")
        self.kb = kb

    def _check_vector_length(self, kb: KnowledgeBase, source: str) -> None:
        expected = self.cfg.get("entity_vector_length")
        if expected is not None and kb.entity_vector_length != expected:
            raise ValueError(
                Errors.E206.format(name=self.name, source=source, got=kb.entity_vector_length, expected=expected)
            )

    def _require_kb(self) -> KnowledgeBase:
        if self.kb is None:
            raise ValueError(Errors.E203.format(name=self.name))
        return self.kb

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        kb_loader: Optional[Callable[[Vocab], KnowledgeBase]] = None,
    ) -> None:
        """Load the KB, build the model for its entity vector length, and seed the
        hard-negative sampling from the pipeline's `[system] seed`.

        get_examples (Callable[[], Iterable[Example]]): Training examples.
        nlp (Optional[Language]): The pipeline; its `[system] seed` seeds the hard-negative
            sampling (0 without a pipeline; null, as in spaCy, leaves runs unseeded).
        kb_loader (Optional[Callable[[Vocab], KnowledgeBase]]): Loads the KB, e.g.
            `[initialize.components.rsft_entity_linker.kb_loader] @misc = "spacy.KBFromFile.v1"`.
        """
        validate_get_examples(get_examples, "RsftEntityLinker.initialize")
        if kb_loader is not None:
            self.set_kb(kb_loader)
        kb = self._require_kb()
        length = kb.entity_vector_length
        # A new KB may change the vector length only before the model has weights.
        if self.cfg.get("entity_vector_length") not in (None, length) and self._has_weights():
            self._check_vector_length(kb, "initialize")
        self.cfg["entity_vector_length"] = length
        self.model.set_dim("nO", length + 1, force=True)
        docs = [eg.predicted for eg in islice(get_examples(), 10) if len(eg.predicted)]
        if not docs:
            docs = [Doc(self.vocab, words=["x"])]
        self.model.initialize(X=(docs, [[] for _ in docs]))
        # Runs with different seeds should differ in their negatives as in everything else.
        seed = nlp.config["system"].get("seed") if nlp is not None else 0
        self._rng = numpy.random.default_rng(seed)

    def _has_weights(self) -> bool:
        return self.model.get_ref("projection").has_param("W") is True

    # -- candidates and scores ----------------------------------------------------------
    def _candidates(self, mention: Span) -> List[Candidate]:
        return self.candidate_generator(self._require_kb(), mention)

    def _score_candidates(
        self, output_row: numpy.ndarray, candidates: List[Candidate]
    ) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
        """Raw scores of candidates + NIL (last), and the inputs needed for gradients."""
        kb = self._require_kb()
        length = self.cfg["entity_vector_length"]
        weights = self.model.ops.to_numpy(self.model.get_ref("feature_weights").get_param("W"))
        vectors = numpy.asarray([kb.get_vector(c.entity) for c in candidates], dtype="float32").reshape(len(candidates), length)
        feats = numpy.asarray(
            [[numpy.log(max(c.prior, MIN_PRIOR)), c.match] for c in candidates], dtype="float32"
        ).reshape(len(candidates), 2)
        scores = vectors @ output_row[:length] + feats @ weights
        return numpy.append(scores, output_row[length]), vectors, feats

    def _mentions(self, doc: Doc) -> List[Tuple[int, int]]:
        return [(ent.start, ent.end) for ent in doc.ents]

    def predict(self, docs: Iterable[Doc]) -> List[List[LinkScores]]:
        """Probabilities of every candidate and of NIL for each entity; annotates nothing.

        docs (Iterable[Doc]): Docs with entities.
        RETURNS (List[List[LinkScores]]): Per doc, per entity.
        """
        docs = list(docs)
        self._require_kb()
        results: List[List[LinkScores]] = [[] for _ in docs]
        with_ents = [i for i, doc in enumerate(docs) if len(doc.ents)]
        if not with_ents:
            return results
        batch = [docs[i] for i in with_ents]
        outputs = self.model.ops.to_numpy(
            self.model.predict((batch, [self._mentions(doc) for doc in batch]))
        )
        row = 0
        for i, doc in zip(with_ents, batch):
            for ent in doc.ents:
                candidates = self._candidates(ent)
                if candidates:
                    raw, _, _ = self._score_candidates(outputs[row], candidates)
                    probs = _softmax(raw)
                    results[i].append(LinkScores([c.entity for c in candidates], probs[:-1], float(probs[-1])))
                else:
                    results[i].append(LinkScores([], numpy.zeros((0,)), 1.0))
                row += 1
        return results

    def set_annotations(self, docs: Iterable[Doc], scores: List[List[LinkScores]]) -> None:
        """Write `kb_id`, `_.kb_score` and `_.kb_candidates` on every entity."""
        threshold = self.threshold
        for doc, doc_scores in zip(docs, scores):
            for ent, link in zip(doc.ents, doc_scores):
                order = numpy.argsort(-link.probs, kind="stable")
                ranked = [(link.entities[j], float(link.probs[j])) for j in order]
                kb_id, score = NIL, link.nil
                if ranked and ranked[0][1] > link.nil:
                    if threshold is None or ranked[0][1] >= threshold:
                        kb_id, score = ranked[0]
                for token in ent:
                    token.ent_kb_id_ = kb_id
                ent._.kb_score = score
                ent._.kb_candidates = ranked

    # -- training -----------------------------------------------------------------------
    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd=None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Learn from the gold entities and ids of a batch; record each example's loss."""
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "RsftEntityLinker.update")
        check_trainable(self.model, self.name)
        self._require_kb()
        batch = []
        for eg in examples:
            mentions = self._gold_mentions(eg)
            if mentions:
                batch.append((eg, mentions))
        if not batch:
            return losses
        set_dropout_rate(self.model, drop)
        docs = [eg.predicted for eg, _ in batch]
        spans = [[(s, e) for s, e, _, _ in mentions] for _, mentions in batch]
        outputs, backprop = self.model.begin_update((docs, spans))
        loss, d_outputs, d_weights, per_example, per_mention = self._loss(batch, self.model.ops.to_numpy(outputs))
        if not self.guard.ok(loss, [d_outputs, d_weights]):
            return losses
        backprop(self.model.ops.asarray2f(d_outputs))
        self.model.get_ref("feature_weights").inc_grad("W", self.model.ops.asarray1f(d_weights))
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        self.loss_recorder.record([eg for eg, _ in batch], per_example)
        # each mention's loss on its tokens: the reader's span units (entity spans) get it
        self.loss_recorder.record_tokens([eg for eg, _ in batch], mention_token_losses(batch, per_mention))
        return losses

    def _gold_mentions(self, eg: Example) -> List[Tuple[int, int, str, List[Candidate]]]:
        """(start, end, gold id, candidates) of the trainable gold mentions: those with a
        KB id whose gold entity is among the candidates, or whose gold id is NIL."""
        kb = self._require_kb()
        mentions = []
        for ent in eg.reference.ents:
            gold = ent.kb_id_
            if not gold:
                continue
            span = eg.predicted.char_span(ent.start_char, ent.end_char, alignment_mode="contract")
            if span is None or len(span) == 0:
                continue
            if gold != NIL and not kb.contains_entity(gold):
                # Not in the KB: for this KB the right answer is NIL.
                self._note_unknown_gold(gold)
                gold = NIL
            candidates = self._candidates(span)
            if gold != NIL and gold not in {c.entity for c in candidates}:
                # The linker cannot learn a link its candidates do not offer.
                self.skipped_mentions += 1
                continue
            mentions.append((span.start, span.end, gold, candidates))
        return mentions

    def _note_unknown_gold(self, gold: str) -> None:
        self._unknown_gold += 1
        if self._unknown_gold == 1:
            warnings.warn(Warnings.W003.format(name=self.name, kb_id=gold))

    def get_loss(
        self, batch: List[Tuple[Example, list]], outputs: numpy.ndarray
    ) -> Tuple[float, numpy.ndarray, numpy.ndarray, numpy.ndarray]:
        """Softmax cross-entropy over (sampled) candidates + NIL for every gold mention.

        batch (List[Tuple[Example, list]]): Examples with their gold mentions.
        outputs (ndarray): Mention encoder output, one row per mention.
        RETURNS (Tuple[float, ndarray, ndarray, ndarray]): Summed loss, d_outputs, the
            gradient of the feature weights, and the mean loss per example.
        """
        return self._loss(batch, outputs)[:4]

    def _loss(
        self, batch: List[Tuple[Example, list]], outputs: numpy.ndarray
    ) -> Tuple[float, numpy.ndarray, numpy.ndarray, numpy.ndarray, List[List[float]]]:
        """`get_loss`, plus the loss of every mention of every example."""
        length = self.cfg["entity_vector_length"]
        d_outputs = numpy.zeros_like(outputs)
        d_weights = numpy.zeros((2,), dtype="float32")
        total, per_example, per_mention, row = 0.0, [], [], 0
        n_mentions = sum(len(m) for _, m in batch)
        for _, mentions in batch:
            example_loss = 0.0
            per_mention.append([])
            for _, _, gold, candidates in mentions:
                raw, vectors, feats = self._score_candidates(outputs[row], candidates)
                keep = self._training_subset(raw[:-1], [c.entity for c in candidates], gold)
                sub = numpy.append(raw[keep], raw[-1])
                probs = _softmax(sub)
                target = len(keep) if gold == NIL else keep.index(next(i for i, c in enumerate(candidates) if c.entity == gold))
                value = -float(numpy.log(max(probs[target], 1e-12)))
                example_loss += value
                per_mention[-1].append(value)
                grad = probs.copy()
                grad[target] -= 1.0
                grad /= n_mentions
                d_outputs[row, :length] = grad[:-1] @ vectors[keep]
                d_outputs[row, length] = grad[-1]
                d_weights += grad[:-1] @ feats[keep]
                row += 1
            total += example_loss
            per_example.append(example_loss / len(mentions))
        return total, d_outputs, d_weights, numpy.asarray(per_example), per_mention

    def _training_subset(self, scores: numpy.ndarray, entities: List[str], gold: str) -> List[int]:
        """All candidates, or (when there are more than the cap) the gold one plus hard
        negatives accepted by rejection sampling on their current score."""
        cap = self.max_train_candidates
        if len(entities) <= cap:
            return list(range(len(entities)))
        gold_idx = [i for i, e in enumerate(entities) if e == gold]
        negatives = numpy.asarray([i for i, e in enumerate(entities) if e != gold])
        temperature = self.hard_negative_temperature
        neg_scores = scores[negatives]
        accept = numpy.maximum(numpy.exp((neg_scores - neg_scores.max()) / temperature), 0.05)
        accepted = negatives[self._rng.random(len(negatives)) < accept]
        if len(accepted) > cap - len(gold_idx):
            accepted = accepted[numpy.argsort(-scores[accepted], kind="stable")[: cap - len(gold_idx)]]
        return sorted(gold_idx + [int(i) for i in accepted])

    def skip_counts(self) -> Dict[str, int]:
        """What training left out or changed so far, for the reader's stats.

        RETURNS (Dict[str, int]): Counts by reason.
        """
        return {
            "mentions_without_gold_candidate": self.skipped_mentions,
            "gold_ids_not_in_kb_trained_as_nil": self._unknown_gold,
            "nonfinite_updates": self.guard.skipped,
        }

    def pop_recorded_losses(self) -> Dict[int, float]:
        """Hand over (and forget) the per-example losses recorded since the last call."""
        return self.loss_recorder.pop()

    def pop_recorded_token_losses(self) -> Dict[int, numpy.ndarray]:
        """Hand over (and forget) the per-token losses recorded since the last call: each
        gold mention's loss on its tokens (NaN elsewhere), for the reader's span units.

        RETURNS (Dict[int, ndarray]): Example id -> loss of each reference token.
        """
        return self.loss_recorder.pop_tokens()

    def get_example_losses(self, examples: Iterable[Example]) -> numpy.ndarray:
        """Each example's mean linking loss under the current weights, no gradient."""
        examples = list(examples)
        values = numpy.full((len(examples),), numpy.nan)
        positions, per_example, _ = self._scoring_pass(examples)
        if positions:
            values[positions] = per_example
        return values

    def get_token_losses(self, examples: Iterable[Example]) -> List[numpy.ndarray]:
        """Each gold mention's linking loss on its reference tokens under the current weights,
        no gradient (NaN outside the mentions): the reader's `fresh` scoring of span and
        sentence units.

        examples (Iterable[Example]): The examples.
        RETURNS (List[ndarray]): One loss per reference token of each example.
        """
        examples = list(examples)
        out = [numpy.full((len(eg.reference),), numpy.nan, dtype="float32") for eg in examples]
        positions, _, per_token = self._scoring_pass(examples)
        for i, losses in zip(positions, per_token):
            out[i] = reference_token_losses(examples[i], losses)
        return out

    def _scoring_pass(self, examples: List[Example]) -> Tuple[List[int], numpy.ndarray, List[numpy.ndarray]]:
        """One no-gradient pass over the examples' gold mentions: the positions of the
        examples that have any, their mean loss, and each one's predicted-token losses."""
        batch, positions = [], []
        for i, eg in enumerate(examples):
            mentions = self._gold_mentions(eg)
            if mentions:
                batch.append((eg, mentions))
                positions.append(i)
        if not batch:
            return [], numpy.zeros((0,)), []
        docs = [eg.predicted for eg, _ in batch]
        spans = [[(s, e) for s, e, _, _ in m] for _, m in batch]
        outputs = self.model.ops.to_numpy(self.model.predict((docs, spans)))
        _, _, _, per_example, per_mention = self._loss(batch, outputs)
        return positions, per_example, mention_token_losses(batch, per_mention)

    # -- scoring ------------------------------------------------------------------------
    def _score_with_ents(self, examples: Iterable[Example], **kwargs) -> Dict[str, Any]:
        examples = list(examples)
        if self.use_gold_ents and not any(len(eg.predicted.ents) for eg in examples):
            # No NER ran before us: link the gold entities, as spaCy's entity_linker does.
            copies = []
            for eg in examples:
                ents, _ = eg.get_aligned_ents_and_ner()
                copy = eg.copy()
                copy.predicted.ents = ents
                copies.append(copy)
            docs = list(self.pipe(eg.predicted for eg in copies))
            for eg, doc in zip(copies, docs):
                eg.predicted = doc
            examples = copies
        return self._scorer(examples, **kwargs)

    # -- serialization ------------------------------------------------------------------
    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        serialize = {
            "cfg": lambda p: util.srsly.write_json(p, self.cfg),
            "kb": lambda p: self._require_kb().to_disk(p),
            "model": lambda p: self.model.to_disk(p),
        }
        with fp32_weights(self.model):  # a quantized transformer is saved as its fp32 original
            util.to_disk(path, serialize, exclude)

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        with fp32_weights(self.model):
            return super().to_bytes(exclude=exclude)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "RsftEntityLinker":
        super().from_bytes(bytes_data, exclude=exclude)
        if self.quantize is not None:
            quantize_model(self.model, self.name)
        return self

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "RsftEntityLinker":
        path = util.ensure_path(path)

        def load_cfg(p):
            self.cfg.update(util.srsly.read_json(p))

        def load_kb(p):
            kb = InMemoryLookupKB(self.vocab, entity_vector_length=self.cfg["entity_vector_length"])
            try:
                kb.from_disk(p)
            except Exception as err:
                raise ValueError(Errors.E204.format(name=self.name, path=p, err=err)) from None
            self._check_vector_length(kb, str(p))
            self.kb = kb

        def load_model(p):
            self.model.set_dim("nO", self.cfg["entity_vector_length"] + 1, force=True)
            try:
                with p.open("rb") as file_:
                    self.model.from_bytes(file_.read())
            except (AttributeError, ValueError) as err:
                raise ValueError(Errors.E205.format(name=self.name, path=p, err=err)) from None

        deserialize = {"cfg": load_cfg, "kb": load_kb, "model": load_model}
        util.from_disk(path, deserialize, exclude)
        if self.quantize is not None:
            quantize_model(self.model, self.name)
        return self
