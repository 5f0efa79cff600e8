"""Batch outputs: sealed transcripts and notes, the folders they went to, and one way to read them.

``ambient batch`` writes ``transcript.json``, ``transcript.txt``, ``note.json`` and ``note.md`` per
encounter. They keep their names when sealed (a sealed file starts with ``\\x89AMB``), so tools that
read them — ``ambient note``, eval, replay, diff, the batch's own delivery — call
:func:`read_output` and get text either way. Plain files are written when the user asks
(``ambient batch --plain``, ``[protect] plain_batch_outputs = true``).

``ambient keys rotate`` and ``ambient purge`` must find these files later, but a batch's
``--out`` folder is the user's choice: each folder a sealed batch writes to is remembered in
``<data dir>/protect/batch_dirs.txt`` (paths only), besides ``[protect] batch_dirs``.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ambient.atomic import ensure_dir
from ambient.config import Paths, Settings
from ambient.protect.sealed import Protector, read_bytes

KINDS = {
    "transcript.json": "batch.transcript",
    "transcript.txt": "batch.transcript",
    "note.json": "batch.note",
    "note.md": "batch.note",
}
REGISTRY = "batch_dirs.txt"


def kind_of(path: Path) -> str:
    """The sealing kind of a batch output file, by its name (notes and transcripts differ)."""
    return kind_of_name(path.name)


def kind_of_name(name: str) -> str:
    """As :func:`kind_of`, for a file name alone (an object behind a URL has no local path)."""
    return KINDS.get(name, "batch.transcript" if "transcript" in name else "batch.note")


def write_output(protector: Protector, path: Path, text: str, plain: bool) -> Path:
    return protector.write(path, text.encode("utf-8"), kind_of(path), seal=not plain and protector.seal_new)


def read_output(path: Path, paths: Paths | None = None) -> str:
    """A batch output's text, sealed or plain."""
    return read_bytes(path, kind_of(path), paths=paths).decode("utf-8")


def remember_batch_dir(paths: Paths, out_dir: str | os.PathLike[str]) -> None:
    """Note ``out_dir`` (a folder, or an fsspec URL) once, so rotation and purge find its sealed files."""
    folder = ensure_dir(paths.data_dir / "protect")
    registry = folder / REGISTRY
    text = os.fspath(out_dir)
    entry = text.rstrip("/") if "://" in text else str(Path(text).resolve())
    with registry.open("a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        if entry not in handle.read().splitlines():
            handle.write(entry + "\n")


def _registered(paths: Paths, settings: Settings) -> list[str]:
    registry = paths.data_dir / "protect" / REGISTRY
    found = registry.read_text(encoding="utf-8").splitlines() if registry.exists() else []
    found += [d if "://" in d else str(Path(d).expanduser()) for d in settings.protect.batch_dirs]
    return list(dict.fromkeys(line.strip() for line in found if line.strip()))


def batch_dirs(paths: Paths, settings: Settings) -> list[Path]:
    """Remembered and configured batch output folders that still exist."""
    return [d for d in (Path(e) for e in _registered(paths, settings) if "://" not in e) if d.is_dir()]


def batch_urls(paths: Paths, settings: Settings) -> list[str]:
    """Remembered and configured batch outputs behind fsspec URLs (``ambient batch --out s3://…``)."""
    return [entry for entry in _registered(paths, settings) if "://" in entry]


def output_files(out_dir: Path) -> list[Path]:
    """The transcript and note files of every encounter folder under a batch output folder."""
    return sorted(p for name in KINDS for p in out_dir.glob(f"*/{name}") if p.is_file())
