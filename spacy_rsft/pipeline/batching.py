"""Length-grouped inference batches, as spacy-transformers' own `transformer` component
does: a transformer batch is padded to its longest sequence, so `nlp.pipe`'s batches are
split into sub-batches of docs of similar length, at most `max_batch_items` tokens
(longest doc x docs) each. Padding then costs little and results do not change."""
from typing import Iterable, Iterator, List, Sequence

from spacy.tokens import Doc
from spacy.util import minibatch
from spacy_transformers.util import batch_by_length

from ..errors import Errors
from ..util import map_large_blocks, release_free_memory
from .threads import before_torch_runs
from .torch_update import use_in_place_updates

# spacy-transformers' default for its `transformer` component (128 x 32).
MAX_BATCH_ITEMS = 4096
# Training batches: at most this many length groups (forward passes) per update.
MAX_TRAIN_GROUPS = 4


def pipe_by_length(component, stream: Iterable[Doc], batch_size: int) -> Iterator[Doc]:
    """`TrainablePipe.pipe`, with each batch predicted in length-grouped sub-batches.

    component (TrainablePipe): Has `predict`, `set_annotations` and `cfg`.
    stream (Iterable[Doc]): The docs.
    batch_size (int): Docs buffered at a time (order is kept).
    YIELDS (Doc): The annotated docs, in input order.
    """
    # also in predict; here it runs before this generator pulls its first docs, so before
    # an upstream shared transformer's first batch in a spaCy worker
    before_torch_runs()
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


def check_release_memory(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(Errors.E008.format(name=name, setting="release_memory", value=value, options="0 (off) or a number of updates >= 1"))
    return value


class LengthGroupedPipe:
    """Mixin for the rsft components: `pipe` predicts in length-grouped sub-batches, and
    memory the allocator keeps after an update or a `pipe` stream goes back to the OS.

    The component sets `self.release_memory` (see `check_release_memory`): every that many
    updates, and at the end of every `pipe` stream (an evaluation) once the component has
    been updated in this process, glibc hands its free pages back; 0 never does. A process
    that only predicts never trims: a trim took 7 ms (up to 14) after an 8-doc `pipe` call
    on the trained ner+el pipeline, which a server calling `nlp.pipe` on a few docs at a
    time would pay on every call (project/benchmarks/scripts/trim_cost.py).
    Independently, training has glibc map blocks of 1 MB or more on their own
    (`map_large_blocks`), which keeps most of that memory from piling up in the first place
    at almost no cost in time; `release_memory` trims what is left.
    """

    release_memory: int = 0
    _updates_since_release: int = 0
    _updated_in_process: bool = False

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        """Annotate a stream of docs; each batch runs in sub-batches of similar length
        (at most `cfg["max_batch_items"]` tokens), as spacy-transformers does.

        stream (Iterable[Doc]): The docs.
        batch_size (int): Docs buffered at a time.
        YIELDS (Doc): The docs, annotated, in order.
        """
        yield from pipe_by_length(self, stream, batch_size)
        if self.release_memory and self._updated_in_process:
            release_free_memory()

    def finish_update(self, sgd) -> None:
        """Apply the gradients (TrainablePipe's), then release freed memory every
        `release_memory` updates. The first update of the process also has glibc map large
        blocks on their own (`map_large_blocks`), so freed activations do not pile up in
        the heap. The transformer's parameters are updated in place (`use_in_place_updates`:
        thinc's own update leaves a chain of tensor objects behind every step)."""
        before_torch_runs()
        use_in_place_updates(self.model)
        super().finish_update(sgd)
        map_large_blocks()
        self._updated_in_process = True
        self._updates_since_release += 1
        if self.release_memory and self._updates_since_release >= self.release_memory:
            release_free_memory()
            self._updates_since_release = 0


def padding_groups(lengths: Sequence[int], max_groups: int = 4, overhead: int = 128) -> List[List[int]]:
    """Split a training batch into at most `max_groups` groups of similar length, chosen to
    minimize the padded tokens the transformer computes, plus `overhead` tokens per extra
    forward pass (its fixed cost).

    A transformer batch is padded to its longest sequence: a 1,000-word batch of ~70
    sentences is padded to its longest sentence and computes about twice the tokens a
    batch of 10-sentence documents does. Groups are contiguous in length order, found by
    dynamic programming (n is a batch, so n^2 * max_groups steps are cheap).

    lengths (Sequence[int]): The length of each doc (tokens).
    max_groups (int): The most groups (forward passes) per batch.
    overhead (int): Token-equivalent cost of one more forward pass.
    RETURNS (List[List[int]]): Indices into `lengths`, one list per group, in input order
        within each group.
    """
    n = len(lengths)
    if n <= 1 or max_groups <= 1:
        return [list(range(n))]
    order = sorted(range(n), key=lambda i: lengths[i])
    sorted_len = [lengths[i] for i in order]
    # cost[k][j]: least padded size of the first j docs (in length order) in k groups
    inf = float("inf")
    cost = [[inf] * (n + 1) for _ in range(max_groups + 1)]
    split = [[0] * (n + 1) for _ in range(max_groups + 1)]
    cost[0][0] = 0.0
    for k in range(1, max_groups + 1):
        for j in range(1, n + 1):
            for i in range(k - 1, j):
                if cost[k - 1][i] == inf:
                    continue
                # docs i..j-1 in one group, padded to the longest (the last, sorted)
                value = cost[k - 1][i] + (j - i) * sorted_len[j - 1] + overhead
                if value < cost[k][j]:
                    cost[k][j], split[k][j] = value, i
    best_k = min(range(1, max_groups + 1), key=lambda k: cost[k][n])
    groups, j = [], n
    for k in range(best_k, 0, -1):
        i = split[k][j]
        groups.append(sorted(order[i:j]))
        j = i
    return groups[::-1]
