"""Read a note JSON file (``ambient note --format json``) back into a NoteDraft.

TODO(merge): ``ambient.notes.render.load_note_file`` / ``note_from_json`` arrive with the delivery
branch; replace :func:`load_note_file` here with that one and delete this module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ambient.errors import InputError
from ambient.notes.render import NOTE_FORMAT
from ambient.types import (
    EvidenceSpan,
    ModelRef,
    NoteDraft,
    NoteSection,
    NoteSentence,
    Provenance,
    TemplateRef,
)


def _note_from_dict(data: Any, source: str) -> NoteDraft:
    if not isinstance(data, dict) or data.get("format") != NOTE_FORMAT:
        raise InputError(f"{source} is not an {NOTE_FORMAT} file; make one with `ambient note --format json`")
    try:
        prov = data["provenance"]
        model = prov.get("asr_model")
        sections = tuple(
            NoteSection(
                key=s["key"],
                title=s["title"],
                sentences=tuple(
                    NoteSentence(
                        text=t["text"],
                        evidence=tuple(EvidenceSpan(**e) for e in t.get("evidence", ())),
                        speaker=t.get("speaker"),
                    )
                    for t in s["sentences"]
                ),
            )
            for s in data["sections"]
        )
        return NoteDraft(
            encounter_id=data["encounter_id"],
            title=data["title"],
            sections=sections,
            provenance=Provenance(
                pipeline_version=prov["pipeline_version"],
                drafter=prov["drafter"],
                template=TemplateRef(**prov["template"]),
                asr_model=ModelRef(**model) if model else None,
                input_sha256=prov["input_sha256"],
                transcript_sha256=prov["transcript_sha256"],
                created_at=prov["created_at"],
            ),
            notices=tuple(data.get("notices", ())),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise InputError(
            f"{source} is missing or has a malformed field ({exc}); re-export the note"
        ) from None


def load_note_file(path: Path) -> NoteDraft:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(
            f"note file {path} does not exist; give a file from `ambient note --format json`"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read note file {path}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path} is not valid JSON ({exc}); give a file from `ambient note --format json`"
        ) from None
    return _note_from_dict(data, str(path))
