"""Small helpers shared by the components and the reader."""
import ctypes
from typing import Optional

from spacy.training import Example

# Key under which the rejection-sampling reader stores each example's stable identity (its
# 0-based position in the corpus) in `Doc.user_data` of both the reference and the
# predicted doc, so a loss recorded in epoch k is found again in epoch k+1.
EXAMPLE_ID_KEY = "spacy_rsft.example_id"


def get_example_id(example: Example) -> Optional[int]:
    """The reader-assigned identity of an example, or None for untagged examples.

    example (Example): A training example.
    RETURNS (Optional[int]): The example's position in its corpus.
    """
    value = example.reference.user_data.get(EXAMPLE_ID_KEY)
    if value is None:
        value = example.predicted.user_data.get(EXAMPLE_ID_KEY)
    return None if value is None else int(value)


def set_example_id(example: Example, example_id: int) -> None:
    """Tag an example (both of its docs) with its identity.

    example (Example): A training example.
    example_id (int): Its position in the corpus.
    """
    example.reference.user_data[EXAMPLE_ID_KEY] = example_id
    example.predicted.user_data[EXAMPLE_ID_KEY] = example_id


def release_free_memory() -> None:
    """Hand the heap's free pages back to the OS (glibc's `malloc_trim`).

    glibc keeps what a process frees for reuse, and transformer batches of other lengths
    leave freed blocks of other sizes behind that later batches cannot reuse whole: without
    this, resident memory creeps up over a long training run or stream. Costs a few tens of
    milliseconds on a 2 GB heap, plus the page faults of memory used again afterwards.
    Does nothing where the C library is not glibc.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
