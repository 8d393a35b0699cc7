"""Ray Data plumbing shared by `annotate --engine ray` and `build-kb --engine ray`.

Work goes out as small descriptors (a block of an input file, a chunk of entity texts),
each actor of a Ray Data `ActorPoolStrategy` loads the model once, and what comes back is
JSON or plain arrays: Docs never cross a process boundary (pickling a Doc pickles its whole
Vocab).

Two Ray pitfalls are handled here:
- An actor pool that holds every CPU of the cluster hangs Ray Data (ray#44687): the
  driver's reads and the pool's bookkeeping need a CPU. `worker_cpus` shrinks the CPUs each
  actor reserves so that one stays free (the actor still runs as many torch threads as asked).
- Ray Data restarts dead actors and retries their tasks forever by default, so a record
  that kills its worker every time would loop: retries are bounded by `max_retries`.
"""
import logging
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional

from ..errors import Errors, Warnings


@dataclass
class RayOptions:
    """Where and how wide to run."""

    address: Optional[str] = None  # None: start a local Ray instance; "auto" or "ray://host:10001": join a cluster
    workers: int = 2
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_retries: int = 3  # restarts of a dead worker and retries of its task


def require_ray():
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError(Errors.E325) from None
    return ray


@contextmanager
def ray_session(address: Optional[str]) -> Iterator[Any]:
    """Connect to Ray (a cluster at `address`, or a new local instance) unless the caller
    already has, and disconnect at the end only if we connected."""
    ray = require_ray()
    # the driver forks Ray's processes; tokenizers used before a fork warns on every one
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            # no dashboard: ray[data] does not bring its dependencies, and it keeps a port free
            ray.init(include_dashboard=False, logging_level=logging.WARNING)
    data_logger = logging.getLogger("ray.data")
    level = data_logger.level
    data_logger.setLevel(logging.ERROR)  # execution plans and a "progress bars disabled" note
    context = ray.data.DataContext.get_current()
    bars, context.enable_progress_bars = context.enable_progress_bars, False  # ours is enough
    try:
        yield ray
    finally:
        context.enable_progress_bars = bars
        data_logger.setLevel(level)
        if started:
            ray.shutdown()


def worker_cpus(requested: float, workers: int, cluster_cpus: float) -> float:
    """CPUs each actor reserves: as requested, unless the pool would then hold every CPU.

    requested (float): CPUs per worker asked for.
    workers (int): Actors in the pool.
    cluster_cpus (float): The cluster's CPUs.
    RETURNS (float): CPUs to reserve per actor.
    """
    free = 1.0 if cluster_cpus >= 2 else cluster_cpus / 2
    budget = cluster_cpus - free
    if workers * requested <= budget:
        return requested
    reserved = budget / workers
    warnings.warn(Warnings.W008.format(workers=workers, requested=requested, cpus=cluster_cpus, reserved=reserved))
    return reserved


def actor_map(ray, items: List[Dict[str, Any]], actor_class: type, constructor_kwargs: Dict[str, Any],
              options: RayOptions) -> Iterator[Dict[str, Any]]:
    """Run `actor_class` over `items` (one item a call) on an actor pool; yields its output
    rows as they finish (not in order).

    items (List[Dict[str, Any]]): One dict of plain values per task.
    actor_class (type): Callable class; __init__(**constructor_kwargs) loads the model,
        __call__(batch) maps a batch of one item to a batch of results.
    options (RayOptions): Pool size and resources.
    YIELDS (Dict[str, Any]): The output rows.
    """
    from ray.data import ActorPoolStrategy

    cpus = worker_cpus(options.cpus_per_worker, options.workers, ray.cluster_resources().get("CPU", 1.0))
    kwargs = dict(constructor_kwargs, threads=max(1, int(round(options.cpus_per_worker))))
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    with warnings.catch_warnings():
        # max_restarts / max_task_retries have no named parameter in Ray 2.60 and go
        # through **ray_remote_args, which Ray deprecates for 2.64 (the extra pins < 2.64)
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        mapped = dataset.map_batches(
            actor_class,
            fn_constructor_kwargs=kwargs,
            batch_size=1,
            compute=ActorPoolStrategy(size=options.workers),
            num_cpus=cpus,
            num_gpus=options.gpus_per_worker or None,
            max_restarts=options.max_retries,
            max_task_retries=options.max_retries,
        )
    yield from mapped.iter_rows()


def set_threads(threads: int) -> None:
    """Torch threads in an actor: Ray sets OMP_NUM_THREADS from the reserved CPUs, which
    `worker_cpus` may have shrunk below one."""
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
