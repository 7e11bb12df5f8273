"""Output files: crash-safe writing, and the one rule for every output path.

The rule (docs/outputs.md): a command writes only files it owns. An output folder carries an owner
record (``OWNER_FILE``: the command and what produced the run); an existing folder or file that the
command did not write is refused in one line, or moved aside with ``--overwrite``, never deleted. Only a
command's own files are replaced, and always atomically (temporary sibling, fsync, rename).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

#: the owner record inside every output folder a command writes
OWNER_FILE = ".minddrive-output.json"
#: the lock file inside a folder one run at a time may write (training work dirs)
LOCK_FILE = ".minddrive-lock"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, replace_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` in one rename.

    Works for files and directories. A crash leaves either the old content or the new one, never a
    half-written mix. An existing directory at ``path`` is replaced only with ``replace_dir=True``
    (the caller owns it, e.g. its own checkpoint); otherwise it is refused with a :class:`UserError`,
    so a file write never removes a folder of someone else's.
    """
    from minddrive.errors import UserError

    path = Path(path)
    if path.is_dir() and not path.is_symlink() and not replace_dir:
        raise UserError(f"{path}: is an existing directory, not replaced (choose another path)")
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
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected a JSON file") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text JSON file") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


# ---------------------------------------------------------------------------------- content hashes
def hash_files(paths: list[str | os.PathLike], root: str | os.PathLike | None = None) -> str:
    """sha256 over the names (relative to ``root``) and bytes of ``paths``: what a run was produced from."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        name = os.path.relpath(path, root) if root is not None else path.name
        digest.update(name.encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def hash_tree(directory: str | os.PathLike, skip: tuple[str, ...] = ()) -> str:
    """sha256 of the regular files under ``directory`` but those named in ``skip`` and hidden ones
    (a checkpoint's content, wherever it lies)."""
    directory = Path(directory)
    files = [p for p in directory.rglob("*") if p.is_file() and not p.name.startswith(".") and p.name not in skip]
    return hash_files(files, root=directory)


def hash_json(obj: Any) -> str:
    """sha256 of ``obj`` as canonical JSON (a config's content, wherever its file lies)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=repr).encode()).hexdigest()


def config_sha256(cfg: Any) -> str:
    """sha256 of a merged config's values, leaving out where its file lies and where the run writes."""
    data = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg or {})
    return hash_json({k: v for k, v in data.items() if k not in ("filename", "work_dir")})


# ------------------------------------------------------------------------------------ ownership
def move_aside(path: str | os.PathLike) -> Path:
    """Rename ``path`` to ``<path>.old-<time>`` (never deleting it) and say so on stderr; returns the new name."""
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside, n = path.with_name(f"{path.name}.old-{stamp}"), 1
    while aside.exists() or aside.is_symlink():
        aside, n = path.with_name(f"{path.name}.old-{stamp}-{n}"), n + 1
    os.replace(path, aside)
    print(f"minddrive: moved the existing {path} aside to {aside}", file=sys.stderr)
    return aside


def read_owner(directory: str | os.PathLike) -> dict | None:
    """The owner record of an output folder, or ``None`` when it has none (or an unreadable one)."""
    try:
        with open(Path(directory) / OWNER_FILE) as handle:
            owner = json.load(handle)
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) and isinstance(owner.get("command"), str) else None


def _refuse(path: Path, why: str, overwrite: bool) -> None:
    from minddrive.errors import UserError

    if not overwrite:
        raise UserError(f"{path}: {why}; choose another path, or pass --overwrite to move it aside (nothing is deleted)")
    move_aside(path)


