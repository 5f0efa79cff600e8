"""Damaged state found at start is moved aside, reported, and the rest carries on.

Why not stop with an error: an agent that refuses to start because one old journal's ``meta.json``
is torn (a full disk, a bad sector, a hand edit) would leave every *other* encounter and the whole
delivery queue stuck; under systemd it would crash-loop. Why not delete: the damaged files may
still hold a note that a person can rescue. So the file or folder moves, whole, to
``<data dir>/quarantine/<UTC time>-<kind>-<name>/`` with a ``reason.json`` beside it, and the move
is logged (ids and error codes only), recorded in the audit trail (``storage.quarantined``) and
shown by ``ambient encounter status`` and ``ambient outbox list``.

The quarantine folder holds PHI (a journal's audio, an outbox's notes) exactly as the original
place did; it is under the data dir so the same protection and retention rules reach it.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ambient.atomic import atomic_write_text, ensure_dir
from ambient.config import Paths
from ambient.logs import event_log

REASON = "reason.json"
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")

log = event_log("quarantine")


@dataclass(frozen=True)
class Quarantined:
    """One thing moved aside: what it was, where it went, why (a short code, never content)."""

    kind: str  # "journal" | "outbox"
    name: str  # the encounter id, or the database's file name
    original: str
    folder: str
    reason: str
    at: str

    def to_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


def quarantine_dir(paths: Paths) -> Path:
    return paths.data_dir / "quarantine"


def quarantine(paths: Paths, kind: str, targets: list[Path], name: str, reason: str) -> Quarantined:
    """Move ``targets`` (a journal folder, or a database and its WAL files) into one quarantine folder."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = quarantine_dir(paths) / f"{stamp}-{kind}-{name}"
    ensure_dir(folder)
    for target in targets:
        if target.exists():
            # same file system (both under the data dir), so this is a rename: nothing is copied
            shutil.move(str(target), str(folder / target.name))
    record = Quarantined(kind, name, str(targets[0]), str(folder), reason, datetime.now(UTC).isoformat())
    atomic_write_text(folder / REASON, json.dumps(record.to_dict(), indent=2))
    log.warning(
        "storage.quarantined",
        "{kind} {item} is damaged ({reason}); moved to {folder}",
        kind=kind,
        item=name,
        reason=reason,
        folder=str(folder),
    )
    from ambient.ehr.audit import AuditLog

    AuditLog.for_paths(paths).record(
        "storage.quarantined", ids={"kind": kind, "name": _id(name), "reason": reason}
    )
    return record


def _id(value: str) -> str:
    return "".join(f"%{ord(c):02X}" if c.isspace() or c == "%" else c for c in value) or "-"


def list_quarantined(paths: Paths, kind: str | None = None) -> list[Quarantined]:
    """Everything in quarantine, oldest first (reported until a person removes the folder)."""
    root = quarantine_dir(paths)
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(root.iterdir()):
        try:
            data = json.loads((folder / REASON).read_text(encoding="utf-8"))
            record = Quarantined(**{k: str(data[k]) for k in Quarantined.__dataclass_fields__})
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if kind is None or record.kind == kind:
            found.append(record)
    return found


def sqlite_damage(path: Path) -> str | None:
    """Why the SQLite file at ``path`` cannot be trusted (a short reason code), or None if it is sound.

    ``quick_check`` reads every page (milliseconds for an outbox); a file that is not a database,
    a truncated one, or one whose pages disagree all fail it. A missing file is sound: it will be
    created.
    """
    if not path.exists():
        return None
    if path.stat().st_size == 0:
        return None  # SQLite treats an empty file as a new database
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
    except sqlite3.Error:
        return "unopenable"
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        return "not_a_database" if "not a database" in str(exc) else "malformed"
    finally:
        db.close()
    return None if rows == [("ok",)] else "quick_check_failed"


def check_outbox(paths: Paths, path: Path) -> Quarantined | None:
    """Quarantine a damaged outbox database (with its WAL/SHM) so a fresh one can be created."""
    reason = sqlite_damage(path)
    if reason is None:
        return None
    companions = [Path(f"{path}{suffix}") for suffix in SQLITE_COMPANIONS]
    return quarantine(paths, "outbox", [path, *companions], path.name, reason)


def journal_reason(exc: BaseException) -> str:
    """A short code for why a journal could not be read or finalised (no content, no paths)."""
    code = getattr(exc, "code", None)
    return str(code) if isinstance(code, str) else exc.__class__.__name__
