"""Local inbox sink: the note as Markdown, JSON and FHIR JSON in a folder an EHR (or a person) watches.

Files are named by encounter id, so delivering the same encounter again replaces its draft
instead of adding a second one, and each file appears whole or not at all (see ``ambient.atomic``).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from ambient.atomic import atomic_write_text, ensure_dir
from ambient.ehr.options import DeliveryOptions
from ambient.notes.render import note_sha256, note_to_json, note_to_markdown
from ambient.types import DeliveryReceipt, EncounterContext, NoteDraft

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(encounter_id: str) -> str:
    """A file name from an encounter id that cannot escape the inbox folder."""
    name = _UNSAFE.sub("_", encounter_id).strip("._")
    return name or "encounter"


class InboxSink:
    name = "inbox"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def deliver(self, note: NoteDraft, context: EncounterContext | None = None) -> DeliveryReceipt:
        """Write the three files; ``context`` fills the FHIR references (encounter id alone otherwise)."""
        from ambient.ehr.fhir_resources import document_reference

        ensure_dir(self.folder)
        stem = safe_name(note.encounter_id)
        body = note_to_json(note)
        json_path = atomic_write_text(
            self.folder / f"{stem}.note.json", json.dumps(body, indent=2, ensure_ascii=False) + "\n"
        )
        md_path = atomic_write_text(self.folder / f"{stem}.note.md", note_to_markdown(note))
        resource = document_reference(note, context or EncounterContext(encounter_id=note.encounter_id))
        fhir_path = atomic_write_text(
            self.folder / f"{stem}.fhir.json", json.dumps(resource, indent=2, ensure_ascii=False) + "\n"
        )
        return DeliveryReceipt(
            sink=self.name,
            encounter_id=note.encounter_id,
            note_sha256=note_sha256(note),
            locations=(str(md_path), str(json_path), str(fhir_path)),
            delivered_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )


def open_sink(rest: str, options: DeliveryOptions) -> InboxSink:
    """``inbox:DIR``: the folder is created on first delivery."""
    return InboxSink(Path(rest).expanduser())
