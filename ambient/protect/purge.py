"""``ambient purge --older-than 30d``: remove what is past the retention policy, and say so in the audit.

What goes, once older than the cutoff:

- closed encounter journals (audio, words, metadata), by the time they were closed;
- outbox rows that are finished (``delivered`` or ``dead``), by their last update — pending rows are
  a note not yet delivered and are never purged;
- batch outputs (transcripts and notes) in known batch folders and behind remembered fsspec URLs
  (``ambient batch --out s3://…``), by their done marker's time; the marker stays (hashes only, no
  text) so a later batch run does not redo the encounter;
- drafts in the local inbox, by file time (the EHR had that long to take them).

Interrupted journals (never finalised) are kept whatever their age: they hold a note that was never
delivered. Each removed thing is listed with a content hash (sha256 of its bytes as stored, so no
key is needed) in ``<data dir>/protect/purges/<time>.json``, and one ``data.purged`` audit entry
carries the counts and the hash of that list. Neither holds any content. ``--dry-run`` lists the
same without removing anything or writing the audit entry.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ambient.atomic import atomic_write_text, ensure_dir
from ambient.config import Paths, Settings
from ambient.ehr.audit import AuditLog
from ambient.errors import UsageError
from ambient.protect.outputs import batch_dirs, batch_urls
from ambient.streaming.journal import CLOSED, META, encounters_dir

STATE_DIR = ".ambient"  # ambient.batch.runner.STATE_DIR (not imported: it pulls in the whole pipeline)
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_INBOX_PATTERNS = ("*.note.md", "*.note.json", "*.fhir.json")


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``2w``, ``90m``, ``45s``."""
    match = _AGE.match(text)
    if not match:
        raise UsageError(f"age {text!r} is not like 30d, 12h, 2w, 90m or 45s")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def _hash_path(path: Path) -> str:
    """sha256 over a file, or over a folder's files (names and bytes, sorted): what was removed."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(str(file.relative_to(path.parent)).encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def _time(text: object) -> datetime | None:
    try:
        stamp = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


@dataclass
class PurgePlan:
    cutoff: datetime
    journals: list[Path] = field(default_factory=list)
    outbox_ids: list[int] = field(default_factory=list)
    batch_folders: list[Path] = field(default_factory=list)
    batch_url_folders: list[tuple[str, str]] = field(default_factory=list)  # (run URL, folder name)
    inbox_files: list[Path] = field(default_factory=list)
    kept_interrupted: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "journals": len(self.journals),
            "outbox_rows": len(self.outbox_ids),
            "batch_outputs": len(self.batch_folders) + len(self.batch_url_folders),
            "inbox_files": len(self.inbox_files),
            "kept_interrupted": len(self.kept_interrupted),
        }


def plan_purge(
    paths: Paths, settings: Settings, older_than: timedelta, now: datetime | None = None
) -> PurgePlan:
    plan = PurgePlan(cutoff=(now or datetime.now(UTC)) - older_than)
    root = encounters_dir(paths)
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not (folder / META).is_file():
            continue
        if not (folder / CLOSED).exists():
            started = _time(json.loads((folder / META).read_text(encoding="utf-8")).get("started_at"))
            if started is not None and started < plan.cutoff:
                plan.kept_interrupted.append(folder.name)
            continue
        closed = _time(json.loads((folder / CLOSED).read_text(encoding="utf-8")).get("closed_at"))
        if closed is not None and closed < plan.cutoff:
            plan.journals.append(folder)
    db_path = paths.data_dir / "outbox.sqlite3"
    if db_path.exists():
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30.0)
        try:
            rows = db.execute(
                "SELECT id, updated_at FROM items WHERE state IN ('delivered', 'dead')"
            ).fetchall()
        finally:
            db.close()
        plan.outbox_ids = [int(i) for i, stamp in rows if (t := _time(stamp)) is not None and t < plan.cutoff]
    for out_dir in batch_dirs(paths, settings):
        for marker in sorted((out_dir / STATE_DIR / "done").glob("*.json")):
            try:
                done = json.loads(marker.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            finished = _time(done.get("finished_at"))
            folder = out_dir / str(done.get("folder", ""))
            if done.get("folder") and folder.is_dir() and finished is not None and finished < plan.cutoff:
                plan.batch_folders.append(folder)
    for url in batch_urls(paths, settings):
        _plan_url_outputs(plan, url)
    inbox = settings.inbox_dir(paths)
    if inbox.is_dir():
        for pattern in _INBOX_PATTERNS:
            for file in sorted(inbox.glob(pattern)):
                if datetime.fromtimestamp(file.stat().st_mtime, UTC) < plan.cutoff:
                    plan.inbox_files.append(file)
    return plan


def _plan_url_outputs(plan: PurgePlan, url: str) -> None:
    """As for a batch folder, through the run's store (a store that cannot be read now raises:
    the purge stops before removing anything, rather than skip PHI it was asked to remove)."""
    from ambient.batch.store import DONE_DIR, open_store

    store = open_store(url)
    for name in store.names(DONE_DIR, ".json"):
        done = store.read_marker(name[: -len(".json")])
        if done is None:
            continue
        finished = _time(done.get("finished_at"))
        folder = str(done.get("folder", ""))
        if folder and finished is not None and finished < plan.cutoff and store.is_dir(folder):
            plan.batch_url_folders.append((url, folder))


def _hash_url_folder(url: str, folder: str) -> str:
    """As :func:`_hash_path` for a folder, over the objects of an encounter folder behind a URL."""
    from ambient.batch.store import open_store

    store = open_store(url)
    digest = hashlib.sha256()
    for name in store.names(folder, "", hidden=True):
        digest.update(f"{folder}/{name}".encode() + b"\0")
        digest.update(hashlib.sha256(store.read(f"{folder}/{name}")).digest())
    return digest.hexdigest()


@dataclass(frozen=True)
class PurgeReport:
    plan: PurgePlan
    dry_run: bool
    manifest: Path | None
    manifest_sha256: str


def purge(
    paths: Paths, settings: Settings, older_than: timedelta, *, dry_run: bool = False, label: str = ""
) -> PurgeReport:
    plan = plan_purge(paths, settings, older_than)
    removed: list[dict[str, str]] = []
    for folder in plan.journals:
        removed.append({"what": "journal", "id": folder.name, "sha256": _hash_path(folder)})
    for folder in plan.batch_folders:
        removed.append({"what": "batch_output", "id": folder.name, "sha256": _hash_path(folder)})
    for url, name in plan.batch_url_folders:
        removed.append({"what": "batch_output", "id": name, "sha256": _hash_url_folder(url, name)})
    for file in plan.inbox_files:
        removed.append({"what": "inbox_file", "id": file.name, "sha256": _hash_path(file)})
    db_path = paths.data_dir / "outbox.sqlite3"
    if plan.outbox_ids:
        db = sqlite3.connect(db_path, timeout=30.0, isolation_level=None)
        try:
            marks = ",".join("?" * len(plan.outbox_ids))
            for item_id, note_sha in db.execute(
                f"SELECT id, note_sha256 FROM items WHERE id IN ({marks})", plan.outbox_ids
            ).fetchall():
                removed.append({"what": "outbox_row", "id": str(item_id), "sha256": str(note_sha)})
            if not dry_run:
                db.execute(
                    f"DELETE FROM items WHERE id IN ({marks}) AND state IN ('delivered', 'dead')",
                    plan.outbox_ids,
                )
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # deleted rows leave the WAL too
                db.execute("VACUUM")  # and the free pages of the database file
        finally:
            db.close()
    body = json.dumps(
        {"cutoff": plan.cutoff.isoformat(timespec="seconds"), "removed": removed}, indent=1, sort_keys=True
    )
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    if dry_run:
        return PurgeReport(plan, True, None, digest)
    for folder in (*plan.journals, *plan.batch_folders):
        shutil.rmtree(folder)
    if plan.batch_url_folders:
        from ambient.batch.store import open_store

        for url, name in plan.batch_url_folders:
            open_store(url).remove_folder(name)
    for file in plan.inbox_files:
        file.unlink(missing_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    manifest = atomic_write_text(
        ensure_dir(paths.data_dir / "protect" / "purges") / f"{stamp}.json", body + "\n"
    )
    counts = plan.counts()
    AuditLog.for_paths(paths).record(
        "data.purged",
        ids={
            "older_than": label or f"{int(older_than.total_seconds())}s",
            **{k: str(v) for k, v in counts.items()},
        },
        outputs={"manifest": digest},
    )
    return PurgeReport(plan, False, manifest, digest)
