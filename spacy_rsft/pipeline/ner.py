"""`rsft_ner`: a transformer-backed named-entity recognizer with entity confidences.

Per token, the model scores BILUO tags; a constrained Viterbi decoder picks the best valid
tag sequence, so `doc.ents` is always a valid, non-overlapping entity set. Every entity
also goes into a span group (default key "rsft_ner") whose `attrs["scores"]` holds its
confidence, following spaCy's spancat convention.

The per-example training loss (mean token cross-entropy) is recorded during `update`, at no
extra forward pass, for the rejection-sampling reader (`spacy-rsft.RejectionSampledCorpus.v1`).
"""
import warnings
from pathlib import Path
from itertools import islice
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Linear, Model, set_dropout_rate
from thinc.types import Floats2d

from ..calibration import entity_bce, entity_confidence, entity_confidences, expected_calibration_error, fit_temperature
from ..errors import Errors, Warnings
from ..models.encoder import encoder_config
from ..models.hf_loading import model_from_file
from ..models.tagger import check_upstream_ran, is_listener
from ..ty import unmasked_reference
from .batching import MAX_BATCH_ITEMS, MAX_TRAIN_GROUPS, LengthGroupedPipe, check_release_memory, padding_groups
from .cpu_ops import use_torch_gemm
from .guard import NonFiniteGuard, discard_gradients
from .quantization import check_mode as check_quantize_mode
from .quantization import check_trainable, fp32_weights, quantize_model
from .recording import ExampleLossRecorder, reference_token_losses
from .threads import before_torch_runs
from .biluo import constrained_viterbi_batch, spans_from_tags, tag_names, transition_mask

DEFAULT_NER_MODEL = """
[model]
@architectures = "spacy-rsft.TransformerTagger.v1"
hidden_width = 256
dropout = 0.1

[model.case_features]
@architectures = "spacy.MultiHashEmbed.v2"
width = 64
attrs = ["NORM", "PREFIX", "SUFFIX", "SHAPE"]
rows = [5000, 1000, 2500, 2500]
include_static_vectors = false
"""
DEFAULT_NER_CONFIG = Config().from_str(DEFAULT_NER_MODEL + encoder_config("model.tok2vec"))


@Language.factory(
    "rsft_ner",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type", "doc.spans"],
    default_config={
        "model": DEFAULT_NER_CONFIG["model"],
        "spans_key": "rsft_ner",
        "overwrite_ents": False,
        "unknown_labels": "error",
        "quantize": None,
        "release_memory": 20,
        "scorer": {"@scorers": "spacy-rsft.ner_scorer.v1"},
    },
    default_score_weights={
        "ents_f": 1.0,
        "ents_p": 0.0,
        "ents_r": 0.0,
        "ents_per_type": None,
        "ents_ece": None,
    },
)
def make_rsft_ner(
    nlp: Language,
    name: str,
    model: Model[List[Doc], List[Floats2d]],
    spans_key: str,
    overwrite_ents: bool,
    unknown_labels: str,
    quantize: Optional[str],
    release_memory: int,
    scorer: Optional[Callable],
) -> "RsftEntityRecognizer":
    """Create an `rsft_ner` component.

    model (Model[List[Doc], List[Floats2d]]): Scores BILUO tags per token.
    spans_key (str): Key of the span group that holds every predicted entity with its
        confidence in `attrs["scores"]`.
    overwrite_ents (bool): What to do when `doc.ents` already has entities (from an
        earlier `ner` or `entity_ruler`): False keeps them and adds only the predicted
        entities that do not overlap them; True replaces them all.
    unknown_labels (str): Gold entities with a label the component was not initialized
        with: "error" stops training with a message; "skip" leaves their tokens out of
        the loss, warns once and counts them (in the reader's stats).
    quantize (Optional[str]): "int8": when the trained pipeline is loaded, run the
        transformer with int8 dynamic quantization of its linear layers, the few outlier
        input columns of the layers that have them in fp32 (CPU inference only; see
        `spacy_rsft.pipeline.quantization`); "int8-all": every column in int8, a little
        faster and less accurate. null (default): fp32.
    release_memory (int): Every this many updates, and after every `pipe` stream of a
        process that trains (an evaluation), hand the memory glibc keeps back to the OS, so
        a long training run's resident memory stays level (see `LengthGroupedPipe`).
        20 (default): level over 480 updates where 0 crept; 1 cost 13-17% slower updates.
        A process that only predicts never trims. 0: never.
    scorer (Optional[Callable]): Scoring method.
    """
    return RsftEntityRecognizer(
        nlp.vocab,
        model,
        name,
        spans_key=spans_key,
        overwrite_ents=overwrite_ents,
        unknown_labels=unknown_labels,
        quantize=quantize,
        release_memory=release_memory,
        scorer=scorer,
    )


