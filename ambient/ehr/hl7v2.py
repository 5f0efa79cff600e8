"""HL7 v2.5 MDM^T02 for a drafted note, and the ACK that answers it. Pure functions, no sockets.

MDM^T02 ("original document notification and content") is what EHR interface engines expect for
transcribed and dictated notes: PID and PV1 file it in the chart, TXA describes the document
(TXA-12 the unique document number, TXA-17 completion status ``IP`` = in progress, i.e. a draft
awaiting signature) and the note's plain text (section titles and sentences, no evidence marks)
travels as one TX observation per line in OBX segments.

The message control id (MSH-10) and the document number (TXA-12) come from the note's sha256, so
a retry after a lost ACK sends the *same* ids and the receiver can recognise the duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ambient.ehr.errors import PermanentDeliveryError
from ambient.ehr.fhir_resources import DEFAULT_LOINC, LOINC_DISPLAY
from ambient.ehr.options import DeliveryOptions
from ambient.notes.render import note_sha256, note_to_text
from ambient.types import EncounterContext, NoteDraft

SEGMENT_END = "\r"
# HL7 table 0270 document types for the LOINC codes our templates use.
DOCUMENT_TYPE = {"11506-3": "PR", "34117-2": "HP", "11488-4": "CN", "18842-5": "DS"}
_ESCAPES = (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\"))


def escape(text: str) -> str:
    """HL7 escaping of the delimiters; line breaks never reach a field (each line is an OBX)."""
    text = " ".join(text.replace("\r", " ").replace("\n", " ").split(" "))
    for raw, escaped in _ESCAPES:
        text = text.replace(raw, escaped)
    return text


def hl7_time(iso: str | None = None) -> str:
    moment = datetime.fromisoformat(iso) if iso else datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.strftime("%Y%m%d%H%M%S%z")


def control_id(note: NoteDraft) -> str:
    """MSH-10 is at most 20 characters in v2.5."""
    return note_sha256(note)[:20]


def document_number(note: NoteDraft) -> str:
    return f"ambient-{note_sha256(note)[:32]}"


def _name(display: str | None) -> str:
    """``"Family, Given"`` → ``Family^Given``; unknown → name type U (unspecified)."""
    if not display:
        return "^^^^^^U"
    family, _, given = display.partition(",")
    return f"{escape(family.strip())}^{escape(given.strip())}" if given else escape(family.strip())


def _person(identifier: str | None, display: str | None) -> str:
    if not identifier:
        return ""
    return f"{escape(identifier)}^{_name(display)}" if display else escape(identifier)


def _segment(name: str, fields: dict[int, str]) -> str:
    last = max(fields)
    return "|".join([name, *(fields.get(i, "") for i in range(1, last + 1))])


def mdm_t02(note: NoteDraft, context: EncounterContext, options: DeliveryOptions | None = None) -> str:
    """The whole message, segments joined by CR, ready for MLLP framing (UTF-8)."""
    options = options or DeliveryOptions()
    if not context.patient_identifier:
        raise PermanentDeliveryError(
            f"encounter {note.encounter_id} has no patient_identifier; HL7 v2 delivery needs PID-3 "
            "(--context META.json with patient_identifier and patient_identifier_system)"
        )
    now = hl7_time()
    created = hl7_time(note.provenance.created_at)
    loinc = note.provenance.template.loinc or DEFAULT_LOINC
    observation = f"{loinc}^{escape(LOINC_DISPLAY.get(loinc, note.title))}^LN"
    author = _person(context.author_identifier, context.author_display)
    cx = f"{escape(context.patient_identifier)}^^^{escape(context.patient_identifier_system or '')}^MR"
    segments = [
        "MSH|^~\\&|"
        + "|".join(
            [
                escape(options.sending_application),
                escape(context.facility or options.sending_facility),
                escape(options.receiving_application),
                escape(options.receiving_facility),
                now,
                "",
                "MDM^T02^MDM_T02",
                control_id(note),
                "P",
                "2.5",
                "",
                "",
                "AL",
                "NE",
                "",
                "UNICODE UTF-8",
            ]
        ),
        _segment("EVN", {1: "T02", 2: now}),
        _segment("PID", {1: "1", 3: cx, 5: _name(context.patient_display)}),
        _segment("PV1", {1: "1", 2: escape(context.patient_class), 7: author, 19: escape(note.encounter_id)}),
        _segment(
            "TXA",
            {
                1: "1",
                2: DOCUMENT_TYPE.get(loinc, "PR"),
                3: "TX",
                4: created,
                5: author,
                9: author,
                12: f"{document_number(note)}^{escape(options.sending_application)}",
                17: "IP",
            },
        ),
    ]
    lines = note_to_text(note).rstrip("\n").split("\n")
    for index, line in enumerate(lines, start=1):
        segments.append(
            _segment("OBX", {1: str(index), 2: "TX", 3: observation, 4: "1", 5: escape(line), 11: "P"})
        )
    return SEGMENT_END.join(segments) + SEGMENT_END


@dataclass(frozen=True)
class Ack:
    code: str  # MSA-1: AA/AE/AR (original mode) or CA/CE/CR (enhanced mode)
    control_id: str  # MSA-2: the MSH-10 it acknowledges
    text: str  # MSA-3 and ERR diagnostics, for the dead-letter reason

    @property
    def accepted(self) -> bool:
        return self.code in {"AA", "CA"}


def parse_ack(message: str) -> Ack:
    segments = [s for s in message.replace("\n", "\r").split("\r") if s]
    if not segments or not segments[0].startswith("MSH") or len(segments[0]) < 4:
        raise PermanentDeliveryError("the MLLP peer answered with something that is not an HL7 message")
    sep = segments[0][3]
    msa = next((s.split(sep) for s in segments if s.startswith("MSA")), None)
    if msa is None or len(msa) < 3:
        raise PermanentDeliveryError("the MLLP peer's answer has no MSA segment; is it an HL7 v2 ACK?")
    texts = [msa[3]] if len(msa) > 3 and msa[3] else []
    for seg in segments:
        if seg.startswith("ERR"):
            fields = seg.split(sep)
            # ERR-7 diagnostic information, ERR-8 user message (v2.5).
            texts += [fields[i] for i in (7, 8) if len(fields) > i and fields[i]]
    return Ack(code=msa[1], control_id=msa[2], text="; ".join(texts))
