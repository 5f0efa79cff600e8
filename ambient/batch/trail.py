"""Lineage of a batch encounter as the audit trail recorded it: audio → transcript → note.

``ambient diff`` compares what is on disk; this module says whether the hash-chained audit trail
(:mod:`ambient.ehr.audit`) vouches for it. Every draft leaves two entries (``pipeline.draft``):
``transcript.committed`` (input: the audio's sha256, output: the transcript's, with the ASR model
and pipeline versions) and ``note.drafted`` (inputs: audio and transcript, output: the note's sha256,
with template, drafter and model versions). For one encounter folder, :func:`lineage_of` looks up
the entries whose output hashes are the hashes of the files on disk:

* ``recorded``: the trail has the entry for exactly this file;
* ``differs``: the trail has entries for this audio, but none for this file: the file was changed
  after it was drafted (edited, replaced, restored from elsewhere), or drafted on a machine whose
  trail this is not; the trail's own hashes are listed;
* ``absent``: the trail knows nothing of this audio.

Only ids, hashes, versions and sequence numbers are read or reported: the trail holds nothing
else, so neither does this report. The chain itself is verified once per report
(:meth:`~ambient.ehr.audit.AuditLog.verify`); lineage read from a trail that fails verification
is reported with that failure, not hidden.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ambient.ehr.audit import AuditError, AuditLog

RECORDED = "recorded"
DIFFERS = "differs"
ABSENT = "absent"

_TRANSCRIPT_VERSIONS = ("asr_model", "asr_model_version", "asr_model_sha256", "pipeline_version")
_NOTE_VERSIONS = ("template", "template_version", "drafter", "pipeline_version")


@dataclass(frozen=True)
class Step:
    """One link of the chain (transcript or note) for the file on disk."""

    sha256: str  # of the file on disk
    trail: str  # recorded | differs | absent
    seq: int | None = None  # the newest matching entry's sequence number
    versions: dict[str, str] = field(default_factory=dict)
    trail_sha256: tuple[str, ...] = ()  # when it differs: what the trail recorded for this audio
    from_transcript: str | None = None  # note only: the transcript the trail says it was drafted from

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sha256": self.sha256, "trail": self.trail}
        if self.seq is not None:
            out["seq"] = self.seq
        if self.versions:
            out["versions"] = self.versions
        if self.trail_sha256:
            out["trail_sha256"] = list(self.trail_sha256)
        if self.from_transcript is not None:
            out["from_transcript"] = self.from_transcript
        return out


@dataclass(frozen=True)
class Lineage:
    audio_sha256: str
    transcript: Step
    note: Step

    @property
    def linked(self) -> bool:
        """Both files recorded, and the note drafted from this very transcript."""
        return (
            self.transcript.trail == RECORDED
            and self.note.trail == RECORDED
            and self.note.from_transcript == self.transcript.sha256
        )

    @property
    def problem(self) -> str | None:
        """One short PHI-free line saying what the trail does not vouch for, or None."""
        if self.transcript.trail == ABSENT and self.note.trail == ABSENT:
            return "no audit trail entry for this audio"
        parts = []
        for name, step in (("transcript", self.transcript), ("note", self.note)):
            if step.trail == DIFFERS:
                parts.append(f"{name} on disk differs from the trail")
            elif step.trail == ABSENT:
                parts.append(f"{name} not in the trail")
        if not parts and self.note.from_transcript != self.transcript.sha256:
            parts.append("the trail's note was drafted from another transcript")
        return "; ".join(parts) or None

    def to_json(self) -> dict[str, Any]:
        return {
            "audio_sha256": self.audio_sha256,
            "transcript": self.transcript.to_json(),
            "note": self.note.to_json(),
            "linked": self.linked,
            "problem": self.problem,
        }


@dataclass(frozen=True)
class _Entry:
    seq: int
    output: str
    transcript_in: str | None
    versions: dict[str, str]


class TrailIndex:
    """The trail's transcript and note entries, indexed by audio sha256: read once per report."""

    def __init__(self, log: AuditLog) -> None:
        self.path = str(log.path)
        self.transcripts: dict[str, list[_Entry]] = defaultdict(list)
        self.notes: dict[str, list[_Entry]] = defaultdict(list)
        self.error: str | None = None
        try:
            self.entries = log.verify().entries
        except AuditError as exc:  # names a line, a seq and an event: no content
            self.error = str(exc)
            self.entries = 0
        try:
            raw = log.entries()
        except AuditError as exc:
            self.error = self.error or str(exc)
            raw = []
        for entry in raw:
            event = entry.get("event")
            inputs = entry.get("inputs") or {}
            outputs = entry.get("outputs") or {}
            versions = entry.get("versions") or {}
            source = inputs.get("source")
            if not isinstance(source, str):
                continue
            if event == "transcript.committed" and "transcript" in outputs:
                keep = {k: str(versions[k]) for k in _TRANSCRIPT_VERSIONS if k in versions}
                self.transcripts[source].append(
                    _Entry(int(entry.get("seq", 0)), str(outputs["transcript"]), None, keep)
                )
            elif event == "note.drafted" and "note" in outputs:
                keep = {k: str(versions[k]) for k in _NOTE_VERSIONS if k in versions}
                transcript_in = inputs.get("transcript")
                self.notes[source].append(
                    _Entry(
                        int(entry.get("seq", 0)),
                        str(outputs["note"]),
                        str(transcript_in) if transcript_in else None,
                        keep,
                    )
                )

    @property
    def verified(self) -> bool:
        return self.error is None

    def summary(self) -> dict[str, Any]:
        return {"path": self.path, "entries": self.entries, "verified": self.verified, "error": self.error}


def _step(entries: list[_Entry], on_disk: str, note: bool) -> Step:
    if not entries:
        return Step(on_disk, ABSENT)
    matching = [e for e in entries if e.output == on_disk]
    if not matching:
        recorded = tuple(dict.fromkeys(e.output for e in sorted(entries, key=lambda e: -e.seq)))
        return Step(on_disk, DIFFERS, trail_sha256=recorded)
    newest = max(matching, key=lambda e: e.seq)
    return Step(
        on_disk,
        RECORDED,
        seq=newest.seq,
        versions=newest.versions,
        from_transcript=newest.transcript_in if note else None,
    )


def lineage_of(index: TrailIndex, audio_sha256: str, transcript_sha256: str, note_sha256: str) -> Lineage:
    """What the trail says about one encounter's files (their hashes as computed from disk)."""
    return Lineage(
        audio_sha256,
        _step(index.transcripts.get(audio_sha256, []), transcript_sha256, note=False),
        _step(index.notes.get(audio_sha256, []), note_sha256, note=True),
    )
