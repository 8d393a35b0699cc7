"""Torch threads in the worker processes of `nlp.pipe(n_process=N)`.

A process forked after torch has run a parallel region hangs at its first parallel region
(the OpenMP thread pool does not survive a fork; spaCy #6662), and spawned workers each
start as many threads as the machine has cores, so N of them oversubscribe it. Workers of
the rsft components therefore run torch at one thread each, the setting PyTorch advises for
multi-process inference: set `n_process` to the number of cores. A spawned worker keeps
the thread count of an explicit `OMP_NUM_THREADS`; a forked one cannot (more than one
thread is what hangs).
"""
import multiprocessing
import os

import torch

_worker_checked = False


def _one_thread_after_fork() -> None:
    torch.set_num_threads(1)


def use_one_thread_in_worker_process() -> None:
    """Run torch at one thread if this is a multiprocessing worker (spawned or forked),
    unless OMP_NUM_THREADS says otherwise; checked once per process."""
    global _worker_checked
    if _worker_checked:
        return
    _worker_checked = True
    if multiprocessing.parent_process() is not None and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)


# in the child, before anything else runs there; subprocess's fork-exec does not call it
os.register_at_fork(after_in_child=_one_thread_after_fork)
