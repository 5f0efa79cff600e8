"""Resuming an interrupted encounter after the agent restarts, instead of only finalising it.

A crash (or ``kill -9``, or a power cut) in the middle of a visit leaves an open journal. At the
next start the agent transcribes the journal's untranscribed tail *before its socket opens*, so
the committed transcript covers every journaled second. Then, with ``[agent] resume_window_s`` >
0, the encounter is held rather than finalised: a client that sends ``start`` (or ``resume``)
with the same ``encounter_id`` within the window continues it. Its audio is appended to the same
journal, its words continue the same time line (the new core starts at the journal's end and is
prompted with the words before it), and ``stop`` drafts one note from the whole encounter. An
encounter nobody resumes is finalised when the window closes, exactly as with a window of 0.

Why a window and not "resume whenever": a note must not wait forever on a device that never
comes back, and a resume after the note went out would have to replace a delivered draft.

The journal is reopened only after its torn tail is repaired: a kill can leave half a sample in
``audio.pcm`` (appending after it would shift every later sample by one byte) and half a line in
``words.jsonl`` (appending after it would glue the next committed words onto the broken line).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ambient.streaming.journal import (
    AUDIO,
    SEALED_FORMAT,
    EncounterJournal,
    Recovered,
    journal_format,
    read_journal,
)

_BYTES_PER_SAMPLE = 2


@dataclass(frozen=True)
class HeldEncounter:
    """An interrupted encounter waiting for its client, until ``deadline`` (monotonic seconds)."""

    recovered: Recovered
    deadline: float


class ResumeHold:
    """The interrupted encounters a client may still resume, by id."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._held: dict[str, HeldEncounter] = {}

    @property
    def enabled(self) -> bool:
        return self.window_s > 0

    def hold(self, recovered: Recovered, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._held[recovered.encounter_id] = HeldEncounter(recovered, now + self.window_s)

    def __contains__(self, encounter_id: object) -> bool:
        return encounter_id in self._held

    def ids(self) -> list[str]:
        return sorted(self._held)

    def take(self, encounter_id: str) -> Recovered | None:
        """The held encounter, no longer held (it is being resumed or finalised)."""
        held = self._held.pop(encounter_id, None)
        return None if held is None else held.recovered

    def expired(self, now: float | None = None) -> list[Recovered]:
        """Take every encounter whose window has closed."""
        now = time.monotonic() if now is None else now
        gone = [i for i, h in self._held.items() if h.deadline <= now]
        return [r for r in (self.take(i) for i in gone) if r is not None]

    def next_deadline(self) -> float | None:
        return min((h.deadline for h in self._held.values()), default=None)


def reopen_journal(folder: Path) -> tuple[EncounterJournal, Recovered]:
    """Repair a torn tail, then open the journal for appending; returns it and what it holds.

    A sealed journal (the default) is repaired by :class:`EncounterJournal` itself, which cuts a
    torn last record off; cutting bytes here would break its record boundaries. A plain (format 1)
    journal is cut to whole samples here, and its torn words line ends up a line of its own.
    """
    if journal_format(folder) != SEALED_FORMAT:
        audio = folder / AUDIO
        if audio.exists() and audio.stat().st_size % _BYTES_PER_SAMPLE:
            os.truncate(audio, audio.stat().st_size - audio.stat().st_size % _BYTES_PER_SAMPLE)
    return EncounterJournal(folder), read_journal(folder)
