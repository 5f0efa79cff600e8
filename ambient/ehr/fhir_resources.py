"""FHIR R4 resources for a drafted note, built as plain dicts and validated with fhir.resources R4B.

Validation uses the R4B models (``fhir.resources.R4B``) because the package's default is R5 and an
R4 server rejects R5 shapes. Building dicts first keeps the wire form explicit; validating them
before they leave catches a malformed reference here, not as a 422 from the EHR.

Identity: every draft carries two identifiers. The *draft* identifier (encounter, template, note
sha) is unique to this exact text and makes the create conditional, so a retry after a lost reply
finds the first copy instead of making a second. The *series* identifier (encounter, template)
is shared by every draft of the encounter, so a newer draft can find and replace the older one.
"""

from __future__ import annotations

import base64
import hashlib
import html
from typing import Any

from pydantic import ValidationError

from ambient.ehr.errors import PermanentDeliveryError
from ambient.notes.render import note_sha256, note_to_markdown
from ambient.types import EncounterContext, NoteDraft

DRAFT_SYSTEM = "urn:ambient:note-draft"
SERIES_SYSTEM = "urn:ambient:note-series"
LOINC = "http://loinc.org"
CATEGORY_SYSTEM = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category"
# Display names of the LOINC document types our templates use; unknown codes go without display.
LOINC_DISPLAY = {
    "11506-3": "Progress note",
    "34117-2": "History and physical note",
    "11488-4": "Consult note",
    "18842-5": "Discharge summary",
    "34133-9": "Summary of episode note",
}
DEFAULT_LOINC = "11506-3"


def draft_identifier(note: NoteDraft) -> str:
    return f"{note.encounter_id}:{note.provenance.template.id}:{note_sha256(note)[:24]}"


def series_identifier(note: NoteDraft) -> str:
    return f"{note.encounter_id}:{note.provenance.template.id}"


def note_to_xhtml(note: NoteDraft) -> str:
    """The note as a self-contained XHTML fragment (what many EHR viewers render)."""
    esc = html.escape
    parts = [f'<div xmlns="http://www.w3.org/1999/xhtml"><h1>{esc(note.title)}</h1>']
    parts.append("<p><em>DRAFT for clinician review</em></p>")
    for notice in note.notices:
        parts.append(f"<p><strong>Note:</strong> {esc(notice)}</p>")
    for section in note.sections:
        parts.append(f"<h2>{esc(section.title)}</h2>")
        if not section.sentences:
            parts.append("<p><em>Nothing recorded.</em></p>")
            continue
        parts.append("<ul>" + "".join(f"<li>{esc(s.text)}</li>" for s in section.sentences) + "</ul>")
    parts.append("</div>")
    return "".join(parts)


def _attachment(data: bytes, content_type: str, title: str, creation: str) -> dict[str, Any]:
    return {
        "contentType": content_type,
        "language": "en",
        "data": base64.b64encode(data).decode("ascii"),
        "size": len(data),
        # FHIR R4 defines Attachment.hash as the base64 SHA-1 of the data.
        "hash": base64.b64encode(hashlib.sha1(data).digest()).decode("ascii"),
        "title": title,
        "creation": creation,
    }


def _ref(reference: str | None, display: str | None) -> dict[str, Any] | None:
    if not reference:
        return None
    out: dict[str, Any] = {"reference": reference}
    if display:
        out["display"] = display
    return out


