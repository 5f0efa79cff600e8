"""From a closed (or recovered) encounter journal to a delivered note: one path for stop and recovery.

A normal stop and a restart after ``kill -9`` both end here, so the note an interrupted encounter
gets is made exactly like any other: the transcript is rebuilt from the journal's committed words
(what the clinician saw on screen), drafted by :meth:`Pipeline.draft` (faithfulness check
included), written to the local inbox, queued to every configured delivery target through the
durable outbox, and each step leaves an audit event with ids and hashes only.

Everything here blocks (drafting is CPU work, the outbox is SQLite): the agent calls it through
``asyncio.to_thread``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ambient.agent.once import draft_time
from ambient.config import Paths, Settings
from ambient.ehr import lineage
from ambient.ehr.audit import AuditLog
from ambient.ehr.inbox import InboxSink
from ambient.ehr.options import load_delivery_options
from ambient.ehr.outbox import Outbox
from ambient.notes.render import note_sha256
from ambient.pipeline import Pipeline
from ambient.streaming.journal import Recovered, audio_sha256, rebuild_transcript
from ambient.transcript.serialise import transcript_sha256
from ambient.types import EncounterContext

# Encounter metadata a client may send with ``start``: references only (display names are PHI and
# are not journaled). They fill the FHIR/HL7 context of the delivered note.
CONTEXT_FIELDS = (
    "patient_reference",
    "patient_identifier",
    "patient_identifier_system",
    "encounter_reference",
    "author_reference",
    "author_identifier",
    "facility",
)


@dataclass(frozen=True)
class Delivery:
    target: str
    item_id: int
    state: str


@dataclass(frozen=True)
class NoteReady:
    """What the client is told once the note is in the inbox (paths and hashes; no text)."""

    encounter_id: str
    note_sha256: str
    transcript_sha256: str
    audio_sha256: str
    words: int
    audio_s: float
    inbox: tuple[str, ...]
    deliveries: tuple[Delivery, ...]
    draft_s: float  # drafting + inbox + outbox, measured here

    def to_message(self) -> dict[str, object]:
        return {
            "type": "note_ready",
            "encounter_id": self.encounter_id,
            "note_sha256": self.note_sha256,
            "transcript_sha256": self.transcript_sha256,
            "audio_sha256": self.audio_sha256,
            "words": self.words,
            "audio_s": round(self.audio_s, 3),
            "inbox": list(self.inbox),
            "deliveries": [d.__dict__ for d in self.deliveries],
            "draft_s": round(self.draft_s, 3),
        }


def context_from_meta(encounter_id: str, metadata: dict[str, str]) -> EncounterContext:
    values = {k: str(v) for k, v in metadata.items() if k in CONTEXT_FIELDS and v}
    return EncounterContext(encounter_id=encounter_id, **values)


def finalise(recovered: Recovered, pipeline: Pipeline, settings: Settings, paths: Paths) -> NoteReady:
    """Draft the journal's committed transcript and hand the note to the inbox and the outbox."""
    began = time.monotonic()
    audit = AuditLog.for_paths(paths)
    audio_sha = audio_sha256(recovered.folder)  # of the PCM, sealed journal or plain
    lineage.encounter_stopped(audit, recovered.encounter_id, audio_sha or None)
    transcript = rebuild_transcript(recovered)
    t_sha = transcript_sha256(transcript)
    # dated once per encounter, so a retry after a crash redraws the same note (one outbox row)
    note = pipeline.draft(transcript, draft_time(recovered.folder))  # audits committed + drafted
    metadata = recovered.meta.get("metadata") or {}
    context = context_from_meta(recovered.encounter_id, metadata if isinstance(metadata, dict) else {})
    receipt = InboxSink(settings.inbox_dir(paths)).deliver(note, context)
    deliveries: list[Delivery] = []
    if settings.delivery.targets:
        with Outbox.for_paths(paths, load_delivery_options(paths, None)) as outbox:
            ids = {outbox.enqueue(note, context, t)[0].id: t for t in settings.delivery.targets}
            # one pass: a peer that is away leaves the note queued for `ambient outbox drain`
            for item in outbox.drain_until_settled(list(ids), timeout_s=0.0):
                deliveries.append(Delivery(ids.get(item.id, item.target), item.id, item.state))
    return NoteReady(
        encounter_id=recovered.encounter_id,
        note_sha256=note_sha256(note),
        transcript_sha256=t_sha,
        audio_sha256=audio_sha,
        words=len(recovered.words),
        audio_s=recovered.audio_s,
        inbox=receipt.locations,
        deliveries=tuple(deliveries),
        draft_s=time.monotonic() - began,
    )
