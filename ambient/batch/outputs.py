"""The one place that writes and reads an encounter's batch outputs.

Batch, replay and diff all go through :func:`write_encounter` and :func:`read_encounter`, so a
change to how outputs are stored (sealing at rest, another layout) is made here once and every
reader follows. Each file is written whole by its :class:`~ambient.batch.store.OutputStore`: temp +
rename in a local folder (a worker killed mid-write leaves only a ``.NAME.*.tmp`` that the next
run tidies, never half a note), one PUT per object behind an fsspec URL.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ambient.batch.store import OutputStore, is_url, open_store
from ambient.notes.render import note_from_bytes, note_to_json, note_to_markdown
from ambient.protect.outputs import kind_of_name
from ambient.protect.sealed import Protector
from ambient.transcript.serialise import render, transcript_from_bytes
from ambient.types import NoteDraft, Transcript

TRANSCRIPT_JSON = "transcript.json"
NOTE_JSON = "note.json"
OUTPUT_NAMES = (TRANSCRIPT_JSON, "transcript.txt", NOTE_JSON, "note.md")


@dataclass(frozen=True)
class EncounterOutputs:
    """What a finished encounter folder holds, read back as typed objects."""

    folder: str  # the folder's name under its run's output location
    transcript: Transcript
    note: NoteDraft


def write_encounter(
    store: OutputStore,
    folder: str,
    transcript: Transcript,
    note: NoteDraft,
    *,
    protector: Protector,
    plain: bool,
) -> None:
    """Write transcript (JSON, text) and note (JSON, Markdown) into ``folder``, each whole.

    They hold PHI, so each is sealed (AES-GCM, ``ambient.protect``) unless the user asked for plain
    files (``--plain``, ``[protect] plain_batch_outputs``); readers below accept either.
    """
    outputs = {
        TRANSCRIPT_JSON: render(transcript, "json") + "\n",
        "transcript.txt": render(transcript, "text") + "\n",
        NOTE_JSON: json.dumps(note_to_json(note), indent=2, ensure_ascii=False) + "\n",
        "note.md": note_to_markdown(note),
    }
    seal = not plain and protector.seal_new
    for name, text in outputs.items():
        data = text.encode("utf-8")
        store.write(f"{folder}/{name}", protector.seal(data, kind_of_name(name)) if seal else data)


def _split(location: str | os.PathLike[str]) -> tuple[OutputStore, str]:
    """An encounter folder's location (path or URL) as its run's store and its name there."""
    if not is_url(location):
        path = Path(location)
        return open_store(path.parent), path.name
    parent, _, name = os.fspath(location).rstrip("/").rpartition("/")
    return open_store(parent), name


def read_transcript(store: OutputStore | str | os.PathLike[str], folder: str = "") -> Transcript:
    """The stored transcript alone: replay re-drafts from it when the audio is gone.

    Given a store and a folder name, or one encounter folder's location (a path or a URL).
    """
    if not isinstance(store, OutputStore):
        store, folder = _split(store)
    rel = f"{folder}/{TRANSCRIPT_JSON}"
    return transcript_from_bytes(store.read(rel), store.join(rel))


def read_note(store: OutputStore, folder: str) -> NoteDraft:
    rel = f"{folder}/{NOTE_JSON}"
    return note_from_bytes(store.read(rel), store.join(rel))


def read_encounter(store: OutputStore | str | os.PathLike[str], folder: str = "") -> EncounterOutputs:
    """Transcript and note of one finished encounter, or an error naming the missing file."""
    if not isinstance(store, OutputStore):
        store, folder = _split(store)
    note = read_note(store, folder)
    return EncounterOutputs(folder, read_transcript(store, folder), note)
