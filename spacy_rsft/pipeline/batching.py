"""Length-grouped inference batches, as spacy-transformers' own `transformer` component
does: a transformer batch is padded to its longest sequence, so `nlp.pipe`'s batches are
split into sub-batches of docs of similar length, at most `max_batch_items` tokens
(longest doc x docs) each. Padding then costs little and results do not change."""
from typing import Iterable, Iterator

from spacy.tokens import Doc
from spacy.util import minibatch
from spacy_transformers.util import batch_by_length

# spacy-transformers' default for its `transformer` component (128 x 32).
MAX_BATCH_ITEMS = 4096


def pipe_by_length(component, stream: Iterable[Doc], batch_size: int) -> Iterator[Doc]:
    """`TrainablePipe.pipe`, with each batch predicted in length-grouped sub-batches.

    component (TrainablePipe): Has `predict`, `set_annotations` and `cfg`.
    stream (Iterable[Doc]): The docs.
    batch_size (int): Docs buffered at a time (order is kept).
    YIELDS (Doc): The annotated docs, in input order.
    """
    error_handler = component.get_error_handler()
    max_items = component.cfg.get("max_batch_items", MAX_BATCH_ITEMS)
    for outer in minibatch(stream, size=batch_size):
        outer = list(outer)
        try:
            for indices in batch_by_length(outer, max_items):
                docs = [outer[i] for i in indices]
                component.set_annotations(docs, component.predict(docs))
            yield from outer
        except Exception as e:
            error_handler(component.name, component, outer, e)


class LengthGroupedPipe:
    """Mixin for a TrainablePipe: `pipe` predicts in length-grouped sub-batches."""

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        """Annotate a stream of docs; each batch runs in sub-batches of similar length
        (at most `cfg["max_batch_items"]` tokens), as spacy-transformers does.

        stream (Iterable[Doc]): The docs.
        batch_size (int): Docs buffered at a time.
        YIELDS (Doc): The docs, annotated, in order.
        """
        return pipe_by_length(self, stream, batch_size)