def document_reference(
    note: NoteDraft, context: EncounterContext, replaces: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A DocumentReference (R4) for the note; ``replaces`` are ids of earlier drafts it supersedes."""
    loinc = note.provenance.template.loinc or DEFAULT_LOINC
    coding: dict[str, Any] = {"system": LOINC, "code": loinc}
    if loinc in LOINC_DISPLAY:
        coding["display"] = LOINC_DISPLAY[loinc]
    created = note.provenance.created_at
    markdown = note_to_markdown(note).encode("utf-8")
    xhtml = note_to_xhtml(note).encode("utf-8")
    draft = draft_identifier(note)
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "masterIdentifier": {"system": DRAFT_SYSTEM, "value": draft},
        "identifier": [
            {"system": DRAFT_SYSTEM, "value": draft},
            {"system": SERIES_SYSTEM, "value": series_identifier(note)},
        ],
        "status": "current",
        "docStatus": "preliminary",
        "type": {"coding": [coding]},
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "clinical-note"}]}],
        "date": created,
        "description": f"{note.title} (draft for clinician review)",
        "content": [
            {"attachment": _attachment(markdown, "text/markdown", note.title, created)},
            {"attachment": _attachment(xhtml, "application/xhtml+xml", note.title, created)},
        ],
    }
    if subject := _ref(context.patient_reference, context.patient_display):
        resource["subject"] = subject
    if author := _ref(context.author_reference, context.author_display):
        resource["author"] = [author]
    if context.encounter_reference:
        resource["context"] = {"encounter": [{"reference": context.encounter_reference}]}
    if replaces:
        resource["relatesTo"] = [
            {"code": "replaces", "target": {"reference": f"DocumentReference/{rid}"}} for rid in replaces
        ]
    return validate_r4(resource)


# LOINC section codes for the section keys of our templates (SOAP and H&P headings).
SECTION_LOINC = {
    "subjective": ("61150-9", "Subjective Narrative"),
    "objective": ("61149-1", "Objective Narrative"),
    "assessment": ("51848-0", "Evaluation note"),
    "plan": ("18776-5", "Plan of care note"),
    "chief_complaint": ("10154-3", "Chief complaint Narrative"),
    "hpi": ("10164-2", "History of Present illness Narrative"),
    "medications": ("10160-0", "History of Medication use Narrative"),
    "allergies": ("48765-2", "Allergies and adverse reactions Document"),
    "physical_exam": ("29545-1", "Physical findings Narrative"),
}


def composition_id(note: NoteDraft) -> str:
    """A client-assigned id (FHIR ids: 64 chars of [A-Za-z0-9-.]): PUT to it is create-once by nature."""
    return f"ambient-{note_sha256(note)[:48]}"


def composition(note: NoteDraft, context: EncounterContext) -> dict[str, Any]:
    """A Composition with one LOINC-coded section per template section (narrative only)."""
    if not context.author_reference:
        raise PermanentDeliveryError(
            f"encounter {note.encounter_id} has no author_reference; a FHIR Composition needs an author"
        )
    loinc = note.provenance.template.loinc or DEFAULT_LOINC
    coding: dict[str, Any] = {"system": LOINC, "code": loinc}
    if loinc in LOINC_DISPLAY:
        coding["display"] = LOINC_DISPLAY[loinc]
    sections = []
    for section in note.sections:
        items = "".join(f"<li>{html.escape(s.text)}</li>" for s in section.sentences)
        body = f"<ul>{items}</ul>" if items else "<p><em>Nothing recorded.</em></p>"
        entry: dict[str, Any] = {
            "title": section.title,
            "text": {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{body}</div>'},
        }
        if section.key in SECTION_LOINC:
            code, display = SECTION_LOINC[section.key]
            entry["code"] = {"coding": [{"system": LOINC, "code": code, "display": display}]}
        sections.append(entry)
    resource: dict[str, Any] = {
        "resourceType": "Composition",
        "id": composition_id(note),
        "identifier": {"system": DRAFT_SYSTEM, "value": draft_identifier(note)},
        "status": "preliminary",
        "type": {"coding": [coding]},
        "date": note.provenance.created_at,
        "author": [_ref(context.author_reference, context.author_display)],
        "title": note.title,
        "section": sections,
    }
    if subject := _ref(context.patient_reference, context.patient_display):
        resource["subject"] = subject
    if context.encounter_reference:
        resource["encounter"] = {"reference": context.encounter_reference}
    return validate_r4(resource)


def review_task(note: NoteDraft, context: EncounterContext, document_id: str) -> dict[str, Any]:
    """A Task that routes the draft to the author's worklist for review and signature."""
    task: dict[str, Any] = {
        "resourceType": "Task",
        "identifier": [{"system": DRAFT_SYSTEM, "value": draft_identifier(note)}],
        "status": "requested",
        "intent": "proposal",
        "priority": "routine",
        "code": {"text": "Review and sign draft note"},
        "description": "Review the drafted note and sign it, or discard it",
        "focus": {"reference": f"DocumentReference/{document_id}"},
        "authoredOn": note.provenance.created_at,
    }
    if context.patient_reference:
        task["for"] = {"reference": context.patient_reference}
    if context.encounter_reference:
        task["encounter"] = {"reference": context.encounter_reference}
    if context.author_reference:
        task["owner"] = {"reference": context.author_reference}
    return validate_r4(task)


def validate_r4(resource: dict[str, Any]) -> dict[str, Any]:
    """Check a resource against the R4B model; a failure is ours, so it is permanent."""
    from fhir.resources.R4B import get_fhir_model_class

    model = get_fhir_model_class(resource["resourceType"])
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        where = "; ".join(
            ".".join(str(p) for p in err.get("loc", ())) + f": {err.get('msg')}" for err in exc.errors()[:3]
        )
        raise PermanentDeliveryError(
            f"the {resource['resourceType']} built for this note is not valid FHIR R4 ({where}); "
            "check the references in the encounter metadata"
        ) from None
    return resource
