"""Atomic file output: write beside the target, then rename over it, so an interrupted
write (crash, Ctrl-C) never replaces a good file with a partial one."""
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union


@contextmanager
def atomic_output(path: Union[str, Path]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success move it to `path`.

    Works for files and directories (a directory target is swapped in whole).

    path (Union[str, Path]): The final file or directory.
    YIELDS (Path): Where to write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    tmp = tmp_dir / path.name
    try:
        yield tmp
        if path.is_dir() and tmp.is_dir():
            backup = tmp_dir / (path.name + ".old")
            os.replace(path, backup)
            os.replace(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
