"""Faithfulness check: every note sentence must be supported by the transcript it cites.

Runs on every draft, whatever wrote it (our drafter, a site's LLM, a clinician's edit fed back).
For each sentence it reads the transcript words inside the sentence's evidence spans and checks
the facts a wrong note hurts most: medication names, numbers (doses, vitals, durations),
laterality (left, right, bilateral) and negation (a finding the note asserts that the evidence
denies, or the reverse). A sentence with no evidence at all is unsupported by definition.
Unsupported sentences are removed (default) or marked for the clinician, and the note says so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ambient.errors import ConfigError
from ambient.nlp.findings import ClinicalNLP, Finding, normalise
from ambient.nlp.lexicon import DrugLexicon
from ambient.types import EvidenceSpan, NoteDraft, NoteSection, NoteSentence, Transcript

CHECK_ID = "ambient.faithfulness.v1"
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SIDE = re.compile(r"\b(left|right|bilateral(?:ly)?|both)\b", re.I)
_SIDE_CANON = {"bilaterally": "bilateral", "both": "bilateral"}
_SLACK_S = 0.05
# "I10 - Essential (primary) hypertension (suggested for "high blood pressure")": the code and its
# official title are ours, not a claim about the patient; only the quoted finding must be supported.
_ICD_LINE = re.compile(r'^[A-Z][0-9][0-9A-Z](?:\.[0-9A-Z]+)? – .* \(suggested for "(?P<name>[^"]+)"\)\.$')
_QUESTION_END = re.compile(r"\?\s*")
_ANSWER_NO = re.compile(r"^\W*(?:no|nope|nah|none|not really|never|nothing|not at all|negative)\b", re.I)
_ANSWER_YES = re.compile(r"^\W*(?:yes|yeah|yep|yup|i do|i have|correct|definitely|sometimes)\b", re.I)


@dataclass(frozen=True)
class Issue:
    """Why one sentence is not supported by its evidence (no note text in here: safe to log)."""

    section: str
    index: int  # sentence index within the section
    kind: str  # medication | number | laterality | negation | no_evidence
    detail: str  # the unsupported value, e.g. "20" or "Lisinopril"


@dataclass(frozen=True)
class FaithfulnessReport:
    issues: tuple[Issue, ...]
    sentences_checked: int

    @property
    def unsupported(self) -> int:
        return len({(i.section, i.index) for i in self.issues})


def evidence_text(transcript: Transcript, spans: Sequence[EvidenceSpan]) -> str:
    """The transcript words a sentence cites: inside each span's segment and time range."""
    by_id = {s.id: s for s in transcript.segments}
    parts: list[str] = []
    for span in spans:
        segment = by_id.get(span.segment_id)
        if segment is None:
            continue
        if segment.words:
            parts.extend(
                w.word
                for w in segment.words
                if w.end_s >= span.start_s - _SLACK_S and w.start_s <= span.end_s + _SLACK_S
            )
        else:
            parts.append(segment.text)
    return " ".join(p.strip() for p in parts)


def _numbers(text: str) -> set[str]:
    return {n.rstrip("0").rstrip(".") if "." in n else n for n in _NUMBER.findall(normalise(text))}


def _sides(text: str) -> set[str]:
    return {_SIDE_CANON.get(m.lower(), m.lower()) for m in _SIDE.findall(text)}


def _drugs(drugs: DrugLexicon, text: str) -> set[str]:
    return {d.name for d in drugs.find(re.findall(r"[A-Za-z][A-Za-z-]+", text))}


def _polarities(findings: Sequence[Finding], negated: bool | None = None) -> dict[str, set[bool]]:
    out: dict[str, set[bool]] = {}
    for f in findings:
        if f.category in {"SYMPTOM", "PROBLEM"}:
            out.setdefault(f.name, set()).add(f.negated if negated is None else negated)
    return out


