"""The output directory's record of what is done, so that a rerun skips finished shards.

- `shards.jsonl`: one line per finished shard, appended (and flushed to disk) right after
  the shard's files are in place. A line cut short by a crash is ignored, and its shard
  is redone; shards are deterministic, so a resumed run writes what an uninterrupted run
  would have written.
- `manifest.json`: the settings fingerprint, the planned shards, the totals and whether the
  run is complete; rewritten atomically at the start and the end of every run.

A rerun with other settings (inputs, pipeline, fields, block size) into the same directory
is refused, unless `overwrite` clears the old shards first.
"""
import hashlib
import json
import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import srsly

from ..errors import Errors
from ..io import atomic_output
from .inputs import Block
from .shards import Settings, ShardResult

MANIFEST, SHARD_LOG, ERRORS = "manifest.json", "shards.jsonl", "errors.jsonl"


class AnnotateOutputError(ValueError):
    """The output directory holds a run that this one must not mix with."""


def fingerprint(settings: Settings, files: Iterable[Path], block_size: int) -> str:
    """What decides the content of the shards: the inputs (path, size, mtime), the
    pipeline's files, the fields, formats, limits and block size (not the batch size or
    the engine, which change how fast, not what)."""
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    for path in sorted(Path(settings.pipeline).rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(settings.pipeline)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    fixed = {
        "outputs": list(settings.outputs), "text_field": settings.text_field, "id_field": settings.id_field,
        "max_chars": settings.max_chars, "block_size": block_size, "code": settings.code,
    }
    digest.update(json.dumps(fixed, sort_keys=True).encode())
    return digest.hexdigest()[:16]


class Manifest:
    def __init__(self, output_dir: Path, key: str, blocks: List[Block]) -> None:
        self.output_dir, self.key, self.blocks = output_dir, key, blocks
        self.done: Dict[int, ShardResult] = {}

    @classmethod
    def open(cls, output_dir: Path, key: str, blocks: List[Block], overwrite: bool = False) -> "Manifest":
        """The manifest of `output_dir`, with the shards that are already done."""
        output_dir.mkdir(parents=True, exist_ok=True)
        manifest = cls(output_dir, key, blocks)
        previous = _read_json(output_dir / MANIFEST)
        if previous is not None and previous.get("fingerprint") != key:
            if not overwrite:
                raise AnnotateOutputError(Errors.E323.format(path=output_dir))
            manifest.clear()
        elif previous is None and any(output_dir.glob("part-*")):
            if not overwrite:
                raise AnnotateOutputError(Errors.E324.format(path=output_dir))
            manifest.clear()
        manifest.done = {r.index: r for r in manifest._logged() if manifest._files_exist(r)}
        return manifest

    def pending(self) -> List[Block]:
        return [block for block in self.blocks if block.index not in self.done]

    def record(self, result: ShardResult) -> None:
        """Note a finished shard (its files are in place already)."""
        with (self.output_dir / SHARD_LOG).open("a", encoding="utf8") as file_:
            file_.write(result.to_json() + "\n")
            file_.flush()
            os.fsync(file_.fileno())
        self.done[result.index] = result

    def write(self, settings: Settings, engine: str) -> dict:
        """Rewrite manifest.json with the totals so far; returns them."""
        results = [self.done[i] for i in sorted(self.done)]
        totals = {key: sum(getattr(r, key) for r in results) for key in ("docs", "errors", "blank", "ents")}
        complete = len(self.done) == len(self.blocks)
        data = {
            "fingerprint": self.key,
            "complete": complete,
            "engine": engine,
            "pipeline": settings.pipeline,
            "outputs": list(settings.outputs),
            "shards_planned": len(self.blocks),
            "shards_done": len(self.done),
            **totals,
            "shards": [{"part": f"part-{r.index:05d}", "input": r.input, "first_line": r.first_line,
                        "docs": r.docs, "errors": r.errors, "blank": r.blank, "ents": r.ents} for r in results],
        }
        if complete:
            self._merge_errors(results)
        with atomic_output(self.output_dir / MANIFEST) as tmp:
            srsly.write_json(tmp, data)
        return data

    def clear(self) -> None:
        for path in list(self.output_dir.glob("part-*")) + [self.output_dir / n for n in (SHARD_LOG, MANIFEST, ERRORS)]:
            if path.is_file():
                path.unlink()

    def _logged(self) -> List[ShardResult]:
        path = self.output_dir / SHARD_LOG
        if not path.exists():
            return []
        results = []
        for line in path.read_text(encoding="utf8").splitlines():
            try:
                results.append(ShardResult.from_json(line))
            except (ValueError, TypeError):  # the line a crash cut short
                continue
        return [r for r in results if r.index < len(self.blocks)]

    def _files_exist(self, result: ShardResult) -> bool:
        return all((self.output_dir / name).exists() for name in result.files)

    def _merge_errors(self, results: List[ShardResult]) -> None:
        """errors.jsonl: every shard's bad records, in input order."""
        with atomic_output(self.output_dir / ERRORS) as tmp, tmp.open("w", encoding="utf8") as out:
            for result in results:
                path = self.output_dir / f"part-{result.index:05d}.errors.jsonl"
                if result.errors and path.exists():
                    out.write(path.read_text(encoding="utf8"))


def _read_json(path: Path) -> Optional[dict]:
    try:
        return srsly.read_json(path)
    except (FileNotFoundError, ValueError):
        return None
