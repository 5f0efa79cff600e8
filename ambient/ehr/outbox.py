"""Durable outbox: a SQLite (WAL) queue between drafting and the sinks.

Why a queue and not a direct call: the EHR is down more often than the microphone, and a note that
was drafted must not be lost, nor filed twice. Each (note sha256, canonical target) pair is one
row, keyed so enqueueing the same note again is a no-op. A row moves::

    pending ──claim──▶ sending ──receipt──▶ delivered
       ▲                 │ retryable error (attempts < max): back off with jitter
       └─────────────────┘
                         │ permanent error, or attempts exhausted ──▶ dead (reason kept)

``sending`` carries a lease: if the process dies mid-delivery the lease runs out and another
drain picks the row up again. Resending is safe because every sink is idempotent for the same
note (FHIR conditional create, HL7 TXA-12/MSH-10, inbox files named by encounter).

The database holds the note (it must, to resend it) and lives under the data dir with the rest of
the PHI; the outbox *log* (``<log dir>/outbox.log``) and the audit trail carry ids and hashes only.
The note and context columns are sealed (:mod:`ambient.protect.sealed`, bound to the row's key);
ids, hashes, targets and states stay in clear so ``ambient outbox list`` needs no key. Rows written
before sealing existed are still read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from ambient.atomic import ensure_dir
from ambient.config import Paths
from ambient.ehr import lineage
from ambient.ehr.audit import AuditLog
from ambient.ehr.context import context_from_dict, context_to_dict
from ambient.ehr.errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError, short_reason
from ambient.ehr.options import DeliveryOptions
from ambient.ehr.sink import Sink, canonical_target, open_sink
from ambient.errors import AmbientError
from ambient.logs import Field, append_event
from ambient.notes.render import note_from_json, note_sha256, note_to_json
from ambient.protect.sealed import Protector
from ambient.types import DeliveryReceipt, EncounterContext, NoteDraft

SCHEMA_VERSION = 1
LEASE_S = 120.0
STATES = ("pending", "sending", "delivered", "dead")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    target TEXT NOT NULL,
    encounter_id TEXT NOT NULL,
    note_sha256 TEXT NOT NULL,
    note_json TEXT NOT NULL,
    context_json TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'delivered', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    lease_until REAL,
    last_error TEXT,
    receipt_json TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_due ON items (state, next_attempt_at);
"""


def idempotency_key(note_sha: str, target: str) -> str:
    return hashlib.sha256(f"{note_sha}\n{target}".encode()).hexdigest()


