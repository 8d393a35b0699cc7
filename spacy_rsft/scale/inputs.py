"""What `annotate` reads: input files found from paths and globs, cut into blocks (one
output shard each), and the records of a block, good or bad.

A block is fixed by the plan alone (file, byte offset, line range), so every engine and
every rerun cuts the same blocks and writes the same shards. JSONL and plain-text files are
cut every `block_size` lines; a DocBin file is one block (it is a shard already).
"""
import glob
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Union

from spacy.tokens import Doc, DocBin

from ..errors import Errors

FORMATS = {".jsonl": "jsonl", ".txt": "text", ".spacy": "docbin"}


class AnnotateInputError(ValueError):
    """The inputs as a whole cannot be annotated (nothing found, an unknown format)."""


@dataclass(frozen=True)
class Block:
    """The records of one output shard."""

    index: int  # the shard number: part-{index:05d}
    path: str
    fmt: str  # jsonl | text | docbin
    offset: int  # byte offset of the first line (0 for docbin)
    line: int  # 1-based number of the first line (1 for docbin)
    n_lines: int  # lines in the block (docs for docbin)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Block":
        return cls(**json.loads(text))


@dataclass
class Record:
    """One document to annotate. `content` is a text, or a Doc read from a DocBin."""

    id: str
    source: str  # file:line (or file:#index in a DocBin)
    content: Union[str, Doc]


@dataclass
class BadRecord:
    """A record that cannot be annotated, with where it is and why."""

    file: str
    line: int
    reason: str
    id: Optional[str] = None

    def to_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "id": self.id, "reason": self.reason}


def find_inputs(patterns: Iterable[Union[str, Path]]) -> List[Path]:
    """The input files: each pattern is a file, a directory (its files of known formats,
    recursively) or a glob. Sorted and de-duplicated, so that shard numbers are stable.

    patterns (Iterable[Union[str, Path]]): Paths or globs.
    RETURNS (List[Path]): The files.
    """
    found = set()
    for pattern in patterns:
        pattern = str(pattern)
        if Path(pattern).is_dir():
            matches = [str(p) for p in Path(pattern).rglob("*") if p.suffix in FORMATS]
        else:
            matches = glob.glob(pattern, recursive=True)
        if not matches:
            raise AnnotateInputError(Errors.E320.format(pattern=pattern))
        for match in matches:
            path = Path(match)
            if path.is_file():
                input_format(path)  # fails early on an unknown suffix
                found.add(path.resolve())
    if not found:
        raise AnnotateInputError(Errors.E320.format(pattern=", ".join(map(str, patterns))))
    return sorted(found)


def input_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise AnnotateInputError(Errors.E321.format(path=path, suffixes=", ".join(FORMATS)))
    return fmt


def plan_blocks(files: List[Path], block_size: int) -> List[Block]:
    """Cut the files into blocks of at most `block_size` lines (a DocBin: one block).

    files (List[Path]): The input files, in shard order.
    block_size (int): Lines per block.
    RETURNS (List[Block]): The blocks, numbered from 0.
    """
    if block_size < 1:
        raise AnnotateInputError(Errors.E322.format(value=block_size))
    blocks: List[Block] = []
    for path in files:
        fmt = input_format(path)
        if fmt == "docbin":
            blocks.append(Block(len(blocks), str(path), fmt, 0, 1, 0))
            continue
        for offset, line, n_lines in _line_blocks(path, block_size):
            blocks.append(Block(len(blocks), str(path), fmt, offset, line, n_lines))
    return blocks


def _line_blocks(path: Path, block_size: int) -> Iterator[tuple]:
    """(byte offset, first line, number of lines) of every block of a line-based file."""
    offset, line, n_lines, start = 0, 1, 0, 0
    with path.open("rb") as file_:
        for raw in file_:
            n_lines += 1
            offset += len(raw)
            if n_lines == block_size:
                yield start, line, n_lines
                start, line, n_lines = offset, line + n_lines, 0
    if n_lines:
        yield start, line, n_lines


def read_block(block: Block, text_field: str, id_field: str, max_chars: int,
               vocab) -> Iterator[Union[Record, BadRecord, None]]:
    """The records of a block, in order: a Record, a BadRecord, or None for a blank line
    (counted, not an error: blank lines separate paragraphs in plain text).

    block (Block): The block.
    text_field (str): JSONL field with the text.
    id_field (str): JSONL field with the id (default id: file:line).
    max_chars (int): Longer texts are bad records.
    vocab (Vocab): The pipeline's vocab, for DocBin inputs.
    YIELDS (Union[Record, BadRecord, None]): The records.
    """
    if block.fmt == "docbin":
        yield from _docbin_records(block, max_chars, vocab)
        return
    name = Path(block.path).name
    with open(block.path, "rb") as file_:
        file_.seek(block.offset)
        for line_no in range(block.line, block.line + block.n_lines):
            raw = file_.readline()
            source = f"{name}:{line_no}"
            try:
                text = raw.decode("utf8")
            except UnicodeDecodeError as err:
                yield BadRecord(block.path, line_no, f"not valid UTF-8 ({err.reason} at byte {err.start})")
                continue
            if not text.strip():
                yield None
            elif block.fmt == "text":
                yield _checked(Record(source, source, text.rstrip("\r\n")), block.path, line_no, max_chars)
            else:
                yield _jsonl_record(text, block.path, line_no, source, text_field, id_field, max_chars)


def _jsonl_record(text: str, path: str, line_no: int, source: str, text_field: str,
                  id_field: str, max_chars: int) -> Union[Record, BadRecord]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        return BadRecord(path, line_no, f"invalid JSON ({err.msg})")
    if not isinstance(obj, dict):
        return BadRecord(path, line_no, f"a JSON {type(obj).__name__}, not an object")
    record_id = obj.get(id_field)
    record_id = source if record_id is None else str(record_id)
    if text_field not in obj:
        return BadRecord(path, line_no, f"no {text_field!r} field", record_id)
    if not isinstance(obj[text_field], str):
        return BadRecord(path, line_no, f"{text_field!r} is a {type(obj[text_field]).__name__}, not a string", record_id)
    if not obj[text_field].strip():
        return BadRecord(path, line_no, f"empty {text_field!r}", record_id)
    return _checked(Record(record_id, source, obj[text_field]), path, line_no, max_chars)


def _checked(record: Record, path: str, line_no: int, max_chars: int) -> Union[Record, BadRecord]:
    length = len(record.content.text if isinstance(record.content, Doc) else record.content)
    if length > max_chars:
        reason = f"{length} characters, more than max_chars = {max_chars}"
        return BadRecord(path, line_no, reason, record.id)
    return record


def _docbin_records(block: Block, max_chars: int, vocab) -> Iterator[Union[Record, BadRecord]]:
    name = Path(block.path).name
    try:
        docbin = DocBin(store_user_data=True).from_disk(block.path)
    except Exception as err:  # a corrupt or foreign file: one bad record, the run goes on
        yield BadRecord(block.path, 0, f"not a readable DocBin ({type(err).__name__}: {err})")
        return
    for i, doc in enumerate(docbin.get_docs(vocab)):  # one Doc at a time, not the whole file
        source = f"{name}:#{i}"
        record_id = str(doc.user_data.get("id", source))
        yield _checked(Record(record_id, source, doc), block.path, i, max_chars)
