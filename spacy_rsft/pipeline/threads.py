"""Torch threads in the worker processes of `nlp.pipe(n_process=N)`.

A process forked after torch has run with several threads hangs at its first parallel
region (the OpenMP thread pool does not survive a fork; spaCy #6662), and spawned workers
each start as many threads as the machine has cores, so N of them oversubscribe it. spaCy's
`nlp.pipe` workers therefore run the rsft components' torch at one thread each, the setting
PyTorch advises for multi-process inference: set `n_process` to the number of cores.

- Forked children of a process in which an rsft component has run torch get one thread
  at once (more is what hangs), whatever forked them; a process that only loaded a
  pipeline (a pre-forking server) forks with the threads untouched.
- spaCy's worker processes (any start method) get one thread at their first prediction,
  unless OMP_NUM_THREADS is set (then torch's own reading of it stands).
"""
import multiprocessing
import os

import torch

# torch has run an rsft component's forward or update in this process
_torch_ran_here = False
# this process has been checked for being a spaCy worker
_worker_checked = False


def _is_spacy_worker() -> bool:
    # spaCy starts its workers as multiprocessing.Process(target=spacy.language._apply_pipes)
    target = getattr(multiprocessing.current_process(), "_target", None)
    return getattr(target, "__name__", "") == "_apply_pipes" and getattr(target, "__module__", "") == "spacy.language"


def before_torch_runs() -> None:
    """Call before an rsft component runs torch: marks the process (a later fork then
    needs one thread) and, the first time in a spaCy worker, sets one thread."""
    global _torch_ran_here, _worker_checked
    _torch_ran_here = True
    if _worker_checked:
        return
    _worker_checked = True
    if _is_spacy_worker() and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)


def _after_fork_in_child() -> None:
    global _worker_checked
    _worker_checked = False  # a forked child may be a spaCy worker: check it there
    if _torch_ran_here:
        torch.set_num_threads(1)


# runs in the child of every os.fork (multiprocessing's fork start method; subprocess only
# with a preexec_fn), before anything else runs there
os.register_at_fork(after_in_child=_after_fork_in_child)
