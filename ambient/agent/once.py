"""One encounter, one note: every attempt to finalise a journal drafts the *same* note.

Why: finalising is retried after a crash (``kill -9`` between the inbox write, the outbox
enqueue and closing the journal). A note's sha256 is its identity in the outbox (one row per
note and target), in FHIR (conditional create on a per-draft identifier) and in HL7 (TXA-12); a
redraft that differs only in its ``created_at`` would be a *second* note, delivered twice. So
the first attempt fixes the note's date in ``drafted_at.json`` in the journal folder (a time,
no PHI), and every later attempt reuses it and skips re-transcribing the audio tail: the
committed words were final when the first draft began. With the rule-based drafters the same
words and date give the same note, so the retry's enqueue is a no-op and the inbox file is
rewritten with identical bytes. (An LLM drafter is not deterministic: a retry may still differ.)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from ambient.atomic import atomic_write_text

STAMP = "drafted_at.json"


def drafted_before(folder: Path) -> bool:
    """A draft of this journal has begun before: its words are final, its date is fixed."""
    return (folder / STAMP).is_file()


def draft_time(folder: Path) -> datetime:
    """The note's ``created_at``: fixed (atomically, durably) at the first attempt, reused after."""
    path = folder / STAMP
    try:
        return datetime.fromisoformat(json.loads(path.read_text(encoding="utf-8"))["created_at"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # absent (the first attempt) or torn by a crash mid-write: set it now
    now = datetime.now(UTC).replace(microsecond=0)
    atomic_write_text(path, json.dumps({"created_at": now.isoformat()}))
    return now
