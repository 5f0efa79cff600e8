"""What other stages call to leave a trace: one function per event, ids and hashes only.

The agent (encounter started/stopped), the streaming commit (transcript committed), the drafter's
caller (note drafted), the outbox (queued, delivered, dead-lettered) and the editor bridge
(accepted into the editor) all go through these, so each event names the same versions and the
note can be followed from its audio sha256 to the EHR location that holds it.
"""

from __future__ import annotations

from typing import Any

from ambient.ehr.audit import AuditLog
from ambient.notes.render import note_sha256
from ambient.types import DeliveryReceipt, NoteDraft, Transcript


def encounter_started(audit: AuditLog, encounter_id: str, source: str = "microphone") -> dict[str, Any]:
    return audit.record("encounter.started", ids={"encounter_id": _id(encounter_id), "source": source})


def encounter_stopped(audit: AuditLog, encounter_id: str, audio_sha256: str | None = None) -> dict[str, Any]:
    outputs = {"audio": audio_sha256} if audio_sha256 else None
    return audit.record("encounter.stopped", ids={"encounter_id": _id(encounter_id)}, outputs=outputs)


def transcript_committed(audit: AuditLog, transcript: Transcript, transcript_sha256: str) -> dict[str, Any]:
    header = transcript.header
    versions = {"pipeline_version": header.pipeline_version}
    if header.model is not None:
        versions |= {
            "asr_model": header.model.name,
            "asr_model_version": header.model.version,
            "asr_model_sha256": header.model.sha256,
        }
    return audit.record(
        "transcript.committed",
        ids={"encounter_id": _id(header.encounter_id), "source_kind": header.source_kind},
        versions=versions,
        inputs={"source": header.source_sha256},
        outputs={"transcript": transcript_sha256},
    )


def _note_versions(note: NoteDraft) -> dict[str, str]:
    prov = note.provenance
    versions = {
        "pipeline_version": prov.pipeline_version,
        "drafter": prov.drafter,
        "template": prov.template.id,
        "template_version": prov.template.version,
        "template_sha256": prov.template.sha256,
    }
    if prov.asr_model is not None:
        versions |= {
            "asr_model": prov.asr_model.name,
            "asr_model_version": prov.asr_model.version,
            "asr_model_sha256": prov.asr_model.sha256,
        }
    return versions


def note_drafted(audit: AuditLog, note: NoteDraft) -> dict[str, Any]:
    return audit.record(
        "note.drafted",
        ids={"encounter_id": _id(note.encounter_id)},
        versions=_note_versions(note),
        inputs={"source": note.provenance.input_sha256, "transcript": note.provenance.transcript_sha256},
        outputs={"note": note_sha256(note)},
    )


def _id(target: str) -> str:
    """Targets and locations are ids, but a folder may have spaces: encode them, keep them readable."""
    return "".join(f"%{ord(c):02X}" if c.isspace() or c == "%" else c for c in target)


def note_queued(audit: AuditLog, note: NoteDraft, target: str, item_id: int) -> dict[str, Any]:
    return audit.record(
        "note.queued",
        ids={"encounter_id": _id(note.encounter_id), "target": _id(target), "outbox_item": str(item_id)},
        versions=_note_versions(note),
        inputs={"note": note_sha256(note)},
    )


def note_delivered(audit: AuditLog, receipt: DeliveryReceipt, target: str, item_id: int) -> dict[str, Any]:
    ids = {"encounter_id": _id(receipt.encounter_id), "target": _id(target), "outbox_item": str(item_id)}
    ids |= {f"location_{i}": _id(loc) for i, loc in enumerate(receipt.locations, start=1)}
    return audit.record("note.delivered", ids=ids, inputs={"note": receipt.note_sha256})


def note_dead_lettered(
    audit: AuditLog, encounter_id: str, note_sha: str, target: str, item_id: int, error_code: str
) -> dict[str, Any]:
    ids = {
        "encounter_id": _id(encounter_id),
        "target": _id(target),
        "outbox_item": str(item_id),
        "error_code": error_code,
    }
    return audit.record("note.dead_lettered", ids=ids, inputs={"note": note_sha})


def note_accepted_in_editor(
    audit: AuditLog, encounter_id: str, note_sha: str, editor: str, inserted_sha256: str
) -> dict[str, Any]:
    return audit.record(
        "note.accepted_in_editor",
        ids={"encounter_id": _id(encounter_id), "editor": editor},
        inputs={"note": note_sha},
        outputs={"inserted": inserted_sha256},
    )
