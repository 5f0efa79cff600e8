"""Frozen dataclasses that cross stage boundaries.

Data moves one way: audio → asr → transcript → notes → ehr. Each stage takes and returns these
types only, so a stage can be replaced (another ASR engine, another drafter, another sink) without
touching its neighbours. Units live in field names (``start_s``, ``duration_s``) because a bare
``start`` has been seconds in one place and milliseconds in another in every codebase we know.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class AudioInfo:
    """What we learned about an input file before transcribing it."""

    path: str
    sha256: str
    size_bytes: int
    duration_s: float
    sample_rate_hz: int
    channels: int
    codec: str


@dataclass(frozen=True)
class AudioChunk:
    """A block of decoded audio: mono float32 at 16 kHz, placed on the encounter's time line."""

    samples: Any  # numpy.ndarray[float32]; typed loosely to keep numpy out of this module
    start_s: float
    sample_rate_hz: int = 16000

    @property
    def duration_s(self) -> float:
        return float(len(self.samples)) / self.sample_rate_hz


@dataclass(frozen=True)
class ModelRef:
    """The exact model that produced an output: every transcript and note names one."""

    name: str
    version: str
    sha256: str
    source: str
    compute_type: str = "int8"


@dataclass(frozen=True)
class DecodingOptions:
    """Decoding settings that change the words: recorded in every transcript's header."""

    language: str | None = "en"
    beam_size: int = 5
    vad_filter: bool = True
    clinical_prompt: bool = False
    prompt_sha256: str | None = None
    word_timestamps: bool = True
    batch_size: int = 8
    block_s: float = 300.0


@dataclass(frozen=True, slots=True)
class Word:
    word: str
    start_s: float
    end_s: float
    probability: float


@dataclass(frozen=True, slots=True)
class Segment:
    """One recognised stretch of speech; ``speaker`` is a role ("clinician", "patient") or None."""

    id: int
    start_s: float
    end_s: float
    text: str
    words: tuple[Word, ...] = ()
    speaker: str | None = None


@dataclass(frozen=True)
class TranscriptHeader:
    encounter_id: str
    source_path: str
    source_sha256: str
    source_kind: str  # "audio" | "transcript-json" | "dialogue-text"
    duration_s: float
    language: str | None
    model: ModelRef | None
    decoding: DecodingOptions | None
    pipeline_version: str


@dataclass(frozen=True)
class Transcript:
    header: TranscriptHeader
    segments: tuple[Segment, ...]

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    @property
    def has_speech(self) -> bool:
        return any(s.text.strip() for s in self.segments)


@dataclass(frozen=True, slots=True)
class EvidenceSpan:
    """Where in the transcript a note sentence came from."""

    segment_id: int
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class NoteSentence:
    text: str
    evidence: tuple[EvidenceSpan, ...]
    speaker: str | None = None


@dataclass(frozen=True)
class NoteSection:
    key: str
    title: str
    sentences: tuple[NoteSentence, ...]


@dataclass(frozen=True)
class TemplateRef:
    id: str
    version: str
    sha256: str
    loinc: str | None = None


@dataclass(frozen=True)
class Provenance:
    """What made a note: enough to reproduce it and to trace it back to its audio."""

    pipeline_version: str
    drafter: str
    template: TemplateRef
    asr_model: ModelRef | None
    input_sha256: str
    transcript_sha256: str
    created_at: str


@dataclass(frozen=True)
class NoteDraft:
    encounter_id: str
    title: str
    sections: tuple[NoteSection, ...]
    provenance: Provenance
    notices: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class DeliveryReceipt:
    sink: str
    encounter_id: str
    note_sha256: str
    locations: tuple[str, ...]
    delivered_at: str


def to_dict(obj: Any) -> dict[str, Any]:
    """Dict view of any dataclass above, for json.dumps (tuples stay tuples; JSON writes lists)."""
    result: dict[str, Any] = asdict(obj)
    return result


@dataclass(frozen=True)
class EncounterContext:
    """Who and where a note is about, as the EHR knows them: references, not clinical text.

    Sinks need these to file a note in the right chart (FHIR ``subject``/``context.encounter``/
    ``author``; HL7 v2 PID/PV1/TXA). Only ``encounter_id`` is always known; a sink that needs more
    says so when it is used. Display names are PHI: they go to the EHR, never into logs or audit.
    """

    encounter_id: str
    patient_reference: str | None = None  # FHIR literal reference, e.g. "Patient/123"
    patient_identifier: str | None = None  # e.g. the MRN value (HL7 PID-3)
    patient_identifier_system: str | None = None  # e.g. "urn:oid:1.2.3.4.5.1" (assigning authority)
    encounter_reference: str | None = None  # e.g. "Encounter/456"
    author_reference: str | None = None  # e.g. "Practitioner/789"
    author_identifier: str | None = None  # the clinician's id in the EHR (HL7 XCN.1)
    patient_display: str | None = None  # "Family, Given"
    author_display: str | None = None
    patient_class: str = "O"  # HL7 PV1-2: O outpatient, I inpatient, E emergency
    facility: str | None = None
