"""Parsing our own note JSON back into typed objects (kept apart from rendering to keep both short)."""

from __future__ import annotations

from typing import Any

from ambient.errors import InputError
from ambient.types import (
    EvidenceSpan,
    ModelRef,
    NoteDraft,
    NoteSection,
    NoteSentence,
    Provenance,
    TemplateRef,
)

NOTE_FORMAT = "ambient.note.v1"


class NoteFormatError(InputError):
    code = "AMB-E204"


def _field(data: Any, key: str, kind: type | tuple[type, ...], where: str, source: str) -> Any:
    if not isinstance(data, dict):
        raise NoteFormatError(f"{source}: {where or 'the note'} must be a JSON object")
    if key not in data:
        raise NoteFormatError(f"{source}: missing field '{where + '.' if where else ''}{key}'")
    value = data[key]
    if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise NoteFormatError(f"{source}: field '{where + '.' if where else ''}{key}' must be {name}")
    return value


def _opt(data: dict[str, Any], key: str, kind: type, where: str, source: str) -> Any:
    return None if data.get(key) is None else _field(data, key, kind, where, source)


def _model(data: Any, where: str, source: str) -> ModelRef | None:
    if data is None:
        return None
    return ModelRef(
        name=_field(data, "name", str, where, source),
        version=_field(data, "version", str, where, source),
        sha256=_field(data, "sha256", str, where, source),
        source=_field(data, "source", str, where, source),
        compute_type=_opt(data, "compute_type", str, where, source) or "int8",
    )


def note_from_dict(data: Any, source: str) -> NoteDraft:
    fmt = _field(data, "format", str, "", source)
    if fmt != NOTE_FORMAT:
        raise NoteFormatError(f"{source}: format is {fmt!r}, expected {NOTE_FORMAT!r}")
    prov = _field(data, "provenance", dict, "", source)
    tmpl = _field(prov, "template", dict, "provenance", source)
    sections: list[NoteSection] = []
    for i, sec in enumerate(_field(data, "sections", list, "", source)):
        where = f"sections[{i}]"
        sentences: list[NoteSentence] = []
        for j, sen in enumerate(_field(sec, "sentences", list, where, source)):
            swhere = f"{where}.sentences[{j}]"
            spans = tuple(
                EvidenceSpan(
                    segment_id=_field(ev, "segment_id", int, f"{swhere}.evidence[{k}]", source),
                    start_s=float(_field(ev, "start_s", (int, float), f"{swhere}.evidence[{k}]", source)),
                    end_s=float(_field(ev, "end_s", (int, float), f"{swhere}.evidence[{k}]", source)),
                )
                for k, ev in enumerate(_field(sen, "evidence", list, swhere, source))
            )
            sentences.append(
                NoteSentence(
                    text=_field(sen, "text", str, swhere, source),
                    evidence=spans,
                    speaker=_opt(sen, "speaker", str, swhere, source),
                )
            )
        sections.append(
            NoteSection(
                key=_field(sec, "key", str, where, source),
                title=_field(sec, "title", str, where, source),
                sentences=tuple(sentences),
            )
        )
    notices = _field(data, "notices", list, "", source) if "notices" in data else []
    if not all(isinstance(n, str) for n in notices):
        raise NoteFormatError(f"{source}: field 'notices' must be a list of text")
    return NoteDraft(
        encounter_id=_field(data, "encounter_id", str, "", source),
        title=_field(data, "title", str, "", source),
        sections=tuple(sections),
        provenance=Provenance(
            pipeline_version=_field(prov, "pipeline_version", str, "provenance", source),
            drafter=_field(prov, "drafter", str, "provenance", source),
            template=TemplateRef(
                id=_field(tmpl, "id", str, "provenance.template", source),
                version=_field(tmpl, "version", str, "provenance.template", source),
                sha256=_field(tmpl, "sha256", str, "provenance.template", source),
                loinc=_opt(tmpl, "loinc", str, "provenance.template", source),
            ),
            asr_model=_model(prov.get("asr_model"), "provenance.asr_model", source),
            input_sha256=_field(prov, "input_sha256", str, "provenance", source),
            transcript_sha256=_field(prov, "transcript_sha256", str, "provenance", source),
            created_at=_field(prov, "created_at", str, "provenance", source),
        ),
        notices=tuple(notices),
    )
