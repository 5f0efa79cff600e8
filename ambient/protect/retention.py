"""Retention: an encounter's audio goes once its note is delivered and accepted everywhere.

Why the audio and not the words: the committed words are the transcript the note was drafted from
(kept until ``ambient purge`` as the note's evidence), while the recording is the largest and most
identifying thing we hold and is not needed once the note has landed. "Delivered and accepted"
means: the journal is closed (the note is in the local inbox) and every outbox row for the
encounter is ``delivered`` (an EHR that refused the note leaves a ``dead`` row: the audio stays,
because the note may have to be redone). With no delivery targets, the inbox file is the delivery.

``[retention] keep_audio = true`` turns this off. Each deletion leaves ``audio_released.json`` in
the journal folder (time and the PCM's sha256) and an ``audio.deleted`` audit entry: ids and
hashes, never content.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from ambient.atomic import atomic_write_text
from ambient.config import Paths, Settings
from ambient.ehr.audit import AuditLog
from ambient.errors import AmbientError
from ambient.protect.sealed import Protector
from ambient.streaming.journal import AUDIO, AUDIO_RELEASED, CLOSED, META, encounters_dir, read_pcm


def outbox_states(paths: Paths, encounter_id: str) -> list[str]:
    """States of the encounter's outbox rows (read-only; no key needed: states are in clear)."""
    db_path = paths.data_dir / "outbox.sqlite3"
    if not db_path.exists():
        return []
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30.0)
    try:
        rows = db.execute("SELECT state FROM items WHERE encounter_id = ?", (encounter_id,)).fetchall()
    except sqlite3.DatabaseError:
        return ["unknown"]  # an unreadable outbox proves nothing was delivered: keep the audio
    finally:
        db.close()
    return [str(r[0]) for r in rows]


def releasable(paths: Paths, folder: Path) -> bool:
    if not (folder / META).is_file() or not (folder / AUDIO).exists() or not (folder / CLOSED).exists():
        return False
    encounter_id = str(json.loads((folder / META).read_text(encoding="utf-8"))["encounter_id"])
    return all(state == "delivered" for state in outbox_states(paths, encounter_id))


def release_delivered_audio(
    paths: Paths, settings: Settings, encounter_ids: Iterable[str] | None = None
) -> list[str]:
    """Delete the audio of every (or the given) delivered encounter; returns their ids."""
    if settings.retention.keep_audio:
        return []
    root = encounters_dir(paths)
    if not root.is_dir():
        return []
    folders = [root / e for e in encounter_ids] if encounter_ids is not None else sorted(root.iterdir())
    released: list[str] = []
    audit = AuditLog.for_paths(paths)
    protector = Protector.for_paths(paths, settings)
    for folder in folders:
        try:
            if not folder.is_dir() or not releasable(paths, folder):
                continue
            try:
                pcm = read_pcm(folder, protector)
                sha, size = hashlib.sha256(pcm).hexdigest(), len(pcm)
            except AmbientError:
                sha, size = "", 0  # a damaged recording cannot be hashed; it is deleted all the same
            record = {
                "released_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "audio_sha256": sha,
                "audio_bytes": size,  # the rebuilt transcript keeps its duration and source hash
            }
            atomic_write_text(folder / AUDIO_RELEASED, json.dumps(record) + "\n")
            (folder / AUDIO).unlink(missing_ok=True)
        except (OSError, ValueError, KeyError, AmbientError):
            continue  # retention is housekeeping: it never fails the delivery that triggered it
        audit.record(
            "audio.deleted",
            ids={"encounter_id": folder.name, "reason": "delivered"},
            inputs={"audio": sha} if sha else None,
        )
        released.append(folder.name)
    return released