def _evidence_polarity(evidence: str, nlp: ClinicalNLP) -> dict[str, set[bool]]:
    """How the evidence states each finding; a question answered "no" counts as a denial."""
    pieces = [p for p in re.split(r"(?<=[?.!])\s+", evidence) if p.strip()]
    found = nlp.analyse(pieces)
    polarity: dict[str, set[bool]] = {}
    for i, (piece, findings) in enumerate(zip(pieces, found, strict=True)):
        answer = pieces[i + 1] if i + 1 < len(pieces) else ""
        forced: bool | None = None
        if piece.rstrip().endswith("?"):
            forced = True if _ANSWER_NO.search(answer) else False if _ANSWER_YES.search(answer) else None
            if forced is None:
                continue  # an unanswered question states nothing
        for name, values in _polarities(findings, forced).items():
            polarity.setdefault(name, set()).update(values)
    return polarity


def check_sentence(
    sentence: NoteSentence, evidence: str, nlp: ClinicalNLP, drugs: DrugLexicon
) -> list[tuple[str, str]]:
    """(kind, value) for each fact in ``sentence`` that ``evidence`` does not support."""
    if not sentence.evidence or not evidence.strip():
        return [("no_evidence", "")]
    text = sentence.text
    icd = _ICD_LINE.match(text)
    if icd:
        text = icd.group("name")
    problems: list[tuple[str, str]] = []
    problems += [("medication", d) for d in sorted(_drugs(drugs, text) - _drugs(drugs, evidence))]
    problems += [("number", n) for n in sorted(_numbers(text) - _numbers(evidence))]
    problems += [("laterality", s) for s in sorted(_sides(text) - _sides(evidence))]
    said = _evidence_polarity(evidence, nlp)
    (wrote,) = nlp.analyse([text])
    for name, values in _polarities(wrote).items():
        if name in said and not values & said[name]:
            problems.append(("negation", name))
    return problems


def check_note(note: NoteDraft, transcript: Transcript, nlp: ClinicalNLP) -> FaithfulnessReport:
    drugs = DrugLexicon.load()
    issues: list[Issue] = []
    checked = 0
    for section in note.sections:
        for index, sentence in enumerate(section.sentences):
            checked += 1
            text = evidence_text(transcript, sentence.evidence)
            for kind, detail in check_sentence(sentence, text, nlp, drugs):
                issues.append(Issue(section.key, index, kind, detail))
    return FaithfulnessReport(tuple(issues), checked)


def enforce(note: NoteDraft, report: FaithfulnessReport, policy: str = "remove") -> NoteDraft:
    """Remove (or, with policy "mark", flag) every unsupported sentence; say so in the notices."""
    if not report.issues:
        return note
    if policy not in ("remove", "mark"):
        raise ConfigError(f"notes.unsupported must be 'remove' or 'mark', got {policy!r}")
    flagged: dict[tuple[str, int], list[Issue]] = {}
    for issue in report.issues:
        flagged.setdefault((issue.section, issue.index), []).append(issue)
    sections: list[NoteSection] = []
    for section in note.sections:
        kept: list[NoteSentence] = []
        for index, sentence in enumerate(section.sentences):
            issues = flagged.get((section.key, index))
            if not issues:
                kept.append(sentence)
            elif policy == "mark":
                kinds = ", ".join(sorted({i.kind.replace("_", " ") for i in issues}))
                marked = f"{sentence.text} [UNVERIFIED: {kinds} not in transcript]"
                kept.append(replace(sentence, text=marked))
        sections.append(replace(section, sentences=tuple(kept)))
    kinds = ", ".join(sorted({i.kind.replace("_", " ") for i in report.issues}))
    verb = "removed" if policy == "remove" else "marked UNVERIFIED"
    notice = (
        f"Faithfulness check ({CHECK_ID}): {report.unsupported} statement(s) {verb} because the "
        f"transcript does not support them ({kinds})."
    )
    return replace(note, sections=tuple(sections), notices=(*note.notices, notice))
