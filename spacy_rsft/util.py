"""Small helpers shared by the components and the reader."""
import ctypes
import os
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


# glibc's mallopt parameter, and the threshold training sets (see map_large_blocks).
M_MMAP_THRESHOLD = -3
TRAINING_MMAP_THRESHOLD = 1 << 20
_large_blocks_mapped = False


def map_large_blocks(threshold: int = TRAINING_MMAP_THRESHOLD) -> bool:
    """Have glibc map every block of `threshold` bytes or more on its own (and unmap it when
    freed), once per process; called by the rsft components when they first train.

    glibc's default threshold adapts upwards to the largest block freed so far (up to 32 MB),
    which puts nearly every activation and gradient of a transformer update on the heap.
    Batches of other lengths then leave freed blocks behind that later ones cannot reuse
    whole, and glibc keeps them: over 960 NoiseBench updates the heap's free-but-kept bytes
    grew from 0.4 to 2.4 GB while the bytes in use stayed near 0.45 GB. With 1 MB, 240 updates
    peaked at 1.75 GB instead of 2.64, for 1.01x the time per update
    (project/benchmarks/results/full/train_memory_setting_*.json, train_memory_mmap_ab.json).
    Results do not change: only where memory comes from.

    Does nothing where the C library is not glibc, or where the user set the threshold
    (MALLOC_MMAP_THRESHOLD_ or GLIBC_TUNABLES's glibc.malloc.mmap_threshold).
    RETURNS (bool): Whether the threshold was set by this call.
    """
    global _large_blocks_mapped
    if _large_blocks_mapped:
        return False
    _large_blocks_mapped = True
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "mmap_threshold" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    return set_mmap_threshold(threshold)


def set_mmap_threshold(size: int) -> bool:
    """Fix glibc's mmap threshold at `size` bytes (which also ends its adaptive raising).
    RETURNS (bool): Whether glibc took it (False where the C library is not glibc)."""
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, size))
    except (OSError, AttributeError):
        return False