@dataclass(frozen=True)
class OutboxItem:
    id: int
    key: str
    target: str
    encounter_id: str
    note_sha256: str
    state: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    receipt: DeliveryReceipt | None
    created_at: str
    updated_at: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> OutboxItem:
        receipt = None
        if row["receipt_json"]:
            data = json.loads(row["receipt_json"])
            receipt = DeliveryReceipt(**{**data, "locations": tuple(data["locations"])})
        return cls(
            id=row["id"],
            key=row["key"],
            target=row["target"],
            encounter_id=row["encounter_id"],
            note_sha256=row["note_sha256"],
            state=row["state"],
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            last_error=row["last_error"],
            receipt=receipt,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


def _peer_wait_s(error: RetryableDeliveryError, options: DeliveryOptions) -> float:
    """What the peer asked for (Retry-After), never longer than our own longest backoff."""
    return min(error.retry_after_s or 0.0, options.backoff_max_s)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Outbox:
    def __init__(
        self,
        path: Path,
        options: DeliveryOptions | None = None,
        *,
        audit: AuditLog | None = None,
        log_path: Path | None = None,
        sink_opener: Callable[[str, DeliveryOptions], Sink] = open_sink,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        protector: Protector | None = None,
    ) -> None:
        self.path = path
        self.protector = protector or Protector.for_paths()
        self.options = options or DeliveryOptions()
        self.audit = audit
        self.log_path = log_path
        self.sink_opener = sink_opener
        self.clock = clock
        self.rng = rng
        # Sinks live as long as the outbox: a FHIR client keeps its connection pool (and its TLS
        # context, which costs tens of ms to build) from one drain to the next.
        self._sinks: dict[str, Sink] = {}
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        ensure_dir(path.parent)
        with contextlib.suppress(OSError):  # created 0600 before SQLite does (its -wal/-shm follow)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        try:
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise AmbientError(
                        f"outbox {path} was written by a newer ambient (schema {version}); upgrade ambient"
                    )
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise AmbientError(
                f"outbox {path} is not a usable SQLite database ({exc}); move it aside"
            ) from None

    @classmethod
    def for_paths(cls, paths: Paths, options: DeliveryOptions | None = None) -> Outbox:
        from ambient.quarantine import check_outbox

        check_outbox(paths, paths.data_dir / "outbox.sqlite3")  # a damaged one moves aside, reported
        return cls(
            paths.data_dir / "outbox.sqlite3",
            options,
            audit=AuditLog.for_paths(paths),
            log_path=paths.log_dir / "outbox.log",
            protector=Protector.for_paths(paths),
        )

    def close(self) -> None:
        for sink in self._sinks.values():
            close = getattr(sink, "close", None)
            if callable(close):
                close()
        self._sinks.clear()
        with self._lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, kept open for the outbox's life.

        Opening and closing per operation cost ~10 ms each: closing the last connection to a WAL
        database checkpoints and deletes the WAL. Statements run in autocommit mode; each state
        change is one UPDATE, so it is atomic on its own.
        """
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA synchronous=FULL")  # a receipt or an enqueue must survive power loss
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        yield db

    def _log(self, event: str, item: OutboxItem | sqlite3.Row, **extra: Field) -> None:
        """One JSON line per state change: ids, hashes, counts and error codes, never note text."""
        if self.log_path is None:
            return
        append_event(  # through the PHI guard of ambient/logs.py, like every other log
            self.log_path,
            event,
            item=item["id"] if isinstance(item, sqlite3.Row) else item.id,
            target=item["target"] if isinstance(item, sqlite3.Row) else item.target,
            note_sha256=item["note_sha256"] if isinstance(item, sqlite3.Row) else item.note_sha256,
            **extra,
        )

    # ---- queue operations -------------------------------------------------------------------

    def enqueue(self, note: NoteDraft, context: EncounterContext, target: str) -> tuple[OutboxItem, bool]:
        """Queue (note, target); returns the item and whether it was new. Same pair twice: one row."""
        canonical = canonical_target(target)
        sha = note_sha256(note)
        key = idempotency_key(sha, canonical)
        now = _now_iso()
        with self._connect() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO items (key, target, encounter_id, note_sha256, note_json, "
                "context_json, state, attempts, next_attempt_at, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
                (
                    key,
                    canonical,
                    note.encounter_id,
                    sha,
                    self.protector.seal_text(
                        json.dumps(note_to_json(note), ensure_ascii=False), "outbox.note", key
                    ),
                    self.protector.seal_text(
                        json.dumps(context_to_dict(context), ensure_ascii=False), "outbox.context", key
                    ),
                    self.clock(),
                    now,
                    now,
                ),
            )
            created = cursor.rowcount == 1
            row = db.execute("SELECT * FROM items WHERE key = ?", (key,)).fetchone()
        item = self._item(row)
        if created:
            self._log("queued", item)
            if self.audit is not None:
                lineage.note_queued(self.audit, note, canonical, item.id)
        return item, created

    def _item(self, row: sqlite3.Row) -> OutboxItem:
        """A row as an item, its failure reason opened: a peer's error text may name the patient."""
        item = OutboxItem.from_row(row)
        if not item.last_error:
            return item
        try:
            where = f"outbox item {item.id} in {self.path}"
            reason = self.protector.open_text(item.last_error, "outbox.error", where=where, context=item.key)
        except AmbientError:  # the key that sealed it is gone: the row itself stays usable
            reason = "(reason sealed with a data key that is not available)"
        return replace(item, last_error=reason)

    def _sealed_reason(self, reason: str, key: str) -> str:
        return self.protector.seal_text(reason, "outbox.error", key)

    def get(self, item_id: int) -> OutboxItem | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
        return self._item(row) if row else None

    def items(self, states: Iterable[str] = STATES) -> list[OutboxItem]:
        wanted = tuple(states)
        marks = ",".join("?" * len(wanted))
        with self._connect() as db:
            rows = db.execute(f"SELECT * FROM items WHERE state IN ({marks}) ORDER BY id", wanted).fetchall()
        return [self._item(r) for r in rows]

    def retry(self, ids: Iterable[int] = (), all_dead: bool = False) -> int:
        """Dead (or waiting) items become due now, with a fresh attempt budget."""
        now, stamp = self.clock(), _now_iso()
        with self._connect() as db:
            if all_dead:
                cursor = db.execute(
                    "UPDATE items SET state='pending', attempts=0, next_attempt_at=?, updated_at=? "
                    "WHERE state='dead'",
                    (now, stamp),
                )
                return cursor.rowcount
            count = 0
            for item_id in ids:
                cursor = db.execute(
                    "UPDATE items SET state='pending', attempts=0, next_attempt_at=?, updated_at=? "
                    "WHERE id=? AND state IN ('dead', 'pending')",
                    (now, stamp, item_id),
                )
                count += cursor.rowcount
            return count

    def purge(self, states: Iterable[str] = ("delivered",)) -> int:
        """Forget finished items (the audit trail keeps their history, without the note)."""
        wanted = tuple(s for s in states if s in {"delivered", "dead"})
        if not wanted:
            return 0
        marks = ",".join("?" * len(wanted))
        with self._connect() as db:
            return db.execute(f"DELETE FROM items WHERE state IN ({marks})", wanted).rowcount

    # ---- delivery ---------------------------------------------------------------------------

    def backoff_s(self, attempts: int) -> float:
        """Exponential backoff with jitter: half the step fixed, half random, capped."""
        step = min(self.options.backoff_max_s, self.options.backoff_base_s * 2.0 ** max(attempts - 1, 0))
        return step / 2 + self.rng() * step / 2

    def _claim(self, db: sqlite3.Connection, item_id: int, now: float) -> sqlite3.Row | None:
        cursor = db.execute(
            "UPDATE items SET state='sending', lease_until=? WHERE id=? AND "
            "((state='pending' AND next_attempt_at <= ?) OR (state='sending' AND lease_until < ?))",
            (now + LEASE_S, item_id, now, now),
        )
        if cursor.rowcount != 1:
            return None
        row: sqlite3.Row = db.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
        return row

    def due_ids(self, only: Iterable[int] | None = None) -> list[int]:
        now = self.clock()
        with self._connect() as db:
            rows = db.execute(
                "SELECT id FROM items WHERE (state='pending' AND next_attempt_at <= ?) "
                "OR (state='sending' AND lease_until < ?) ORDER BY next_attempt_at, id",
                (now, now),
            ).fetchall()
        wanted = set(only) if only is not None else None
        return [r["id"] for r in rows if wanted is None or r["id"] in wanted]

    def drain(self, only: Iterable[int] | None = None) -> list[OutboxItem]:
        """One pass: try every due item once. Returns the items tried, in their new state."""
        tried: list[OutboxItem] = []
        for item_id in self.due_ids(only):
            with self._connect() as db:
                row = self._claim(db, item_id, self.clock())
            if row is not None:
                tried.append(self._attempt(row, self._sinks))
        return tried

    def _attempt(self, row: sqlite3.Row, sinks: dict[str, Sink]) -> OutboxItem:
        target = row["target"]
        attempts = row["attempts"] + 1
        receipt: DeliveryReceipt | None = None
        error: DeliveryError | None = None
        try:
            where = f"outbox item {row['id']} in {self.path}"
            note_text = self.protector.open_text(
                row["note_json"], "outbox.note", where=where, context=row["key"]
            )
            context_text = self.protector.open_text(
                row["context_json"], "outbox.context", where=where, context=row["key"]
            )
            note = note_from_json(json.loads(note_text), f"outbox item {row['id']}")
            context = context_from_dict(json.loads(context_text), f"outbox item {row['id']}")
            if target not in sinks:
                sinks[target] = self.sink_opener(target, self.options)
            receipt = sinks[target].deliver(note, context)
        except DeliveryError as exc:
            error = exc
        except AmbientError as exc:  # a bad stored note/context or target: retrying will not help
            error = PermanentDeliveryError(str(exc))
        stamp = _now_iso()
        with self._connect() as db:
            if receipt is not None:
                db.execute(
                    "UPDATE items SET state='delivered', attempts=?, lease_until=NULL, last_error=NULL, "
                    "receipt_json=?, updated_at=? WHERE id=?",
                    (
                        attempts,
                        json.dumps(receipt.__dict__ | {"locations": list(receipt.locations)}),
                        stamp,
                        row["id"],
                    ),
                )
            elif isinstance(error, RetryableDeliveryError) and attempts < self.options.max_attempts:
                db.execute(
                    "UPDATE items SET state='pending', attempts=?, lease_until=NULL, last_error=?, "
                    "next_attempt_at=?, updated_at=? WHERE id=?",
                    (
                        attempts,
                        self._sealed_reason(short_reason(str(error)), row["key"]),
                        self.clock() + max(self.backoff_s(attempts), _peer_wait_s(error, self.options)),
                        stamp,
                        row["id"],
                    ),
                )
            else:
                assert error is not None
                reason = short_reason(str(error))
                if isinstance(error, RetryableDeliveryError):
                    reason = f"gave up after {attempts} attempts; last: {reason}"
                db.execute(
                    "UPDATE items SET state='dead', attempts=?, lease_until=NULL, last_error=?, updated_at=? "
                    "WHERE id=?",
                    (attempts, self._sealed_reason(reason, row["key"]), stamp, row["id"]),
                )
            new = self._item(db.execute("SELECT * FROM items WHERE id = ?", (row["id"],)).fetchone())
        code = error.code if error is not None else None
        self._log(
            {"delivered": "delivered", "pending": "retry_scheduled", "dead": "dead_lettered"}[new.state],
            new,
            attempts=attempts,
            error_code=code,
        )
        if self.audit is not None:
            if receipt is not None:
                lineage.note_delivered(self.audit, receipt, target, new.id)
                if receipt.sink == "editor":  # the clinician's editor took it: lineage ends there
                    editor = receipt.locations[0].split("?", 1)[0] if receipt.locations else "editor"
                    lineage.note_accepted_in_editor(
                        self.audit,
                        new.encounter_id,
                        new.note_sha256,
                        editor.split(":")[1],
                        receipt.note_sha256,
                    )
            elif new.state == "dead":
                lineage.note_dead_lettered(
                    self.audit, new.encounter_id, new.note_sha256, target, new.id, code or "AMB-E602"
                )
        return new

    def drain_until_settled(
        self,
        ids: Iterable[int] | None = None,
        timeout_s: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> list[OutboxItem]:
        """Drain repeatedly until the given items (or all) are delivered/dead, or ``timeout_s`` passes.

        With ``timeout_s=0`` this is a single pass. Waiting sleeps until the next item is due, so a
        long backoff is not spun on; the loop is bounded by the timeout.
        """
        wanted = list(ids) if ids is not None else None
        deadline = self.clock() + timeout_s
        while True:
            self.drain(wanted)
            open_items = [
                i for i in self.items(("pending", "sending")) if wanted is None or i.id in set(wanted)
            ]
            if not open_items or self.clock() >= deadline:
                return self.items() if wanted is None else [i for i in self.items() if i.id in set(wanted)]
            next_due = min(i.next_attempt_at for i in open_items)
            sleep(max(0.05, min(next_due - self.clock(), deadline - self.clock(), 5.0)))
