"""Render a :class:`~ambient.types.NoteDraft` as Markdown (for people) or JSON (for machines).

Markdown is what lands in the clinician's inbox or editor: the sections of the template, each
sentence followed by the time of its evidence so it can be found in the recording, and a footer
naming the models and template. JSON keeps every evidence span and the whole provenance block.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ambient.errors import InputError
from ambient.notes._note_json import NOTE_FORMAT
from ambient.notes._note_json import note_from_dict as _note_from_dict
from ambient.protect.sealed import open_if_sealed
from ambient.types import EvidenceSpan, NoteDraft, to_dict


def note_to_json(note: NoteDraft) -> dict[str, Any]:
    body = to_dict(note)
    return {"format": NOTE_FORMAT, **body}


def note_sha256(note: NoteDraft) -> str:
    """Hash of the canonical JSON: the note's identity in lineage and in delivery receipts."""
    canonical = json.dumps(note_to_json(note), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _clock(seconds: float) -> str:
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _evidence_label(spans: tuple[EvidenceSpan, ...]) -> str:
    if not spans:
        return ""
    start, end = spans[0].start_s, spans[-1].end_s
    ids = ",".join(str(s.segment_id) for s in spans)
    return f" <sub>[{_clock(start)}–{_clock(end)} · seg {ids}]</sub>"


def note_to_markdown(note: NoteDraft) -> str:
    prov = note.provenance
    lines = [
        f"# {note.title}",
        "",
        f"*DRAFT for clinician review* · encounter `{note.encounter_id}` · drafted {prov.created_at}",
        "",
    ]
    for notice in note.notices:
        lines += [f"> **Note:** {notice}", ""]
    for section in note.sections:
        lines += [f"## {section.title}", ""]
        if not section.sentences:
            lines += ["_Nothing recorded._", ""]
            continue
        for sentence in section.sentences:
            lines.append(f"- {sentence.text}{_evidence_label(sentence.evidence)}")
        lines.append("")
    model = prov.asr_model
    asr = f"{model.name} {model.version} (sha256 {model.sha256[:12]})" if model else "none (text input)"
    lines += [
        "---",
        f"<small>Template {prov.template.id} {prov.template.version} "
        f"(sha256 {prov.template.sha256[:12]}) · drafter {prov.drafter} · ASR {asr} · "
        f"{prov.pipeline_version} · input sha256 {prov.input_sha256[:12]}</small>",
        "",
    ]
    return "\n".join(lines)


def note_from_json(data: Any, source: str = "<note>") -> NoteDraft:
    """Inverse of :func:`note_to_json`: a NoteDraft from its JSON form, or a clear error.

    Delivery reads notes that a person may have edited or truncated, so every problem names the
    file and the field instead of surfacing as a KeyError deep inside a sink.
    """
    return _note_from_dict(data, source)


def load_note_file(path: Path) -> NoteDraft:
    """Read a note JSON file written by ``ambient note --format json`` (or the inbox sink)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(
            f"note file {path} does not exist; give a file from `ambient note --format json`"
        ) from None
    except OSError as exc:
        raise InputError(f"cannot read note file {path}: {exc}") from None
    return note_from_bytes(raw, str(path))


def note_from_bytes(raw: bytes, source: str) -> NoteDraft:
    """A note file's bytes (sealed or plain) read back: the same checks for a file and for a batch
    output read from a store behind an fsspec URL; ``source`` names it in errors."""
    try:
        text = open_if_sealed(raw, "batch.note", where=source).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"cannot read note file {source}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{source} is not valid JSON ({exc}); give a file from `ambient note --format json`"
        ) from None
    return note_from_json(data, source)


def note_to_text(note: NoteDraft) -> str:
    """Plain text: section titles and sentences, one per line — for HL7 OBX, editors and scoring.

    Evidence and provenance are left out; they travel in the JSON, not in the text a clinician
    edits.
    """
    lines: list[str] = []
    for notice in note.notices:
        lines += [f"NOTE: {notice}", ""]
    for section in note.sections:
        if not section.sentences:
            continue
        lines.append(section.title)
        lines += [s.text for s in section.sentences]
        lines.append("")
    return "\n".join(lines).strip() + "\n"
