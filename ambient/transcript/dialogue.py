"""Speaker-labelled dialogue text, as the public clinical datasets write it.

Two layouts occur in the data we evaluate on:

* ACI-Bench: ``[doctor] text`` / ``[patient] text``, one turn per line; a few long turns wrap onto
  an unlabelled line, which continues the turn above (valid.csv D2N068 and D2N072 do this).
* OSCE transcripts (Fareez et al. 2022): ``D: text`` / ``P: text`` with blank lines between turns;
  CAR0002 line 81 writes ``D;`` for ``D:``, so a semicolon is accepted after a known label.

Labels become roles ("clinician", "patient"), the vocabulary of ``Segment.speaker``. Any label we
do not know is an error rather than a guess, because a misattributed turn silently corrupts every
speaker-aware score computed downstream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ambient.errors import TranscriptFormatError

CLINICIAN = "clinician"
PATIENT = "patient"
ROLES: tuple[str, ...] = (CLINICIAN, PATIENT)

_EXACT_LABELS: dict[str, str] = {
    "doctor": CLINICIAN,
    "d": CLINICIAN,
    "dr": CLINICIAN,
    "clinician": CLINICIAN,
    "patient": PATIENT,
    "p": PATIENT,
    "pt": PATIENT,
}

# "[label] text"; the label may be anything up to the closing bracket so an unknown one is reported.
_BRACKET = re.compile(r"^\s*\[([^\]\n]*)\]\s*(.*)$")
# "label: text" or "label; text". The label is one short token at the start of the line, so an
# unlabelled continuation line with a colon later on ("bp is 150 over 90: high") stays prose.
_COLON = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_.]{0,24})\s*([:;])\s*(.*)$")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class DialogueTurn:
    """One speaker's uninterrupted turn; ``role`` is one of :data:`ROLES`."""

    role: str
    text: str


def role_for_label(label: str) -> str | None:
    """The role a dataset's speaker label stands for, or None when we do not know the label.

    ``patient_guest`` (ACI-Bench's accompanying relative) maps to the patient on purpose: the
    datasets give it no role of its own and it speaks for the patient's side of the visit.
    """
    key = label.strip().lower().rstrip(".")
    if key in _EXACT_LABELS:
        return _EXACT_LABELS[key]
    if key.startswith("patient"):
        return PATIENT
    if key.startswith("doctor"):
        return CLINICIAN
    return None


def _label_of(line: str) -> tuple[str, str, str] | None:
    """(label, separator, rest) when the line opens with a speaker label of either layout."""
    bracket = _BRACKET.match(line)
    if bracket:
        return bracket.group(1), "]", bracket.group(2)
    colon = _COLON.match(line)
    if colon:
        label, separator, rest = colon.group(1), colon.group(2), colon.group(3)
        # A semicolon after an unknown word is ordinary prose ("so; then ..."), not a label.
        if separator == ";" and role_for_label(label) is None:
            return None
        return label, separator, rest
    return None


def parse_dialogue(text: str, *, source: str = "<dialogue>") -> list[DialogueTurn]:
    """Turns in spoken order; ``source`` only names the input in error messages.

    Whitespace inside a turn is collapsed to single spaces and labelled lines with no words are
    dropped, since neither carries speech.
    """
    roles: list[str] = []
    pieces: list[list[str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        found = _label_of(line)
        if found is None:
            if not roles:
                raise TranscriptFormatError(
                    f"{source}, line {number}: text before any speaker label ({line[:40]!r}); "
                    "start each turn with [doctor]/[patient] or D:/P:"
                )
            pieces[-1].append(line)
            continue
        label, _, rest = found
        role = role_for_label(label)
        if role is None:
            raise TranscriptFormatError(
                f"{source}, line {number}: unknown speaker label {label!r}; "
                "use [doctor]/[patient] (or D:/P:, clinician/pt) for each turn"
            )
        roles.append(role)
        pieces.append([rest] if rest.strip() else [])
    turns = [
        DialogueTurn(role=role, text=_SPACES.sub(" ", " ".join(words)).strip())
        for role, words in zip(roles, pieces, strict=True)
    ]
    turns = [turn for turn in turns if turn.text]
    if not turns:
        raise TranscriptFormatError(
            f"{source}: no speaker turns found; expected lines such as '[doctor] ...' or 'D: ...'"
        )
    return turns


def detokenize(text: str) -> str:
    """Undo dataset tokenisation ("do n't", "pain , and" in ACI-Bench): spacing only, never words.

    Such text is not what anyone said or would write; left as is, it reaches the note verbatim and
    espeak voices the split tokens as separate words.
    """
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+(n't|'s|'re|'ve|'ll|'d|'m)\b", r"\1", text, flags=re.IGNORECASE)
    return re.sub(r"\s+([,.?!;:])", r"\1", text)
