"""Annotate corpora at scale: `spacy_rsft.scale.annotate(...)` and `python -m spacy_rsft
annotate`.

Inputs are cut into blocks (`inputs`), each block becomes one output shard (`shards`),
finished shards are recorded so a rerun skips them (`manifest`), and an engine runs the
pending blocks: `local` (`nlp.pipe` in this process) or `ray` (a Ray Data actor pool, one
pipeline per actor, on this machine or a cluster).
"""
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Union

from ..errors import Errors
from .inputs import AnnotateInputError, Block, find_inputs, plan_blocks
from .manifest import ERRORS, AnnotateOutputError, Manifest, fingerprint
from .ray_engine import RayOptions, actor_map, ray_session, set_threads
from .shards import OUTPUT_FORMATS, Settings, ShardResult, annotate_block, load_pipeline

ENGINES = ("local", "ray")

__all__ = ["annotate", "Report", "RayOptions", "AnnotateInputError", "AnnotateOutputError"]


@dataclass
class Report:
    """What an `annotate` run did. Counts cover the whole output (shards of earlier runs
    included); speed covers this run."""

    output_dir: str
    engine: str
    complete: bool
    shards: int
    shards_run: int
    shards_skipped: int
    docs: int
    errors: int
    blank: int
    ents: int
    docs_this_run: int
    seconds: float
    docs_per_s: float
    peak_rss_mb: Dict[str, float] = field(default_factory=dict)  # worker -> its peak RSS
    errors_path: Optional[str] = None


def annotate(
    inputs: Union[str, Path, Iterable[Union[str, Path]]],
    output_dir: Union[str, Path],
    pipeline: Union[str, Path],
    engine: str = "local",
    *,
    outputs: Iterable[str] = OUTPUT_FORMATS,
    text_field: str = "text",
    id_field: str = "id",
    block_size: int = 1000,
    batch_size: int = 64,
    max_chars: Optional[int] = None,
    code: Optional[Union[str, Path]] = None,
    overwrite: bool = False,
    progress: bool = True,
    ray_options: Optional[RayOptions] = None,
) -> Report:
    """Annotate JSONL, plain-text or DocBin files with a pipeline, one output shard per
    input block, resuming where an earlier run into `output_dir` stopped.

    inputs: A path, directory or glob, or several.
    output_dir: Where part-NNNNN.spacy / part-NNNNN.jsonl, errors.jsonl and manifest.json go.
    pipeline: A pipeline directory (on storage every Ray worker can read).
    engine (str): "local" (nlp.pipe here) or "ray".
    outputs (Iterable[str]): "docbin" and/or "jsonl".
    text_field (str): JSONL field with the text.
    id_field (str): JSONL field with the record id (default: file:line).
    block_size (int): Input lines per shard.
    batch_size (int): Docs per nlp.pipe batch.
    max_chars (Optional[int]): Longer texts are bad records (default: nlp.max_length).
    code (Optional[Path]): Python file with custom components, imported before loading.
    overwrite (bool): Replace an output directory that holds a run with other settings.
    progress (bool): Show a progress bar.
    ray_options (Optional[RayOptions]): Cluster address, workers, CPUs and GPUs per worker.
    RETURNS (Report): Counts, speed and peak memory per worker.
    """
    if engine not in ENGINES:
        raise ValueError(Errors.E326.format(engine=engine, engines=", ".join(ENGINES)))
    settings = _settings(pipeline, output_dir, outputs, text_field, id_field, max_chars, batch_size, code)
    files = find_inputs([inputs] if isinstance(inputs, (str, Path)) else inputs)
    # an output directory inside an input directory: its shards are not inputs on a rerun
    files = [f for f in files if Path(settings.output_dir) not in f.parents]
    if not files:
        raise AnnotateInputError(Errors.E320.format(pattern=inputs))
    blocks = plan_blocks(files, block_size)
    manifest = Manifest.open(Path(settings.output_dir), fingerprint(settings, files, block_size), blocks, overwrite)
    pending = manifest.pending()
    manifest.write(settings, engine)
    start, ran = time.perf_counter(), []
    bar = _progress_bar(pending, progress)

    def finished(result: ShardResult) -> None:
        manifest.record(result)
        ran.append(result)
        if engine == "ray":
            bar.update(result.docs)
        bar.update(result.errors + result.blank)

    try:
        if pending and engine == "local":
            _run_local(pending, settings, finished, bar.update)
        elif pending:
            _run_ray(pending, settings, finished, ray_options or RayOptions())
    finally:
        bar.close()
        totals = manifest.write(settings, engine)
    seconds = time.perf_counter() - start
    return _report(settings, engine, totals, ran, len(blocks) - len(pending), seconds)


