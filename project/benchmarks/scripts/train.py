"""Train one benchmark run with `spacy train` (in this process) and record what the
benchmark reports about its training: wall time, words seen, words/second, peak memory,
and the dev score at every evaluation together with the step, the seconds, the words seen
and the resident and peak memory so far (spaCy's console logger keeps only the step and the scores).

usage: python scripts/train.py CONFIG OUTPUT_DIR [spacy train overrides]

On a GPU: set RSFT_BENCH_GPU to its id (run.py --gpu-id does); the default is the CPU.

Writes OUTPUT_DIR/model-best, OUTPUT_DIR/model-last (spaCy's) and OUTPUT_DIR/train.json.
Earlier models and train.json in OUTPUT_DIR are removed first, so a rerun never mixes two
runs.
"""
import ctypes
import gc
import os
import resource
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Dict, List

from spacy import util
from spacy.cli._util import parse_config_overrides
from spacy.cli.train import train
from spacy.training.loggers import console_logger_v3
from spacy_rsft.scale.shards import memory_mb as process_memory_mb

from bench import write_json

LOGGER_NAME = "spacy-rsft-bench.TimedLogger.v1"
GPU_ENV = "RSFT_BENCH_GPU"
_records: List[Dict] = []


_peak_mb = 0.0


def memory_record() -> Dict[str, int]:
    """Resident memory now and the peak so far, in MB: recorded at every evaluation, so that
    every run shows whether its memory grows with its steps.

    The peak is the highest of the kernel's high-water mark and every reading so far: the
    kernel's per-thread RSS counters are synced lazily, so `ru_maxrss` can lag a fresh
    /proc reading by a little (seen in a test: now above the "peak")."""
    global _peak_mb
    now, high_water = process_memory_mb()
    _peak_mb = max(_peak_mb, now, high_water)
    return {"rss_mb": round(now), "peak_rss_mb_so_far": round(_peak_mb)}


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def heap_record() -> Dict[str, float]:
    """Where the resident memory is, to tell a leak from fragmentation: glibc's heap
    (`mallinfo2`: bytes in use, bytes free but kept, bytes in mmapped blocks) and the bytes
    of the torch tensors Python still holds (each storage once; numpy arrays are not
    tracked by the garbage collector, so thinc's are not counted). A leak shows as rising
    `heap_in_use_mb` (and `tensor_mb`, if the tensors are reachable from Python);
    fragmentation as rising `heap_free_mb` with a level `heap_in_use_mb`. Empty where the
    C library is not glibc 2.33+ (mallinfo2)."""
    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return {}
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    import torch  # imported by spaCy's plugins already; here only to count its tensors

    tensor_storages: Dict[int, int] = {}
    with warnings.catch_warnings():  # isinstance touches deprecated torch aliases
        warnings.simplefilter("ignore")
        for obj in gc.get_objects():
            if isinstance(obj, torch.Tensor) and obj.device.type == "cpu":
                storage = obj.untyped_storage()  # views share one: count it once
                tensor_storages[storage.data_ptr()] = storage.nbytes()
    return {
        "heap_in_use_mb": round(info.uordblks / 2**20),
        "heap_free_mb": round(info.fordblks / 2**20),
        "heap_mmapped_mb": round(info.hblkhd / 2**20),
        "tensor_mb": round(sum(tensor_storages.values()) / 2**20),
    }


@util.registry.loggers(LOGGER_NAME)
def timed_logger(progress_bar=None, console_output=True, output_file=None):
    """spaCy's console logger, plus every evaluation's step, words and seconds kept here.
    Takes ConsoleLogger.v3's settings so that overriding only `@loggers` works."""
    if progress_bar in (False, True):  # ConsoleLogger.v1 took a bool
        progress_bar = "eval" if progress_bar else None
    console = console_logger_v3(progress_bar=progress_bar, console_output=console_output, output_file=output_file)

    def setup_printer(nlp, stdout=sys.stdout, stderr=sys.stderr):
        log_step, finalize = console(nlp, stdout, stderr)

        def log(info):
            log_step(info)
            if info is not None:
                _records.append(
                    {
                        "step": info["step"],
                        "epoch": info["epoch"],
                        "seconds": info["seconds"],
                        "words": info["words"],
                        "score": info["score"],
                        "scores": info["other_scores"],
                        **memory_record(),
                        **heap_record(),
                    }
                )

        return log, finalize

    return setup_printer


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    config_path, output_dir = Path(sys.argv[1]), Path(sys.argv[2])
    overrides = parse_config_overrides(sys.argv[3:])
    overrides["training.logger.@loggers"] = LOGGER_NAME
    # the config itself may live in OUTPUT_DIR (run.py writes it there): keep it
    for stale in ("model-best", "model-last", "train.json", "sampler_stats.jsonl"):
        path = output_dir / stale
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    output_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    train(config_path, output_dir, overrides=overrides, use_gpu=int(os.environ.get(GPU_ENV, "-1")))
    seconds = time.perf_counter() - start
    last = _records[-1] if _records else {}
    best = max(_records, key=lambda r: (r["score"], -r["step"])) if _records else {}
    write_json(
        output_dir / "train.json",
        {
            "config": str(config_path),
            "overrides": {k: v for k, v in overrides.items() if k != "training.logger.@loggers"},
            "wall_seconds": round(seconds, 1),
            "steps": last.get("step"),
            "words_seen": last.get("words"),
            "train_words_per_second": round(last["words"] / last["seconds"]) if last.get("seconds") else None,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "best_step": best.get("step"),
            "best_score": best.get("score"),
            "evaluations": _records,
        },
    )


if __name__ == "__main__":
    main()
