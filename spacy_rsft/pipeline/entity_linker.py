"""`rsft_entity_linker`: link `doc.ents` to a spaCy KnowledgeBase, or to NIL.

For each entity the candidate generator (exact, normalized, optionally fuzzy alias lookup,
with in-document mention expansion) proposes KB entities; each candidate is scored by

    s(m, e) = <mention vector, entity vector> + sum_f w_f * f(m, e) + T[label(m), type(e)]

over the ranking features in `features` (log p(e|m), alias match, popularity, document
coherence; the label x type table; see `link_features`), and NIL gets its own score from the
mention vector. A softmax over candidates + NIL gives
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
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

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
from ..calibration import expected_calibration_error, fit_temperature, link_nll
from ..errors import Errors, Warnings
from ..kb.candidates import Candidate, normalize_alias
from ..models.encoder import encoder_config
from ..models.hf_loading import model_from_file
from ..models.tagger import check_upstream_ran, is_listener
from .batching import MAX_BATCH_ITEMS, LengthGroupedPipe, check_release_memory
from .cpu_ops import use_torch_gemm
from .guard import NonFiniteGuard
from .link_features import (
    DEFAULT_FEATURES, LEGACY_FEATURES, EntityTable, EntityVectors, MentionFeatures, check_features,
    TABLE_FEATURES, initial_weights, mention_features, n_outputs, scalar_features, score_document,
    type_vocab,
)
from .quantization import check_mode as check_quantize_mode
from .quantization import check_trainable, fp32_weights, quantize_model
from .recording import ExampleLossRecorder, reference_token_losses
from .threads import before_torch_runs

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
        "features": DEFAULT_FEATURES,
        "feature_scale": 100.0,
        "threshold": None,
        "max_train_candidates": 20,
        "hard_negative_temperature": 1.0,
        "use_gold_ents": True,
        "quantize": None,
        "release_memory": 20,
        "scorer": {"@scorers": "spacy-rsft.el_scorer.v1"},
    },
    default_score_weights={
        "nel_micro_f": 1.0,
        "nel_micro_p": None,
        "nel_micro_r": None,
        "nel_inkb_accuracy": None,
        "nel_nil_f": None,
        "nel_candidate_recall": None,
        "nel_ece": None,
    },
)
def make_rsft_entity_linker(
    nlp: Language,
    name: str,
    model: Model,
    candidate_generator: Callable[[KnowledgeBase, Span], List[Candidate]],
    features: List[str],
    feature_scale: float,
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
    candidate_generator (Callable): (kb, mention span) -> candidates. A generator with a
        `for_doc(kb, spans)` method gets a document's mentions together (mention expansion).
    features (List[str]): The ranking features: "log_prior", "match", "popularity",
        "coherence", "type", "context_type" (see `spacy_rsft.pipeline.link_features`). Fixed at
        `initialize`: a trained pipeline keeps the features it was trained with.
    feature_scale (float): The feature weights are this times their parameters, so they
        learn this many times faster than the transformer under the same optimizer (Adam
        moves every parameter by about the learning rate a step: at 2e-4, a weight the
        prior should outweigh would move by 0.06 in 300 steps). Fixed at `initialize`.
    threshold (Optional[float]): Links with a probability under it become NIL.
    max_train_candidates (int): Candidates per mention in training (gold + sampled hard
        negatives) when there are more.
    hard_negative_temperature (float): Temperature of the hard-negative sampling.
    use_gold_ents (bool): Score on the gold entities when the pipeline has no NER before
        this component (as spaCy's `entity_linker` does).
    quantize (Optional[str]): "int8": when the trained pipeline is loaded, run the
        transformer with int8 dynamic quantization of its linear layers, the few outlier
        input columns of the layers that have them in fp32 (CPU inference only; see
        `spacy_rsft.pipeline.quantization`); "int8-all": every column in int8, a little
        faster and less accurate. null (default): fp32.
    release_memory (int): Every this many updates, and after every `pipe` stream of a
        process that trains (an evaluation), hand the memory glibc keeps back to the OS
        (see `LengthGroupedPipe`). 20 (default); 0: never. A process that only predicts
        never trims.
    scorer (Optional[Callable]): Scoring method.
    """
    return RsftEntityLinker(
        nlp.vocab, model, name, candidate_generator=candidate_generator, features=features,
        feature_scale=feature_scale, threshold=threshold,
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


class GoldMention(NamedTuple):
    """A trainable gold mention on the predicted doc."""

    start: int
    end: int
    gold: str
    candidates: List[Candidate]
    label: str
    key: str  # its normalized text: mentions with the same key do not vote for each other


def mention_token_losses(batch: List[Tuple[Example, list]], per_mention: List[List[float]]) -> List[numpy.ndarray]:
    """One loss per predicted token of each example: each gold mention's loss on its tokens,
    NaN elsewhere.

    batch (List[Tuple[Example, list]]): Examples with their gold mentions.
    per_mention (List[List[float]]): The loss of each of those mentions.
    RETURNS (List[ndarray]): The token losses.
    """
    out = []
    for (eg, mentions), values in zip(batch, per_mention):
        losses = numpy.full((len(eg.predicted),), numpy.nan, dtype="float32")
        for mention, value in zip(mentions, values):
            losses[mention.start:mention.end] = value
        out.append(losses)
    return out


def _softmax(x: numpy.ndarray) -> numpy.ndarray:
    e = numpy.exp(x - x.max())
    return e / e.sum()


def chosen_outcome(raw: numpy.ndarray, temperature: float, threshold: Optional[float]) -> Tuple[int, float]:
    """The outcome `set_annotations` chooses from raw scores (the last index for NIL), and its
    probability."""
    probs = _softmax(raw / temperature)
    best = int(numpy.argmax(probs[:-1]))
    if probs[best] > probs[-1] and (threshold is None or probs[best] >= threshold):
        return best, float(probs[best])
    return len(probs) - 1, float(probs[-1])


def link_micro_f(outcomes: List[Tuple[numpy.ndarray, int]], temperature: float, threshold: Optional[float]) -> float:
    """spaCy's link micro F with NIL as the negative label, from raw scores and gold indices
    (-1: an in-KB gold that is not a candidate): a wrong link is a false positive and (for an
    in-KB gold) a false negative; NIL for an in-KB gold only the latter."""
    tp = fp = fn = 0
    for raw, gold in outcomes:
        chosen, _ = chosen_outcome(raw, temperature, threshold)
        nil_pred, nil_gold = chosen == len(raw) - 1, gold == len(raw) - 1
        if chosen == gold:
            tp += not nil_gold
            continue
        fn += not nil_gold
        fp += not nil_pred
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


class RsftEntityLinker(LengthGroupedPipe, TrainablePipe):
    """Transformer-backed entity linker with candidate scores and a trained NIL option."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "rsft_entity_linker",
        *,
        candidate_generator: Callable[[KnowledgeBase, Span], List[Candidate]],
        features: Sequence[str] = tuple(DEFAULT_FEATURES),
        feature_scale: float = 100.0,
        threshold: Optional[float] = None,
        max_train_candidates: int = 20,
        hard_negative_temperature: float = 1.0,
        use_gold_ents: bool = True,
        quantize: Optional[str] = None,
        release_memory: int = 20,
        scorer: Optional[Callable] = None,
    ) -> None:
        check_quantize_mode(name, quantize)
        self.release_memory = check_release_memory(name, release_memory)
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ValueError(Errors.E008.format(name=name, setting="threshold", value=threshold, options="a probability in [0, 1] or null"))
        self.vocab = vocab
        # the dense layers' matrix products on torch's BLAS (see cpu_ops.py)
        self.model = use_torch_gemm(model)
        self.name = name
        self.candidate_generator = candidate_generator
        self.features = check_features(name, features)
        if not feature_scale > 0:
            raise ValueError(Errors.E008.format(name=name, setting="feature_scale", value=feature_scale, options="a number > 0"))
        self.feature_scale = float(feature_scale)
        self.kb: Optional[KnowledgeBase] = None
        self._vectors: Optional[EntityVectors] = None  # the KB's vectors as rows, filled as used
        self.entity_table = EntityTable()
        # Settings come from the config every time the component is built; only what the
        # trained weights depend on (the KB's vector length) is saved in cfg.
        self.threshold = threshold
        self.max_train_candidates = max_train_candidates
        self.hard_negative_temperature = hard_negative_temperature
        self.use_gold_ents = use_gold_ents
        self.quantize = quantize
        # max_batch_items: inference sub-batch size in tokens (see `pipe`). The features, the
        # mention labels and the entity types (the rows and columns of T) are fixed at
        # initialize: the weights depend on them.
        self.cfg: Dict[str, Any] = {
            "entity_vector_length": None, "max_batch_items": MAX_BATCH_ITEMS,
            "features": None, "feature_scale": None, "mention_labels": None, "entity_types": None,
            # Of the link probabilities (see `calibrate`); 1.0 until calibrated.
            "temperature": 1.0,
        }
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
        entities: Optional[Union[str, Path]] = None,
    ) -> None:
        """Load the KB, build the model for its entity vector length and the features, and
        seed the hard-negative sampling from the pipeline's `[system] seed`.

        get_examples (Callable[[], Iterable[Example]]): Training examples.
        nlp (Optional[Language]): The pipeline; its `[system] seed` seeds the hard-negative
            sampling (0 without a pipeline; null, as in spaCy, leaves runs unseeded).
        kb_loader (Optional[Callable[[Vocab], KnowledgeBase]]): Loads the KB, e.g.
            `[initialize.components.rsft_entity_linker.kb_loader] @misc = "spacy.KBFromFile.v1"`.
        entities (Optional[Union[str, Path]]): An entities file with `id` and optional
            `frequency` and `type` (build-kb's `entities.jsonl` or its input): the popularity
            and type features read it. Without it, frequencies come from the KB's own
            candidates and the `type` feature has no types to learn from (a warning says so).
        """
        validate_get_examples(get_examples, "RsftEntityLinker.initialize")
        if kb_loader is not None:
            self.set_kb(kb_loader)
        kb = self._require_kb()
        self._init_features(get_examples, kb, entities)
        length = kb.entity_vector_length
        # A new KB may change the vector length only before the model has weights.
        if self.cfg.get("entity_vector_length") not in (None, length) and self._has_weights():
            self._check_vector_length(kb, "initialize")
        self.cfg["entity_vector_length"] = length
        self.model.set_dim("nO", self._n_outputs(), force=True)
        docs = [eg.predicted for eg in islice(get_examples(), 10) if len(eg.predicted)]
        if not docs:
            docs = [Doc(self.vocab, words=["x"])]
        self.model.initialize(X=(docs, [[] for _ in docs]))
        weights = self.model.get_ref("feature_weights")
        scale = self.cfg["feature_scale"]
        weights.set_param("W", self.model.ops.asarray1f(initial_weights(self.cfg["features"]) / scale))
        # Runs with different seeds should differ in their negatives as in everything else.
        seed = nlp.config["system"].get("seed") if nlp is not None else 0
        self._rng = numpy.random.default_rng(seed)

    def _init_features(self, get_examples, kb: KnowledgeBase, entities: Optional[Union[str, Path]]) -> None:
        """Fix the features, the mention labels (rows of T) and the entity types (columns)."""
        if entities is not None:
            try:
                self.entity_table = EntityTable.from_file(entities, kb)
            except ValueError as err:
                raise ValueError(Errors.E207.format(name=self.name, path=entities, err=err)) from None
        else:
            self.entity_table = EntityTable.from_kb(kb)
        type_features = [f for f in self.features if f in TABLE_FEATURES]
        if type_features and len(self.entity_table.type_names) < 2:
            warnings.warn(Warnings.W009.format(name=self.name, features=type_features))
        labels = {ent.label_ for eg in get_examples() for ent in eg.reference.ents}
        self.cfg["features"] = list(self.features)
        self.cfg["feature_scale"] = self.feature_scale
        self.cfg["mention_labels"] = type_vocab(labels)
        self.cfg["entity_types"] = list(self.entity_table.type_names)
        self._set_feature_dims()

    def _set_feature_dims(self) -> None:
        """Size W and T for the features in cfg (before initializing or loading weights)."""
        features = self.cfg["features"] or LEGACY_FEATURES
        weights = self.model.get_ref("feature_weights")
        weights.set_dim("nF", len(scalar_features(features)), force=True)
        if "type" in features:
            weights.set_dim("nL", len(self.cfg["mention_labels"]), force=True)
            weights.set_dim("nT", len(self.cfg["entity_types"]), force=True)

    def _n_outputs(self) -> int:
        features = self.cfg["features"] or LEGACY_FEATURES
        return n_outputs(self.cfg["entity_vector_length"], features, len(self.cfg.get("entity_types") or []))

    def _has_weights(self) -> bool:
        return self.model.get_ref("projection").has_param("W") is True

    # -- candidates and scores ----------------------------------------------------------
    def _doc_candidates(self, mentions: List[Span]) -> List[List[Candidate]]:
        """Candidates of one document's mentions: together when the generator can (mention
        expansion needs the other mentions), else one by one."""
        kb = self._require_kb()
        for_doc = getattr(self.candidate_generator, "for_doc", None)
        if for_doc is not None:
            return for_doc(kb, mentions)
        return [self.candidate_generator(kb, mention) for mention in mentions]

    def _label_index(self, label: str) -> int:
        labels = self.cfg.get("mention_labels") or []
        return labels.index(label) if label in labels else 0

    def _feature_params(self) -> Tuple[numpy.ndarray, Optional[numpy.ndarray]]:
        """The effective feature weights W and label x type table T: the parameters times
        `feature_scale`."""
        weights = self.model.get_ref("feature_weights")
        scale = self.cfg.get("feature_scale") or 1.0
        W = self.model.ops.to_numpy(weights.get_param("W")) * scale
        T = self.model.ops.to_numpy(weights.get_param("T")) * scale if weights.has_param("T") else None
        return W, T

    def _score_mentions(
        self, outputs: numpy.ndarray, mentions: List[Tuple[List[Candidate], str, str]]
    ) -> Tuple[List[numpy.ndarray], List[MentionFeatures]]:
        """Raw scores (candidates + NIL last) of one document's mentions that have
        candidates, and the feature inputs their gradients need.

        outputs (ndarray): The mention encoder's rows for these mentions.
        mentions (List[Tuple[List[Candidate], str, str]]): (candidates, label, key) each.
        """
        features = self.cfg["features"] or LEGACY_FEATURES
        vectors = self._entity_vectors()
        inputs = [
            mention_features(vectors, self.entity_table, features, candidates, self._label_index(label), key)
            for candidates, label, key in mentions
        ]
        W, T = self._feature_params()
        return score_document(inputs, outputs, W, T, features, self.cfg["entity_vector_length"]), inputs

    def _entity_vectors(self) -> EntityVectors:
        """The current KB's vectors as cached rows (a new cache when the KB was replaced)."""
        kb = self._require_kb()
        if self._vectors is None or self._vectors.kb is not kb:
            self._vectors = EntityVectors(kb, self.cfg["entity_vector_length"])
        return self._vectors

    def _mentions(self, doc: Doc) -> List[Tuple[int, int]]:
        return [(ent.start, ent.end) for ent in doc.ents]

    def predict(self, docs: Iterable[Doc]) -> List[List[LinkScores]]:
        """Probabilities of every candidate and of NIL for each entity; annotates nothing.

        docs (Iterable[Doc]): Docs with entities.
        RETURNS (List[List[LinkScores]]): Per doc, per entity.
        """
        before_torch_runs()  # threads in nlp.pipe(n_process=N) workers: see threads.py
        docs = list(docs)
        self._require_kb()
        results: List[List[LinkScores]] = [[] for _ in docs]
        with_ents = [i for i, doc in enumerate(docs) if len(doc.ents)]
        if not with_ents:
            return results
        batch = [docs[i] for i in with_ents]
        check_upstream_ran(self.model, batch, self.name)
        outputs = self.model.ops.to_numpy(
            self.model.predict((batch, [self._mentions(doc) for doc in batch]))
        )
        row = 0
        for i, doc in zip(with_ents, batch):
            ents = list(doc.ents)
            all_candidates = self._doc_candidates(ents)
            linkable = [j for j, candidates in enumerate(all_candidates) if candidates]
            raws, _ = self._score_mentions(
                outputs[[row + j for j in linkable]],
                [(all_candidates[j], ents[j].label_, normalize_alias(ents[j].text)) for j in linkable],
            )
            by_mention = dict(zip(linkable, raws))
            temperature = float(self.cfg.get("temperature") or 1.0)
            for j, candidates in enumerate(all_candidates):
                if j in by_mention:
                    probs = _softmax(by_mention[j] / temperature)
                    results[i].append(LinkScores([c.entity for c in candidates], probs[:-1], float(probs[-1])))
                else:
                    results[i].append(LinkScores([], numpy.zeros((0,)), 1.0))
            row += len(ents)
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
        # A listener of a shared transformer must see the whole batch the transformer ran on;
        # an embedded transformer runs on the examples that have gold mentions only.
        listens = is_listener(self.model.get_ref("tok2vec"))
        batch = []
        for eg in examples:
            mentions = self._gold_mentions(eg)
            if mentions or listens:
                batch.append((eg, mentions))
        if not any(mentions for _, mentions in batch):
            return losses
        set_dropout_rate(self.model, drop)
        docs = [eg.predicted for eg, _ in batch]
        spans = [[(m.start, m.end) for m in mentions] for _, mentions in batch]
        outputs, backprop = self.model.begin_update((docs, spans))
        loss, d_outputs, d_weights, per_example, per_mention, d_types = self._loss(batch, self.model.ops.to_numpy(outputs))
        if not self.guard.ok(loss, [d_outputs, d_weights] + ([d_types] if d_types is not None else [])):
            return losses
        backprop(self.model.ops.asarray2f(d_outputs))
        feature_weights = self.model.get_ref("feature_weights")
        # d(loss)/d(parameter) = scale * d(loss)/d(effective weight)
        scale = self.cfg.get("feature_scale") or 1.0
        feature_weights.inc_grad("W", self.model.ops.asarray1f(d_weights * scale))
        if d_types is not None:
            feature_weights.inc_grad("T", self.model.ops.asarray2f(d_types * scale))
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        scored = [i for i, (_, mentions) in enumerate(batch) if mentions]
        self.loss_recorder.record([batch[i][0] for i in scored], per_example[scored])
        # each mention's loss on its tokens: the reader's span units (entity spans) get it
        token_losses = mention_token_losses(batch, per_mention)
        self.loss_recorder.record_tokens([batch[i][0] for i in scored], [token_losses[i] for i in scored])
        return losses

    def _gold_mentions(self, eg: Example, keep_unreachable: bool = False) -> List[GoldMention]:
        """The trainable gold mentions: those with a KB id whose gold entity is among the
        candidates, or whose gold id is NIL (with `keep_unreachable`, also those whose gold
        entity is not among the candidates, uncounted)."""
        kb = self._require_kb()
        spans, golds = [], []
        for ent in eg.reference.ents:
            gold = ent.kb_id_
            if not gold:
                continue
            span = eg.predicted.char_span(ent.start_char, ent.end_char, label=ent.label_, alignment_mode="contract")
            if span is None or len(span) == 0:
                continue
            if gold != NIL and not kb.contains_entity(gold):
                # Not in the KB: for this KB the right answer is NIL.
                self._note_unknown_gold(gold)
                gold = NIL
            spans.append(span)
            golds.append(gold)
        mentions = []
        for span, gold, candidates in zip(spans, golds, self._doc_candidates(spans)):
            if gold != NIL and gold not in {c.entity for c in candidates} and not keep_unreachable:
                # The linker cannot learn a link its candidates do not offer.
                self.skipped_mentions += 1
                continue
            mentions.append(GoldMention(span.start, span.end, gold, candidates, span.label_, normalize_alias(span.text)))
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
        self, batch: List[Tuple[Example, List[GoldMention]]], outputs: numpy.ndarray
    ) -> Tuple[float, numpy.ndarray, numpy.ndarray, numpy.ndarray, List[List[float]], Optional[numpy.ndarray]]:
        """`get_loss`, plus the loss of every mention of every example and the gradient of
        the label x type table (None when the model has none).

        Coherence is a feature computed from a first pass over the document; the gradient
        does not flow through that pass (it is the context, taken as given)."""
        length = self.cfg["entity_vector_length"]
        context_types = "context_type" in (self.cfg["features"] or LEGACY_FEATURES)
        W, T = self._feature_params()
        d_outputs = numpy.zeros_like(outputs)
        d_weights = numpy.zeros_like(W)
        d_types = numpy.zeros_like(T) if T is not None else None
        total, per_example, per_mention, row = 0.0, [], [], 0
        n_mentions = sum(len(m) for _, m in batch)
        for _, mentions in batch:
            raws, inputs = self._score_mentions(
                outputs[row : row + len(mentions)], [(m.candidates, m.label, m.key) for m in mentions]
            )
            example_loss = 0.0
            per_mention.append([])
            for mention, raw, m in zip(mentions, raws, inputs):
                entities = [c.entity for c in mention.candidates]
                keep = self._training_subset(raw[:-1], entities, mention.gold)
                probs = _softmax(numpy.append(raw[keep], raw[-1]))
                target = len(keep) if mention.gold == NIL else keep.index(entities.index(mention.gold))
                value = -float(numpy.log(max(probs[target], 1e-12)))
                example_loss += value
                per_mention[-1].append(value)
                grad = probs.copy()
                grad[target] -= 1.0
                grad /= n_mentions
                d_outputs[row, :length] = grad[:-1] @ m.vectors[keep]
                d_outputs[row, length] = grad[-1]
                if context_types:  # each type score is added to its candidates' scores
                    numpy.add.at(d_outputs[row], length + 1 + m.types[keep], grad[:-1])
                d_weights += grad[:-1] @ m.feats[keep]
                if d_types is not None:
                    numpy.add.at(d_types[m.label], m.types[keep], grad[:-1])
                row += 1
            total += example_loss
            per_example.append(example_loss / len(mentions) if mentions else numpy.nan)
        return total, d_outputs, d_weights, numpy.asarray(per_example), per_mention, d_types

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
        spans = [[(m.start, m.end) for m in mentions] for _, mentions in batch]
        check_upstream_ran(self.model, docs, self.name)
        outputs = self.model.ops.to_numpy(self.model.predict((docs, spans)))
        _, _, _, per_example, per_mention, _ = self._loss(batch, outputs)
        return positions, per_example, mention_token_losses(batch, per_mention)

    # -- scoring ------------------------------------------------------------------------
    # -- calibration --------------------------------------------------------------------
    def calibration_outcomes(self, examples: Iterable[Example], unreachable: bool = False) -> List[Tuple[numpy.ndarray, int]]:
        """Per gold mention with candidates that the linker can get right (gold among the
        candidates, or NIL): its raw scores over all candidates + NIL, and the index of the
        gold outcome (the last for NIL).

        examples (Iterable[Example]): Held-out examples with gold entities and ids.
        unreachable (bool): Also the mentions whose gold entity is not among the candidates,
            with index -1 (always wrong unless NIL is chosen; they count for the threshold).
        RETURNS (List[Tuple[ndarray, int]]): The outcomes.
        """
        examples = list(examples)
        outcomes = []
        for start in range(0, len(examples), 16):
            batch = [(eg, m) for eg in examples[start : start + 16]
                     for m in [self._gold_mentions(eg, keep_unreachable=True)] if m]
            if not batch:
                continue
            spans = [[(m.start, m.end) for m in mentions] for _, mentions in batch]
            check_upstream_ran(self.model, [eg.predicted for eg, _ in batch], self.name)
            outputs = self.model.ops.to_numpy(self.model.predict(([eg.predicted for eg, _ in batch], spans)))
            row = 0
            for _, mentions in batch:
                raws, _ = self._score_mentions(outputs[row : row + len(mentions)], [(m.candidates, m.label, m.key) for m in mentions])
                for mention, raw in zip(mentions, raws):
                    entities = [c.entity for c in mention.candidates]
                    if not entities:  # NIL with probability 1 at any temperature
                        continue
                    if mention.gold == NIL:
                        gold = len(entities)
                    elif mention.gold in entities:
                        gold = entities.index(mention.gold)
                    elif unreachable:
                        gold = -1
                    else:
                        continue
                    outcomes.append((raw, gold))
                row += len(mentions)
        return outcomes

    def calibrate(self, examples: Iterable[Example], choose_threshold: bool = False) -> Dict[str, Any]:
        """Fit the temperature of the link probabilities on held-out examples (the held-out
        NLL of the gold outcome) and keep it in cfg, saved with the pipeline; optionally
        choose the NIL `threshold` that maximizes the held-out micro F (NIL as negative).

        examples (Iterable[Example]): Held-out examples with gold entities and ids.
        choose_threshold (bool): Also set `self.threshold` (a config setting: whoever saves
            the pipeline must write it to the config, as `calibrate_pipeline` does).
        RETURNS (Dict[str, Any]): temperature, mentions, the ECE of the chosen outcome's
            probability (`kb_score`) before and after, and the threshold with its micro F.
        """
        everything = self.calibration_outcomes(examples, unreachable=True)
        outcomes = [(raw, gold) for raw, gold in everything if gold >= 0]
        before = self._chosen_ece(outcomes, 1.0, self.threshold)
        temperature = fit_temperature(lambda T: link_nll(outcomes, T)) if outcomes else 1.0
        self.cfg["temperature"] = temperature
        result = {"temperature": temperature, "mentions": len(outcomes), "ece_before": before}
        if choose_threshold:
            grid = [None] + [round(t, 2) for t in numpy.arange(0.05, 0.96, 0.05)]
            scored = [(link_micro_f(everything, temperature, t), t) for t in grid]
            best_f = max(f for f, _ in scored)
            # the lowest threshold that reaches the best F (None first): reject no more than needed
            self.threshold = next(t for f, t in scored if f == best_f)
            result.update({"threshold": self.threshold, "heldout_micro_f": best_f})
        result["ece_after"] = self._chosen_ece(outcomes, temperature, self.threshold)
        return result

    def _chosen_ece(self, outcomes: List[Tuple[numpy.ndarray, int]], temperature: float, threshold: Optional[float]) -> float:
        """ECE of the probability of the outcome `set_annotations` would choose."""
        chosen = [(chosen_outcome(raw, temperature, threshold), gold) for raw, gold in outcomes]
        return expected_calibration_error([p for (_, p), _ in chosen], [c == gold for (c, _), gold in chosen])

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
            "entity_table": lambda p: util.srsly.write_json(p, self.entity_table.to_dict()),
            "model": lambda p: self.model.to_disk(p),
        }
        with fp32_weights(self.model):  # a quantized transformer is saved as its fp32 original
            util.to_disk(path, serialize, exclude)

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        """The cfg, entity table and weights (like spaCy's pipes, not the KB: `set_kb`)."""
        serialize = {
            "cfg": lambda: util.srsly.json_dumps(self.cfg),
            "vocab": lambda: self.vocab.to_bytes(exclude=exclude),
            "entity_table": lambda: util.srsly.json_dumps(self.entity_table.to_dict()),
            "model": self.model.to_bytes,
        }
        with fp32_weights(self.model):
            return util.to_bytes(serialize, exclude)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "RsftEntityLinker":
        def load_model(b):
            self.model.set_dim("nO", self._n_outputs(), force=True)
            self._set_feature_dims()
            self.model.from_bytes(b)

        deserialize = {
            "cfg": lambda b: self._load_cfg(util.srsly.json_loads(b)),
            "vocab": lambda b: self.vocab.from_bytes(b, exclude=exclude),
            "entity_table": lambda b: setattr(self, "entity_table", EntityTable.from_dict(util.srsly.json_loads(b))),
            "model": load_model,
        }
        util.from_bytes(bytes_data, deserialize, exclude)
        if self.quantize is not None:
            quantize_model(self.model, self.name, self.quantize)
        return self

    def _load_cfg(self, saved: Dict[str, Any]) -> None:
        self.cfg.update(saved)
        if saved.get("features") is None:  # trained before features were configurable
            self.cfg["features"] = list(LEGACY_FEATURES)
        if saved.get("feature_scale") is None:
            self.cfg["feature_scale"] = 1.0
        # A trained pipeline keeps its features: its weights were trained for them.
        self.features = list(self.cfg["features"])
        self.feature_scale = float(self.cfg["feature_scale"])

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "RsftEntityLinker":
        path = util.ensure_path(path)

        def load_cfg(p):
            self._load_cfg(util.srsly.read_json(p))

        def load_kb(p):
            kb = InMemoryLookupKB(self.vocab, entity_vector_length=self.cfg["entity_vector_length"])
            try:
                kb.from_disk(p)
            except Exception as err:
                raise ValueError(Errors.E204.format(name=self.name, path=p, err=err)) from None
            self._check_vector_length(kb, str(p))
            self.kb = kb

        def load_table(p):
            self.entity_table = EntityTable.from_dict(util.srsly.read_json(p))

        def load_model(p):
            self.model.set_dim("nO", self._n_outputs(), force=True)
            self._set_feature_dims()
            try:
                model_from_file(self.model, p)
            except (AttributeError, ValueError) as err:
                raise ValueError(Errors.E205.format(name=self.name, path=p, err=err)) from None

        deserialize = {"cfg": load_cfg, "kb": load_kb, "entity_table": load_table, "model": load_model}
        if not (path / "entity_table").exists():  # saved before the table existed
            deserialize.pop("entity_table")
        util.from_disk(path, deserialize, exclude)
        if self.quantize is not None:
            quantize_model(self.model, self.name, self.quantize)
        return self
