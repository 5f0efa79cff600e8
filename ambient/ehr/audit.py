"""Append-only, hash-chained audit trail: what happened to each encounter, as ids and hashes only.

Each line of ``<data dir>/audit/audit.jsonl`` is one entry::

    {"seq": 7, "time": "...", "event": "note.delivered", "ids": {...}, "versions": {...},
     "inputs": {"name": sha256}, "outputs": {"name": sha256}, "prev": "<hash of entry 6>",
     "hash": "<sha256 of this entry without 'hash'>"}

Editing an entry breaks its own hash; removing or reordering entries breaks ``seq`` and the
``prev`` links; removing the newest entries is caught by ``audit.head``, a small file rewritten
atomically after every append with the last seq and hash. (An attacker who can rewrite both files
and recompute every hash defeats any local chain; ship the head hash off the machine for that.)

PHI never enters: ids are checked to have no whitespace, hashes to be sha256 hex, versions to be
one short line, so a note sentence or a patient name cannot be logged as an id by mistake. Writers
take an exclusive ``flock`` so the agent and a CLI command can append at the same time.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ambient import PIPELINE_VERSION
from ambient.atomic import atomic_write_text, ensure_dir
from ambient.config import Paths
from ambient.errors import AmbientError

EVENTS = frozenset(
    {
        "encounter.started",
        "encounter.stopped",
        "transcript.committed",
        "note.drafted",
        "note.queued",
        "note.delivered",
        "note.dead_lettered",
        "note.accepted_in_editor",
        "storage.quarantined",
        # data at rest (ambient/protect/): counts, key ids and hashes only
        "audio.deleted",
        "data.purged",
        "keys.rotated",
    }
)
GENESIS = "0" * 64
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ID = re.compile(r"^\S{1,512}$")
# Versions are written by code, not typed by people (e.g. a drafter name with its rule versions):
# one line of printable ASCII.
_VERSION = re.compile(r"^[\x20-\x7e]{1,256}$")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class AuditError(AmbientError):
    """The trail failed verification (or an entry was refused): exit 8, naming the entry."""

    exit_code = 8
    code = "AMB-E700"


def audit_dir(paths: Paths) -> Path:
    return paths.data_dir / "audit"


def _canonical(entry: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(_canonical(entry)).hexdigest()


def _ids(kind: str, values: Mapping[str, str] | None) -> dict[str, str]:
    pattern = _VERSION if kind == "version" else _ID
    out: dict[str, str] = {}
    for key, value in (values or {}).items():
        if not _KEY.match(key):
            raise AuditError(f"audit {kind} key {key!r} is not a plain lower-case name")
        if not isinstance(value, str) or not pattern.match(value):
            raise AuditError(f"audit {kind} '{key}' must be an id without spaces (no text, no names)")
        out[key] = value
    return out


def _hashes(kind: str, values: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (values or {}).items():
        if not _KEY.match(key) or not isinstance(value, str) or not _SHA256.match(value):
            raise AuditError(f"audit {kind} '{key}' must be a lower-case sha256 hex digest")
        out[key] = value
    return out


@dataclass(frozen=True)
class VerifyResult:
    entries: int
    head_seq: int | None
    warnings: tuple[str, ...] = ()


class AuditLog:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "audit.jsonl"
        self.head_path = folder / "audit.head"
        self.lock_path = folder / "audit.lock"

    @classmethod
    def for_paths(cls, paths: Paths) -> AuditLog:
        return cls(audit_dir(paths))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        ensure_dir(self.folder)
        with self.lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _last(self) -> dict[str, Any] | None:
        """The newest entry, read from the end of the file (the log can grow for years)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return None
        with self.path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            block = 4096
            data = b""
            while True:
                start = max(0, size - block)
                handle.seek(start)
                data = handle.read(size - start)
                lines = data.rstrip(b"\n").split(b"\n")
                if len(lines) > 1 or start == 0:
                    last: dict[str, Any] = json.loads(lines[-1])
                    return last
                block *= 4

    def record(
        self,
        event: str,
        *,
        ids: Mapping[str, str] | None = None,
        versions: Mapping[str, str] | None = None,
        inputs: Mapping[str, str] | None = None,
        outputs: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        if event not in EVENTS:
            raise AuditError(f"unknown audit event {event!r}; known: {', '.join(sorted(EVENTS))}")
        body: dict[str, Any] = {
            "event": event,
            "ids": _ids("id", ids),
            "versions": {"pipeline": PIPELINE_VERSION, **_ids("version", versions)},
            "inputs": _hashes("input", inputs),
            "outputs": _hashes("output", outputs),
        }
        with self._locked():
            last = self._last()
            entry: dict[str, Any] = {
                "seq": (last["seq"] + 1) if last else 1,
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                **body,
                "prev": last["hash"] if last else GENESIS,
            }
            entry["hash"] = entry_hash(entry)
            line = json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n"
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            atomic_write_text(self.head_path, json.dumps({"seq": entry["seq"], "hash": entry["hash"]}) + "\n")
        return entry

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                raise AuditError(
                    f"{self.path} line {number} is not a JSON entry (damaged or edited)"
                ) from None
        return out

    def verify(self) -> VerifyResult:
        """Walk the chain; the first break raises :class:`AuditError` naming the line and seq."""
        entries = self.entries()
        prev = GENESIS
        for number, entry in enumerate(entries, start=1):
            where = f"{self.path} line {number} (seq {entry.get('seq')}, {entry.get('event')})"
            if entry.get("hash") != entry_hash(entry):
                raise AuditError(f"{where}: its hash does not match its content: the entry was edited")
            if entry.get("seq") != number:
                raise AuditError(
                    f"{where}: expected seq {number}: an entry before it was removed or reordered"
                )
            if entry.get("prev") != prev:
                raise AuditError(f"{where}: it does not follow the previous entry: removed or reordered")
            prev = entry["hash"]
        warnings: list[str] = []
        head_seq = None
        if self.head_path.exists():
            head = json.loads(self.head_path.read_text(encoding="utf-8"))
            head_seq = int(head["seq"])
            last_seq = len(entries)
            if head_seq > last_seq:
                raise AuditError(
                    f"{self.path}: the head records {head_seq} entries but the log has {last_seq}: "
                    f"entries {last_seq + 1}..{head_seq} were removed"
                )
            if head_seq == last_seq and entries and head["hash"] != entries[-1]["hash"]:
                raise AuditError(
                    f"{self.path}: the last entry (seq {last_seq}) differs from the recorded head"
                )
            if head_seq < last_seq:
                warnings.append(f"head is at seq {head_seq}, log at {last_seq} (a write was interrupted)")
        elif entries:
            raise AuditError(f"{self.head_path} is missing: cannot tell whether newer entries were removed")
        return VerifyResult(entries=len(entries), head_seq=head_seq, warnings=tuple(warnings))
