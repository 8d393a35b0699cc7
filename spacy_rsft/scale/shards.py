"""One block in, one shard out: the work that every engine does the same way.

A shard is `part-NNNNN.spacy` (a DocBin with user data, so span groups with entity
confidences, `kb_id`s and `_.kb_score` survive) and/or `part-NNNNN.jsonl` (one line a doc),
plus `part-NNNNN.errors.jsonl` when the block had bad records. Each file is written
beside its target and renamed into place, so a killed worker never leaves a partial shard.
"""
import json
import os
import resource
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span

from ..io import atomic_output
from ..util import release_free_memory
from .inputs import BadRecord, Block, Record, read_block

OUTPUT_FORMATS = ("docbin", "jsonl")
ID_KEY, SOURCE_KEY = "id", "source"  # doc.user_data keys of the record's id and source


@dataclass
class Settings:
    """How every block is annotated; the same in every worker."""

    pipeline: str
    output_dir: str
    outputs: Tuple[str, ...] = OUTPUT_FORMATS
    text_field: str = "text"
    id_field: str = "id"
    max_chars: Optional[int] = None  # None: the pipeline's nlp.max_length
    batch_size: int = 64  # docs per nlp.pipe batch
    code: Optional[str] = None  # a Python file with custom components, imported first
    gpu: bool = False  # load the pipeline on the worker's GPU

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Settings":
        data = json.loads(text)
        data["outputs"] = tuple(data["outputs"])
        return cls(**data)


@dataclass
class ShardResult:
    """What a worker reports for a finished shard."""

    index: int
    input: str
    first_line: int
    docs: int = 0
    errors: int = 0
    blank: int = 0
    ents: int = 0
    seconds: float = 0.0
    worker: str = ""
    rss_mb: float = 0.0  # the worker's resident memory after the shard
    peak_rss_mb: float = 0.0  # the worker's peak resident memory so far
    files: List[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ShardResult":
        return cls(**json.loads(text))


def shard_name(index: int, suffix: str) -> str:
    return f"part-{index:05d}{suffix}"


def load_pipeline(settings: Settings) -> Language:
    """The pipeline a worker annotates with (custom code imported first, as `spacy train
    --code` does)."""
    import spacy
    from spacy.util import import_file

    if settings.code:
        import_file("rsft_annotate_code", settings.code)
    if settings.gpu:
        spacy.require_gpu()
    return spacy.load(settings.pipeline)


def annotate_block(nlp: Language, block: Block, settings: Settings,
                   progress: Optional[Callable[[int], None]] = None) -> ShardResult:
    """Annotate one block and write its shard.

    nlp (Language): The pipeline.
    block (Block): The block.
    settings (Settings): Output directory, formats, fields.
    progress (Optional[Callable[[int], None]]): Called with the number of docs done, as they go.
    RETURNS (ShardResult): Counts and where the files went.
    """
    start = time.perf_counter()
    result = ShardResult(index=block.index, input=block.path, first_line=block.line, worker=worker_id())
    max_chars = settings.max_chars or nlp.max_length
    bad: List[BadRecord] = []

    def good_records() -> Iterator[Tuple[object, Record]]:
        for record in read_block(block, settings.text_field, settings.id_field, max_chars, nlp.vocab):
            if record is None:
                result.blank += 1
            elif isinstance(record, BadRecord):
                bad.append(record)
            else:
                yield record.content, record

    docbin = DocBin(store_user_data=True)
    lines: List[str] = []
    for doc, record in nlp.pipe(good_records(), as_tuples=True, batch_size=settings.batch_size):
        doc.user_data[ID_KEY], doc.user_data[SOURCE_KEY] = record.id, record.source
        result.docs += 1
        result.ents += len(doc.ents)
        if "docbin" in settings.outputs:
            docbin.add(doc)
        if "jsonl" in settings.outputs:
            lines.append(json.dumps(doc_to_json(doc), ensure_ascii=False))
        if progress is not None:
            progress(1)
    result.errors = len(bad)
    result.files = _write_shard(Path(settings.output_dir), block.index, settings.outputs, docbin, lines, bad)
    result.seconds = time.perf_counter() - start
    release_free_memory()
    result.rss_mb, result.peak_rss_mb = memory_mb()
    return result


def _write_shard(output_dir: Path, index: int, outputs: Tuple[str, ...], docbin: DocBin,
                 lines: List[str], bad: List[BadRecord]) -> List[str]:
    written = []
    if "docbin" in outputs:
        with atomic_output(output_dir / shard_name(index, ".spacy")) as tmp:
            docbin.to_disk(tmp)
        written.append(shard_name(index, ".spacy"))
    if "jsonl" in outputs:
        written.append(_write_lines(output_dir / shard_name(index, ".jsonl"), lines))
    errors_path = output_dir / shard_name(index, ".errors.jsonl")
    if bad:
        written.append(_write_lines(errors_path, [json.dumps(b.to_dict(), ensure_ascii=False) for b in bad]))
    elif errors_path.exists():  # left by an earlier run over other inputs
        errors_path.unlink()
    return written


def _write_lines(path: Path, lines: List[str]) -> str:
    with atomic_output(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf8")
    return path.name


def doc_to_json(doc: Doc) -> Dict:
    """A doc's entities as JSON: character offsets, label, the entity's confidence (from a
    scored span group such as `rsft_ner`'s), and its link (`kb_id`, `_.kb_score`)."""
    scores = _entity_scores(doc)
    ents = []
    for ent in doc.ents:
        linked = ent.kb_id_ or None
        ents.append({
            "start": ent.start_char,
            "end": ent.end_char,
            "label": ent.label_,
            "text": ent.text,
            "score": scores.get((ent.start, ent.end, ent.label)),
            "kb_id": linked,
            "kb_score": _kb_score(ent) if linked else None,
        })
    return {"id": doc.user_data.get(ID_KEY), "source": doc.user_data.get(SOURCE_KEY), "ents": ents}


def _entity_scores(doc: Doc) -> Dict[Tuple[int, int, int], float]:
    """(start, end, label) -> confidence, from every span group that carries scores (the
    spancat convention `attrs["scores"]`, which rsft_ner follows)."""
    scores: Dict[Tuple[int, int, int], float] = {}
    for group in doc.spans.values():
        values = group.attrs.get("scores")
        if values is None or len(values) != len(group):
            continue
        for span, value in zip(group, values):
            scores.setdefault((span.start, span.end, span.label), float(value))
    return scores


def _kb_score(ent: Span) -> Optional[float]:
    score = ent._.kb_score if Span.has_extension("kb_score") else None
    return None if score is None else float(score)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def memory_mb() -> Tuple[float, float]:
    """(current, peak) resident memory of this process in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    try:
        with open("/proc/self/statm") as file_:
            current = int(file_.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: the peak is the best we have
        current = peak
    return round(current, 1), round(peak, 1)