def log_softmax(logits: numpy.ndarray) -> numpy.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - numpy.log(numpy.exp(shifted).sum(axis=-1, keepdims=True))


class RsftEntityRecognizer(LengthGroupedPipe, TrainablePipe):
    """Transformer-backed NER with constrained BILUO decoding and entity confidences."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model[List[Doc], List[Floats2d]],
        name: str = "rsft_ner",
        *,
        spans_key: str = "rsft_ner",
        overwrite_ents: bool = False,
        unknown_labels: str = "error",
        quantize: Optional[str] = None,
        release_memory: int = 20,
        scorer: Optional[Callable] = None,
    ) -> None:
        """Initialize the component.

        vocab (Vocab): The shared vocabulary.
        model (Model[List[Doc], List[Floats2d]]): Scores BILUO tags per token.
        name (str): The component instance name.
        spans_key (str): Span group key for the scored entities.
        overwrite_ents (bool): Replace existing `doc.ents` (True) or keep them (False).
        unknown_labels (str): "error" or "skip" for gold labels the component lacks.
        quantize (Optional[str]): "int8" or "int8-all" quantizes the transformer when
            the trained component is loaded (CPU inference); None keeps fp32.
        release_memory (int): Release freed memory every this many updates (0: never).
        scorer (Optional[Callable]): Scoring method.
        """
        check_quantize_mode(name, quantize)
        self.release_memory = check_release_memory(name, release_memory)
        if unknown_labels not in ("error", "skip"):
            raise ValueError(Errors.E008.format(name=name, setting="unknown_labels", value=unknown_labels, options="'error', 'skip'"))
        self.vocab = vocab
        # the dense layers' matrix products on torch's BLAS (see cpu_ops.py)
        self.model = use_torch_gemm(model)
        self.name = name
        self.scorer = scorer
        self.unknown_labels = unknown_labels
        self.unknown_label_tokens = 0
        self.quantize = quantize
        self.cfg: Dict = {
            "labels": [],
            "spans_key": spans_key,
            "overwrite_ents": bool(overwrite_ents),
            # Inference sub-batch size in tokens (see `pipe`); saved with the pipeline.
            "max_batch_items": MAX_BATCH_ITEMS,
            # Forward passes a training batch may be split into by length (see `update`).
            "max_train_groups": MAX_TRAIN_GROUPS,
            # Of the entity confidences (see `calibrate`); 1.0 until calibrated.
            "temperature": 1.0,
        }
        # Per-example losses of the latest updates, keyed by the reader's example id;
        # collected by the rejection-sampling reader with `pop_recorded_losses`.
        self.loss_recorder = ExampleLossRecorder()
        self.misaligned_tokens = 0
        # A non-finite loss never reaches the weights: the step is skipped and counted.
        self.guard = NonFiniteGuard(name)

    # -- labels and tags ------------------------------------------------------------
    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> Tuple[str, ...]:
        """The labels, as `spacy init labels` writes them; `initialize(labels=...)` (through
        `[initialize.components.rsft_ner.labels]`, `spacy.read_labels.v1`) reads them back.

        RETURNS (Tuple[str, ...]): The entity labels.
        """
        return self.labels

    @property
    def tags(self) -> List[str]:
        return tag_names(self.labels)

    @property
    def spans_key(self) -> str:
        return self.cfg["spans_key"]

    def add_label(self, label: str) -> int:
        """Add an entity label before initialization.

        label (str): The label.
        RETURNS (int): 0 if the label was already there, else 1.
        """
        if not isinstance(label, str) or not label:
            raise ValueError(Errors.E007.format(name=self.name, label=label))
        if label in self.labels:
            return 0
        if self._output_built():
            raise ValueError(Errors.E006.format(name=self.name, label=label))
        self.cfg["labels"].append(label)
        return 1

    def _output_built(self) -> bool:
        output = self.model.get_ref("output_layer")
        return output.has_dim("nO") is True and output.has_param("W") is True

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Sequence[str]] = None,
    ) -> None:
        """Set the labels (from `labels`, else from the examples' entities) and build the
        model.

        get_examples (Callable[[], Iterable[Example]]): Returns training examples.
        nlp (Optional[Language]): The pipeline.
        labels (Optional[Sequence[str]]): Entity labels, e.g. the file `spacy init labels`
            writes, read with `spacy.read_labels.v1`; the examples are then not read for
            labels.
        """
        validate_get_examples(get_examples, "RsftEntityRecognizer.initialize")
        if labels is None:
            found = {ent.label_ for eg in get_examples() for ent in eg.reference.ents}
            labels = sorted(found)
        for label in labels:
            if not isinstance(label, str) or not label:
                raise ValueError(Errors.E007.format(name=self.name, label=label))
        # Set directly (not via add_label): initialize may rebuild an initialized model.
        self.cfg["labels"] = list(dict.fromkeys(labels))
        if not self.labels:
            raise ValueError(Errors.E005.format(name=self.name))
        output = self.model.get_ref("output_layer")
        if output.has_param("W") is True and output.get_dim("nO") != len(self.tags):
            # Re-initializing with another label set: thinc cannot resize a built layer.
            fresh = use_torch_gemm(Linear(nO=len(self.tags)))
            self.model.replace_node(output, fresh)
            self.model.set_ref("output_layer", fresh)
            output = fresh
        output.set_dim("nO", len(self.tags), force=True)
        doc_sample = [eg.predicted for eg in islice(get_examples(), 10) if len(eg.predicted)]
        if not doc_sample:
            doc_sample = [Doc(self.vocab, words=["x"])]
        self.model.initialize(X=doc_sample)

    # -- prediction -----------------------------------------------------------------
    def predict(self, docs: Iterable[Doc]) -> List[numpy.ndarray]:
        """Tag log-probabilities for each token of each doc; pure, annotates nothing.

        docs (Iterable[Doc]): The docs.
        RETURNS (List[ndarray]): (n_tokens, n_tags) log-probabilities per doc.
        """
        before_torch_runs()  # threads in nlp.pipe(n_process=N) workers: see threads.py
        docs = list(docs)
        non_empty = [doc for doc in docs if len(doc)]
        check_upstream_ran(self.model, non_empty, self.name)
        logits = self.model.predict(non_empty) if non_empty else []
        results: List[numpy.ndarray] = []
        it = iter(logits)
        for doc in docs:
            if len(doc):
                results.append(log_softmax(self.model.ops.to_numpy(next(it))))
            else:
                results.append(numpy.zeros((0, len(self.tags)), dtype="float32"))
        return results

    def set_annotations(self, docs: Iterable[Doc], scores: List[numpy.ndarray]) -> None:
        """Decode the best valid tag sequence and write entities and their confidences.

        docs (Iterable[Doc]): The docs.
        scores (List[ndarray]): Output of `predict`.
        """
        temperature = float(self.cfg.get("temperature") or 1.0)
        for doc, log_probs, (path, entities) in zip(docs, scores, self._decode(scores)):
            spans = [Span(doc, begin, stop, label=label) for begin, stop, label in entities]
            # The probability that every token of the span gets exactly its tag.
            confidences = entity_confidences(log_probs, path, [(b, e) for b, e, _ in entities], temperature)
            doc.spans[self.spans_key] = SpanGroup(doc, name=self.spans_key, spans=spans, attrs={"scores": confidences})
            self._set_ents(doc, spans)

    def _decode(self, scores: List[numpy.ndarray]) -> List[Tuple[numpy.ndarray, List[Tuple[int, int, str]]]]:
        """Per doc: the best valid tag sequence (tag indices) and its entities (start, end,
        label)."""
        tags = self.tags  # a property that builds the list: once, not per token
        if getattr(self, "_mask_tags", None) != tags:  # the mask of the current tag set
            self._mask, self._mask_tags = transition_mask(tags), tags
        paths = constrained_viterbi_batch(scores, *self._mask)
        return [(path, spans_from_tags([tags[i] for i in path])) for path in paths]

    # -- calibration ----------------------------------------------------------------
    def calibration_outcomes(self, examples: Iterable[Example]) -> List[Tuple[numpy.ndarray, numpy.ndarray, bool]]:
        """Per predicted entity of the examples' docs: its tokens' tag log-probabilities,
        their decoded tags, and whether it is right (the same characters and label as a
        gold entity). The inputs of `calibrate`.

        examples (Iterable[Example]): Held-out examples (not the training data).
        RETURNS (List[Tuple[ndarray, ndarray, bool]]): The outcomes.
        """
        examples = list(examples)
        docs = [eg.predicted for eg in examples]
        outcomes = []
        for start in range(0, len(docs), 32):
            batch = examples[start : start + 32]
            scores = self.predict([eg.predicted for eg in batch])
            for eg, log_probs, (path, entities) in zip(batch, scores, self._decode(scores)):
                gold = {(e.start_char, e.end_char, e.label_) for e in eg.reference.ents}
                doc = eg.predicted
                for b, e, label in entities:
                    key = (doc[b].idx, doc[e - 1].idx + len(doc[e - 1]), label)
                    outcomes.append((log_probs[b:e], path[b:e], key in gold))
        return outcomes

    def calibrate(self, examples: Iterable[Example]) -> Dict[str, float]:
        """Fit the temperature of the entity confidences on held-out examples (it does not
        change which entities are predicted) and keep it in cfg, saved with the pipeline.

        examples (Iterable[Example]): Held-out examples with gold entities.
        RETURNS (Dict[str, float]): temperature, entities, ece_before, ece_after.
        """
        outcomes = self.calibration_outcomes(examples)
        right = [r for _, _, r in outcomes]
        before = expected_calibration_error([entity_confidence(lp, t, 1.0) for lp, t, _ in outcomes], right)
        temperature = fit_temperature(lambda T: entity_bce(outcomes, T)) if outcomes else 1.0
        after = expected_calibration_error([entity_confidence(lp, t, temperature) for lp, t, _ in outcomes], right)
        self.cfg["temperature"] = temperature
        return {"temperature": temperature, "entities": len(outcomes), "ece_before": before, "ece_after": after}

    def _set_ents(self, doc: Doc, predicted: List[Span]) -> None:
        if self.cfg["overwrite_ents"] or not doc.ents:
            doc.set_ents(predicted, default="outside")
            return
        taken = set()
        for ent in doc.ents:
            taken.update(range(ent.start, ent.end))
        added = [s for s in predicted if not taken.intersection(range(s.start, s.end))]
        doc.set_ents(list(doc.ents) + added, default="outside")

    # -- training -------------------------------------------------------------------
    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd=None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Learn from a batch of examples and record each example's loss.

        examples (Iterable[Example]): The batch.
        drop (float): Dropout rate.
        sgd (Optional[Optimizer]): The optimizer; no weight update without one.
        losses (Optional[Dict[str, float]]): Accumulated losses, updated in place.
        RETURNS (Dict[str, float]): The losses.
        """
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "RsftEntityRecognizer.update")
        check_trainable(self.model, self.name)
        # A listener of a shared transformer must see the whole batch the transformer ran on,
        # in one pass; an embedded transformer runs on the non-empty docs, by length group.
        listens = is_listener(self.model.get_ref("tok2vec"))
        if not listens:
            examples = [eg for eg in examples if len(eg.predicted)]
        if not any(len(eg.predicted) for eg in examples):
            return losses
        set_dropout_rate(self.model, drop)
        # One forward pass per length group (a transformer batch is padded to its longest
        # sequence); the gradients add up, normalized over the whole batch, and the
        # optimizer steps once: the same update as one pass, with less padding. Each group
        # is backpropagated before the next one's forward pass, so only one group's
        # activations are alive at a time (training memory).
        groups = [list(range(len(examples)))] if listens else padding_groups(
            [len(eg.predicted) for eg in examples], self.cfg.get("max_train_groups", MAX_TRAIN_GROUPS)
        )
        golds = [self._gold_tags(eg) for eg in examples]  # once: they also count skips
        # the labels each token's loss is recorded against: a unit the reader masked is
        # still scored (no gradient), so its loss stays current
        recording = [self._recording_gold(eg, gold) for eg, gold in zip(examples, golds)]
        n_scored = sum(int(mask.sum()) for _, mask in golds)
        done, total = [], 0.0
        for group in groups:
            batch = [examples[i] for i in group]
            logits, backprop = self.model.begin_update([eg.predicted for eg in batch])
            loss, d_logits, per_example, per_token = self._loss(
                batch, logits, n_scored, golds=[golds[i] for i in group], recording=[recording[i] for i in group]
            )
            if not self.guard.finite(loss, [self.model.ops.to_numpy(d) for d in d_logits]):
                # the groups before have put gradients in: none of this batch may count
                discard_gradients(self.model)
                self.guard.skip()
                return losses
            backprop(d_logits)
            del logits, backprop
            done.append((batch, per_example, per_token))
            total += loss
        self.guard.passed()
        for batch, per_example, per_token in done:
            self.loss_recorder.record(batch, per_example)
            self.loss_recorder.record_tokens(batch, per_token)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += total
        return losses

    def from_disk(self, path, *, exclude: Iterable[str] = tuple()) -> "RsftEntityRecognizer":
        """Load the component, with a clear error for a missing or broken file; with
        `quantize` set, quantize its transformer."""
        try:
            # spaCy's own from_disk, but the model read with `model_from_file` (less memory)
            super().from_disk(path, exclude=[*exclude, "model"])
            if "model" not in exclude:
                model_from_file(self.model, Path(path) / "model")
        except (ValueError, KeyError, OSError, TypeError) as err:
            raise ValueError(Errors.E010.format(name=self.name, path=path, err=err)) from None
        return self._after_load()

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "RsftEntityRecognizer":
        super().from_bytes(bytes_data, exclude=exclude)
        return self._after_load()

    def to_disk(self, path, *, exclude: Iterable[str] = tuple()) -> None:
        with fp32_weights(self.model):  # a quantized transformer is saved as its fp32 original
            super().to_disk(path, exclude=exclude)

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        with fp32_weights(self.model):
            return super().to_bytes(exclude=exclude)

    def _after_load(self) -> "RsftEntityRecognizer":
        if self.quantize is not None:
            quantize_model(self.model, self.name, self.quantize)
        return self

    def get_loss(
        self, examples: Iterable[Example], logits: List[Floats2d]
    ) -> Tuple[float, List[Floats2d], numpy.ndarray]:
        """Token-level cross-entropy against the gold BILUO tags.

        Tokens whose gold tag is missing ("-") or not aligned to the predicted tokens are
        left out. The gradient is normalized by the number of scored tokens in the batch.

        examples (Iterable[Example]): The batch.
        logits (List[Floats2d]): Model output, one array per example.
        RETURNS (Tuple[float, List[Floats2d], ndarray]): The summed loss, the gradient per
            example, and each example's mean token loss (NaN when it has no scored token).
        """
        loss, d_logits, per_example, _ = self._loss(list(examples), logits)
        return loss, d_logits, per_example

    def _loss(
        self, examples: List[Example], logits: List[Floats2d], n_scored: Optional[int] = None,
        count_skips: bool = True, golds: Optional[List[Tuple[numpy.ndarray, numpy.ndarray]]] = None,
        recording: Optional[List[Tuple[numpy.ndarray, numpy.ndarray]]] = None,
    ) -> Tuple[float, List[Floats2d], numpy.ndarray, List[numpy.ndarray]]:
        """`get_loss`, plus the loss of every predicted token (NaN where not scored), with
        the gradient normalized by `n_scored` tokens (default: those of these examples).
        `golds`: the examples' `_gold_tags`, when the caller has them already.
        `recording`: the gold tags the per-token losses are taken against (default: `golds`),
        e.g. those of units the reader masked out of the gradient."""
        ops = self.model.ops
        totals, grads, per_example, per_token = [], [], [], []
        counted = 0
        for i, (eg, eg_logits) in enumerate(zip(examples, logits)):
            log_probs = log_softmax(ops.to_numpy(eg_logits))
            gold, mask = golds[i] if golds is not None else self._gold_tags(eg, count_skips=count_skips)
            rows = numpy.arange(len(gold))
            token_loss = -log_probs[rows, gold] * mask
            if recording is not None and recording[i][0] is not gold:
                record_gold, record_mask = recording[i]
                recorded = numpy.where(record_mask > 0, -log_probs[rows, record_gold], numpy.nan)
            else:
                recorded = numpy.where(mask > 0, token_loss, numpy.nan)
            grad = numpy.exp(log_probs)
            grad[rows, gold] -= 1.0
            grad *= mask[:, None]
            n_valid = int(mask.sum())
            counted += n_valid
            totals.append(float(token_loss.sum()))
            per_example.append(totals[-1] / n_valid if n_valid else numpy.nan)
            per_token.append(recorded.astype("float32"))
            grads.append(grad)
        scale = 1.0 / max(counted if n_scored is None else n_scored, 1)
        d_logits = [ops.asarray2f((g * scale).astype("float32")) for g in grads]
        return float(sum(totals)), d_logits, numpy.asarray(per_example, dtype="float64"), per_token

    def _gold_tags(self, example: Example, count_skips: bool = True) -> Tuple[numpy.ndarray, numpy.ndarray]:
        """Gold tag index and mask (1 = scored) of every predicted token. A token is left
        out when its gold annotation is missing (spaCy's "-", e.g. a unit the reader
        masked) or when it is not aligned to the gold tokens (counted and warned about)."""
        index = {tag: i for i, tag in enumerate(self.tags)}
        aligned = example.get_aligned_ner()
        iob = example.get_aligned("ENT_IOB")
        gold = numpy.zeros((len(aligned),), dtype="int64")
        mask = numpy.zeros((len(aligned),), dtype="float32")
        misaligned = 0
        for i, tag in enumerate(aligned):
            if tag is None:
                # ENT_IOB 0: the gold annotation is missing there, which is no misalignment
                misaligned += iob[i] != 0
            elif tag != "-":
                if tag not in index:
                    if count_skips:
                        self._unknown_label(tag.split("-", 1)[-1])
                    continue
                gold[i] = index[tag]
                mask[i] = 1.0
        if not count_skips:
            return gold, mask
        if misaligned and not self.misaligned_tokens:
            warnings.warn(
                Warnings.W001.format(
                    name=self.name, count=misaligned, first=example.reference.text[:60]
                )
            )
        self.misaligned_tokens += misaligned
        return gold, mask

    def _recording_gold(self, example: Example, gold: Tuple[numpy.ndarray, numpy.ndarray]) -> Tuple[numpy.ndarray, numpy.ndarray]:
        """The gold tags to record the example's token losses against: those of its
        unmasked reference when the reader masked units of it, else `gold` itself."""
        original = unmasked_reference(example)
        if original is example.reference:
            return gold
        return self._gold_tags(Example(example.predicted, original), count_skips=False)

    def _unknown_label(self, label: str) -> None:
        if self.unknown_labels == "error":
            raise ValueError(Errors.E004.format(name=self.name, label=label, labels=list(self.labels)))
        if not self.unknown_label_tokens:
            warnings.warn(Warnings.W005.format(name=self.name, label=label))
        self.unknown_label_tokens += 1

    def skip_counts(self) -> Dict[str, int]:
        """What training left out so far, for the reader's stats.

        RETURNS (Dict[str, int]): Counts by reason.
        """
        return {
            "misaligned_gold_tokens": self.misaligned_tokens,
            "unknown_label_tokens": self.unknown_label_tokens,
            "nonfinite_updates": self.guard.skipped,
        }

    # -- per-example losses for the rejection sampler -------------------------------
    def pop_recorded_losses(self) -> Dict[int, float]:
        """Hand over (and forget) the per-example losses recorded since the last call.

        RETURNS (Dict[int, float]): Example id -> mean token loss.
        """
        return self.loss_recorder.pop()

    def pop_recorded_token_losses(self) -> Dict[int, numpy.ndarray]:
        """Hand over (and forget) the per-token losses recorded since the last call, for
        the reader's units finer than the example (sentences, spans).

        RETURNS (Dict[int, ndarray]): Example id -> loss of each reference token (NaN where
            not scored, e.g. masked).
        """
        return self.loss_recorder.pop_tokens()

    def get_token_losses(self, examples: Iterable[Example]) -> List[numpy.ndarray]:
        """Each reference token's loss under the current weights, without a gradient (the
        reader's `fresh` scoring of units). Also annotates the predicted docs.

        examples (Iterable[Example]): The examples.
        RETURNS (List[ndarray]): One loss per reference token of each example.
        """
        examples = list(examples)
        docs = [eg.predicted for eg in examples]
        log_probs = self.predict(docs)
        self.set_annotations(docs, log_probs)
        _, _, _, per_token = self._loss(examples, log_probs, count_skips=False)
        return [reference_token_losses(eg, t) for eg, t in zip(examples, per_token)]

    def get_example_losses(self, examples: Iterable[Example]) -> numpy.ndarray:
        """Each example's loss under the current weights, without a gradient (the
        reader's `fresh` scoring). Also annotates the predicted docs.

        examples (Iterable[Example]): Examples whose predicted docs carry whatever
            earlier components (e.g. a shared transformer) set.
        RETURNS (ndarray): Mean token loss per example (NaN for empty docs).
        """
        examples = list(examples)
        docs = [eg.predicted for eg in examples]
        log_probs = self.predict(docs)
        self.set_annotations(docs, log_probs)
        _, _, per_example = self.get_loss(examples, log_probs)
        return per_example