def _settings(pipeline, output_dir, outputs, text_field, id_field, max_chars, batch_size, code) -> Settings:
    pipeline = Path(pipeline).resolve()
    if not (pipeline / "config.cfg").exists():
        raise AnnotateInputError(Errors.E327.format(path=pipeline))
    outputs = tuple(outputs)
    unknown = [o for o in outputs if o not in OUTPUT_FORMATS]
    if unknown or not outputs:
        raise ValueError(Errors.E328.format(outputs=outputs, formats=", ".join(OUTPUT_FORMATS)))
    if code is not None and not Path(code).is_file():
        raise AnnotateInputError(Errors.E329.format(path=code))
    return Settings(
        pipeline=str(pipeline), output_dir=str(Path(output_dir).resolve()), outputs=outputs,
        text_field=text_field, id_field=id_field, max_chars=max_chars, batch_size=batch_size,
        code=str(Path(code).resolve()) if code else None,
    )


def _run_local(pending: List[Block], settings: Settings, finished: Callable, progress: Callable) -> None:
    nlp = load_pipeline(settings)
    for block in pending:
        finished(annotate_block(nlp, block, settings, progress=progress))


class RayAnnotator:
    """A Ray Data actor: loads the pipeline once, annotates the blocks it is given and
    writes their shards; returns each shard's result as JSON."""

    def __init__(self, settings: str, threads: int) -> None:
        set_threads(threads)
        self.settings = Settings.from_json(settings)
        self.nlp = load_pipeline(self.settings)

    def __call__(self, batch: Dict) -> Dict:
        results = [annotate_block(self.nlp, Block.from_json(b), self.settings).to_json() for b in batch["block"]]
        return {"result": results}


def _run_ray(pending: List[Block], settings: Settings, finished: Callable, options: RayOptions) -> None:
    settings = replace(settings, gpu=options.gpus_per_worker > 0)
    items = [{"block": block.to_json()} for block in pending]
    with ray_session(options.address) as ray:
        for row in actor_map(ray, items, RayAnnotator, {"settings": settings.to_json()}, options):
            finished(ShardResult.from_json(row["result"]))


def _progress_bar(pending: List[Block], enabled: bool):
    from tqdm import tqdm

    total = None if any(b.fmt == "docbin" for b in pending) else sum(b.n_lines for b in pending)
    return tqdm(total=total, unit="doc", desc="Annotating", disable=not enabled, smoothing=0.1)


def _report(settings: Settings, engine: str, totals: dict, ran: List[ShardResult], skipped: int,
            seconds: float) -> Report:
    peaks: Dict[str, float] = {}
    for result in ran:
        peaks[result.worker] = max(peaks.get(result.worker, 0.0), result.peak_rss_mb)
    docs_this_run = sum(r.docs for r in ran)
    errors_path = Path(settings.output_dir) / ERRORS
    return Report(
        output_dir=settings.output_dir, engine=engine, complete=totals["complete"],
        shards=totals["shards_planned"], shards_run=len(ran), shards_skipped=skipped,
        docs=totals["docs"], errors=totals["errors"], blank=totals["blank"], ents=totals["ents"],
        docs_this_run=docs_this_run, seconds=round(seconds, 3),
        docs_per_s=round(docs_this_run / seconds, 2) if seconds > 0 else 0.0,
        peak_rss_mb=peaks, errors_path=str(errors_path) if totals["errors"] else None,
    )
