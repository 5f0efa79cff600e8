"""The one place that writes and reads an encounter's batch outputs.

Batch, replay and diff all go through :func:`write_encounter` and :func:`read_encounter`, so a
change to how outputs are stored (sealing at rest, another layout) is made here once and every
reader follows. Each file is written atomically (temp + rename), so a worker killed mid-write
leaves only a ``.NAME.*.tmp`` that the next run tidies, never half a note.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ambient.atomic import ensure_dir
from ambient.errors import InputError
from ambient.notes.render import load_note_file, note_to_json, note_to_markdown
from ambient.protect.outputs import write_output
from ambient.protect.sealed import Protector
from ambient.transcript.serialise import load_transcript_file, render
from ambient.types import NoteDraft, Transcript

TRANSCRIPT_JSON = "transcript.json"
NOTE_JSON = "note.json"


@dataclass(frozen=True)
class EncounterOutputs:
    """What a finished encounter folder holds, read back as typed objects."""

    folder: Path
    transcript: Transcript
    note: NoteDraft


def write_encounter(
    folder: Path, transcript: Transcript, note: NoteDraft, *, protector: Protector, plain: bool
) -> None:
    """Write transcript (JSON, text) and note (JSON, Markdown) into ``folder``, each atomically.

    They hold PHI, so each is sealed (AES-GCM, ``ambient.protect``) unless the user asked for plain
    files (``--plain``, ``[protect] plain_batch_outputs``); readers below accept either.
    """
    ensure_dir(folder)
    outputs = {
        TRANSCRIPT_JSON: render(transcript, "json") + "\n",
        "transcript.txt": render(transcript, "text") + "\n",
        NOTE_JSON: json.dumps(note_to_json(note), indent=2, ensure_ascii=False) + "\n",
        "note.md": note_to_markdown(note),
    }
    for name, text in outputs.items():
        write_output(protector, folder / name, text, plain)


def read_transcript(folder: Path) -> Transcript:
    """The stored transcript alone: replay re-drafts from it when the audio is gone."""
    path = folder / TRANSCRIPT_JSON
    if not path.is_file():
        raise InputError(f"{path} is missing; run `ambient batch` again for this encounter")
    return load_transcript_file(path)


def read_encounter(folder: Path) -> EncounterOutputs:
    """Transcript and note of one finished encounter, or an error naming the missing file."""
    note_path = folder / NOTE_JSON
    if not note_path.is_file():
        raise InputError(f"{note_path} is missing; run `ambient batch` again for this encounter")
    return EncounterOutputs(folder, read_transcript(folder), load_note_file(note_path))
