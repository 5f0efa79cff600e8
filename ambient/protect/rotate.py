"""``ambient keys rotate``: a new data key, everything re-sealed under it, then the old key retired.

Order matters for "interruptible and re-runnable without data loss":

1. the new key is added and made active; the old ones are marked ``retiring`` but kept;
2. every sealed thing is re-sealed under the new key, one unit at a time, each replaced
   atomically (a journal file, an outbox field with a compare-and-set UPDATE, a batch file);
3. only when nothing under a retiring key is left are those keys removed.

A kill at any point leaves each unit readable under the old key or the new one, and both keys
still exist; running the command again finds the retiring keys and carries on from step 2. A
journal still being written (an encounter in progress) is not rewritten under its writer: it is
counted as remaining, the old key stays, and the next run after the encounter ends finishes.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ambient.atomic import atomic_write_bytes
from ambient.config import Paths, Settings
from ambient.ehr.audit import AuditLog
from ambient.protect import journal as sealed_journal
from ambient.protect.keys import key_store
from ambient.protect.outputs import KINDS, batch_dirs, batch_urls, kind_of, kind_of_name, output_files
from ambient.protect.sealed import Protector, field_key_id
from ambient.streaming.journal import CLOSED, META, encounters_dir

_FIELDS = (("note_json", "outbox.note"), ("context_json", "outbox.context"), ("last_error", "outbox.error"))


@dataclass(frozen=True)
class RotationReport:
    active_key: str
    started_new: bool
    retired: tuple[str, ...]
    journal_records: int
    outbox_fields: int
    batch_files: int
    open_journals: tuple[str, ...]  # encounters in progress: re-sealed by a later run

    @property
    def complete(self) -> bool:
        return not self.open_journals


def _reseal_file(protector: Protector, path: Path) -> bool:
    data = path.read_bytes()
    if not protector.needs_reseal(data):
        return False
    atomic_write_bytes(path, protector.reseal(data, kind_of(path), where=str(path)))
    return True


def _reseal_url_outputs(protector: Protector, url: str) -> int:
    """Batch outputs behind an fsspec URL, re-sealed object by object (each PUT whole).

    A store that cannot be read now (no credentials in this shell, the network down) raises, so the
    rotation stops before the old key is retired: those objects stay readable under it.
    """
    from ambient.batch.store import open_store

    store = open_store(url)
    count = 0
    for folder in store.folders():
        for name in KINDS:
            rel = f"{folder}/{name}"
            if not store.exists(rel):
                continue
            data = store.read(rel)
            if protector.needs_reseal(data):
                store.write(rel, protector.reseal(data, kind_of_name(name), where=store.join(rel)))
                count += 1
    return count


def _journals(paths: Paths, protector: Protector, active: str) -> tuple[int, int, list[str]]:
    records = files = 0
    still_open: list[str] = []
    root = encounters_dir(paths)
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not (folder / META).is_file():
            continue
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
        if meta.get("format") == sealed_journal.FORMAT:
            if not (folder / CLOSED).exists():
                if sealed_journal.key_ids(folder) - {active}:
                    still_open.append(folder.name)
                continue
            records += sealed_journal.reseal(folder, protector)
        recovered = folder / "transcript.json"  # `ambient listen --recover` output
        if recovered.is_file():
            files += _reseal_file(protector, recovered)
    return records, files, still_open


def _outbox(paths: Paths, protector: Protector, active: str) -> int:
    db_path = paths.data_dir / "outbox.sqlite3"
    if not db_path.exists():
        return 0
    db = sqlite3.connect(db_path, timeout=30.0, isolation_level=None)
    db.execute("PRAGMA busy_timeout=30000")
    count = 0
    try:
        rows = db.execute("SELECT id, key, note_json, context_json, last_error FROM items").fetchall()
        for item_id, key, *values in rows:
            for (column, kind), value in zip(_FIELDS, values, strict=True):
                if value is None:
                    continue  # no failure reason yet
                kid = field_key_id(value)
                if kid == active or (kid is None and not protector.seal_new):
                    continue  # current, or plain by choice ([protect] encrypt = false)
                where = f"outbox item {item_id} in {db_path}"
                text = protector.open_text(value, kind, where=where, context=key)
                sealed = protector.seal_text(text, kind, key)
                # compare-and-set: a row the outbox changed meanwhile is picked up by the next run
                count += db.execute(
                    f"UPDATE items SET {column} = ? WHERE id = ? AND {column} = ?", (sealed, item_id, value)
                ).rowcount
        if count:  # old copies (plain rows, or under the old key) must not linger in free pages
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.execute("VACUUM")
    finally:
        db.close()
    return count


def rotate(paths: Paths, settings: Settings) -> RotationReport:
    """Rotate (or finish an interrupted rotation); see the module docstring."""
    store = key_store(paths.config_dir, settings.protect.key_store)
    protector = Protector(store, seal_new=settings.protect.encrypt)
    keys = store.load()
    started_new = not keys.retiring
    active = store.begin_rotation() if started_new else store.active()
    records, files, still_open = _journals(paths, protector, active.key_id)
    fields = _outbox(paths, protector, active.key_id)
    for folder in batch_dirs(paths, settings):
        for path in output_files(folder):
            files += _reseal_file(protector, path)
    for url in batch_urls(paths, settings):
        files += _reseal_url_outputs(protector, url)
    retired: tuple[str, ...] = ()
    if not still_open:
        retired = tuple(k.key_id for k in store.load().retiring)
        store.retire(list(retired))
    AuditLog.for_paths(paths).record(
        "keys.rotated",
        ids={
            "active_key": active.key_id,
            "retired_keys": ",".join(retired) or "none",
            "journal_records": str(records),
            "outbox_fields": str(fields),
            "files": str(files),
            "open_journals": str(len(still_open)),
        },
    )
    return RotationReport(active.key_id, started_new, retired, records, fields, files, tuple(still_open))