def claim_dir(path: str | os.PathLike, command: str, identity: dict | None = None, overwrite: bool = False,
              resume: bool = True) -> dict | None:
    """Make ``path`` an output folder of ``command``; returns the owner record of a run to resume, else ``None``.

    * absent or empty: created and stamped with ``command`` and ``identity``;
    * stamped by ``command`` with the same ``identity`` (keys compared only where both have them):
      resumed when ``resume``, else refused;
    * anything else (a file, a folder of another command or of nobody, another identity): refused in
      one line, or moved aside with ``overwrite`` and started afresh.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        owner = read_owner(path) if path.is_dir() else None
        if not path.is_dir() or path.is_symlink():
            _refuse(path, f"exists and is not a folder written by 'minddrive {command}'", overwrite)
        elif owner is None and any(path.iterdir()):
            _refuse(path, f"exists and was not written by 'minddrive {command}'", overwrite)
        elif owner is not None and owner["command"] != command:
            _refuse(path, f"was written by 'minddrive {owner['command']}', not 'minddrive {command}'", overwrite)
        elif owner is not None:
            stored = owner.get("identity") or {}
            differs = [k for k in (identity or {}) if k in stored and stored[k] != identity[k]]
            if differs:
                key = differs[0]
                _refuse(path, f"holds a run with another {key} ({_short(stored[key])}, now {_short(identity[key])})",
                        overwrite)
            elif not resume:
                _refuse(path, f"holds an earlier 'minddrive {command}' run (pass --resume to continue it)", overwrite)
            else:
                return owner
    path.mkdir(parents=True, exist_ok=True)
    write_json(path / OWNER_FILE, {"command": command, "identity": identity or {},
                                   "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return None


def claim_file(path: str | os.PathLike, command: str, owns: Callable[[Path], bool], overwrite: bool = False) -> None:
    """Check that ``command`` may write the single file ``path``: absent, or a file ``owns`` recognises as its own.

    Anything else (a folder, a file of other content) is refused in one line or, with ``overwrite``,
    moved aside.
    """
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return
    if path.is_file() and not path.is_symlink():
        try:
            mine = bool(owns(path))
        except Exception:  # unreadable or foreign content is simply not ours
            mine = False
        if mine:
            return
        _refuse(path, f"exists and was not written by 'minddrive {command}'", overwrite)
    else:
        _refuse(path, f"exists and is not a file written by 'minddrive {command}'", overwrite)


def _short(value: Any) -> str:
    text = str(value)
    return text[:12] if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else text


# ------------------------------------------------------------------------------------------ lock
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def run_lock(directory: str | os.PathLike, what: str) -> Iterator[Path]:
    """Hold ``directory/LOCK_FILE`` for the duration: a second run into the same folder is refused in one line.

    The lock names its process and host; a lock left by a process that no longer runs on this host is
    stale and taken over.
    """
    from minddrive.errors import UserError

    lock = Path(directory) / LOCK_FILE
    lock.parent.mkdir(parents=True, exist_ok=True)
    mine = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                held = json.loads(lock.read_text())
                pid, host = int(held["pid"]), str(held["host"])
            except (OSError, ValueError, KeyError, TypeError):
                pid, host = -1, socket.gethostname()   # unreadable: written by a run killed mid-write
            if host != socket.gethostname() or (pid > 0 and _alive(pid)):
                raise UserError(f"{directory}: another {what} (pid {pid} on {host}) is writing here; wait for it "
                                f"or remove {lock} if that process is gone") from None
            lock.unlink(missing_ok=True)   # stale: its process has ended
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(mine)
        break
    else:
        raise UserError(f"{directory}: could not take {lock}")
    try:
        yield lock
    finally:
        try:
            if lock.read_text() == mine:
                lock.unlink()
        except OSError:
            pass


# ------------------------------------------------------------------------------ reading inputs
def read_safetensors(path: str | os.PathLike) -> dict:
    """A safetensors weights file as tensors; a missing, truncated or foreign file is a one-line :class:`UserError`."""
    from safetensors.torch import load_file

    from minddrive.errors import UserError

    if not Path(path).is_file():
        raise UserError(f"{path}: weights file not found")
    try:
        return load_file(os.fspath(path))
    except Exception as exc:  # safetensors raises its own error types for every kind of damage
        raise UserError(f"{path}: unreadable weights file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def read_pickled(path: str | os.PathLike, what: str, torch_file: bool = False) -> Any:
    """A pickle (or ``torch.save``) file this project wrote; damage is a one-line :class:`UserError`."""
    from minddrive.errors import UserError

    if not Path(path).is_file():
        raise UserError(f"{path}: {what} not found")
    try:
        if torch_file:
            import torch

            # Files of our own writing (numpy arrays, dicts): full unpickling is needed and trusted.
            return torch.load(path, map_location="cpu", weights_only=False)
        import pickle

        with open(path, "rb") as handle:
            return pickle.load(handle)
    except Exception as exc:  # truncated or foreign bytes raise many types
        raise UserError(f"{path}: unreadable {what} ({type(exc).__name__}); it is damaged or not one") from None
