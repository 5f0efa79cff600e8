"""Atomic file writes: a reader (an EHR folder watcher, a resumed batch) never sees half a file.

Write to a temporary file in the same folder, flush and fsync it, then ``os.replace`` it over the
target: on POSIX the rename is atomic, so the target is either the old file or the new one.
``mkstemp`` creates the file 0600 and new folders are made 0700, so what ambient writes is private
to the user whatever the umask.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ambient.errors import OutputError


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) 0700: everything ambient keeps may hold PHI.

    Folders that already exist keep their mode: a folder the user chose is theirs to set.
    """
    try:
        missing = [p for p in (path, *path.parents) if not p.exists()]
        for folder in reversed(missing):
            folder.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create output folder {path}: {exc.strerror or exc}; choose a writable folder"
        ) from None
    if not os.access(path, os.W_OK):
        raise OutputError(f"output folder {path} is not writable; choose a writable folder")
    return path


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    ensure_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))
