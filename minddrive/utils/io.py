"""Crash-safe file writing: write to a temporary sibling, fsync, then rename."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` in one rename.

    Works for files and directories. A crash leaves either the old content or the new one,
    never a half-written mix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if path.is_dir() and not path.is_symlink():
            # A directory cannot be replaced atomically while it exists: move the old one aside first.
            old = tmp / ".old"
            os.replace(path, old)
            os.replace(target, path)
        else:
            _fsync(target)
            os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fsync(path: Path) -> None:
    if path.is_file():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as handle:
            json.dump(obj, handle, indent=indent)


def read_json(path: str | os.PathLike) -> Any:
    """Read JSON, raising :class:`UserError` with the path on malformed content."""
    from minddrive.errors import UserError

    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
