"""First drafter: transcript sentences sorted into the template's sections, each with its evidence.

This drafter (``ambient.section_rules.v1``) writes nothing the transcript did not say: it splits
the transcript into sentences, drops questions and small talk, and files each remaining sentence
under the section whose cues (from the template) it matches best. Every note sentence carries the
segment ids and times it came from, so a clinician can check it against the recording. The
clinical NLP issue replaces the sorting with findings and a clinician's register; the evidence
contract stays.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ambient import PIPELINE_VERSION
from ambient.notes.templates import SectionSpec, Template
from ambient.types import (
    EvidenceSpan,
    NoteDraft,
    NoteSection,
    NoteSentence,
    Provenance,
    Transcript,
)

DRAFTER_ID = "ambient.section_rules.v1"
NO_SPEECH_NOTICE = "No speech was detected in the recording; nothing could be drafted."
_SENTENCE_END = re.compile(r"[.?!]+[\"')\]]*$")
_PAUSE_SPLIT_S = 1.5
# Words that carry no finding on their own: a sentence made only of these is small talk.
# fmt: off
_SMALL_TALK = frozenset({
    "ok", "okay", "yeah", "yes", "yep", "no", "so", "um", "uh", "uhm", "mm", "hmm", "mhm", "right",
    "alright", "well", "and", "but", "great", "thanks", "thank", "you", "hi", "hello", "good",
    "morning", "afternoon", "evening", "bye", "sure", "oh", "ah", "i", "see", "fine", "perfect",
})
# fmt: on
_LEADING_FILLER = re.compile(
    r"^(?:[,.;]\s*)*(?:(?:okay|ok|so|and|um|uh|uhm|yeah|yes|well|alright|all right|right|oh|mm|hmm)"
    r"\s*[,.]?\s+)*",
    re.IGNORECASE,
)
_MIN_CONTENT_TOKENS = 3
_MIN_FALLBACK_TOKENS = 4
_SPEAKER_BONUS = 0.75


@dataclass(frozen=True)
class _Token:
    text: str
    segment_id: int
    start_s: float
    end_s: float
    speaker: str | None


@dataclass(frozen=True)
class TranscriptSentence:
    """A sentence of the transcript with where it came from."""

    text: str
    speaker: str | None
    evidence: tuple[EvidenceSpan, ...]


def _tokens(transcript: Transcript) -> list[_Token]:
    tokens: list[_Token] = []
    for seg in transcript.segments:
        if seg.words:
            tokens.extend(
                _Token(w.word, seg.id, w.start_s, w.end_s, seg.speaker) for w in seg.words if w.word
            )
            continue
        parts = seg.text.split()
        step = (seg.end_s - seg.start_s) / max(len(parts), 1)
        tokens.extend(
            _Token(p, seg.id, seg.start_s + i * step, seg.start_s + (i + 1) * step, seg.speaker)
            for i, p in enumerate(parts)
        )
    return tokens


def _evidence(tokens: Sequence[_Token]) -> tuple[EvidenceSpan, ...]:
    spans: list[EvidenceSpan] = []
    for token in tokens:
        if spans and spans[-1].segment_id == token.segment_id:
            last = spans[-1]
            spans[-1] = EvidenceSpan(last.segment_id, last.start_s, round(token.end_s, 3))
        else:
            spans.append(EvidenceSpan(token.segment_id, round(token.start_s, 3), round(token.end_s, 3)))
    return tuple(spans)


def split_sentences(transcript: Transcript) -> list[TranscriptSentence]:
    """Sentences across segment boundaries: Whisper often ends a segment mid-sentence.

    A sentence also ends where the speaker changes or the talk pauses, since punctuation from
    ASR is unreliable exactly there.
    """
    sentences: list[TranscriptSentence] = []
    current: list[_Token] = []

    def close() -> None:
        if current:
            text = " ".join(t.text for t in current)
            sentences.append(TranscriptSentence(text, current[0].speaker, _evidence(current)))
            current.clear()

    for token in _tokens(transcript):
        if current and (
            token.speaker != current[-1].speaker or token.start_s - current[-1].end_s > _PAUSE_SPLIT_S
        ):
            close()
        current.append(token)
        if _SENTENCE_END.search(token.text):
            close()
    close()
    return sentences


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _cue_score(text: str, section: SectionSpec) -> float:
    padded = " " + " ".join(_words(text)) + " "
    score = 0.0
    for cue in section.cues:
        needle = " " + " ".join(_words(cue)) + " "
        if needle.strip() and needle in padded:
            score += len(needle.split())
    return score


def clean_sentence(text: str) -> str:
    """Drop leading discourse fillers ("Okay, so, um") and capitalise; never change content."""
    cleaned = _LEADING_FILLER.sub("", text.strip()).strip()
    if not cleaned:
        return ""
    return cleaned[0].upper() + cleaned[1:]


def classify(sentence: TranscriptSentence, template: Template) -> str | None:
    """Key of the section this sentence belongs to, or None when it belongs in no note."""
    text = sentence.text.strip()
    if text.endswith("?"):
        return None  # a question carries no finding; its answer does
    content = [w for w in _words(text) if w not in _SMALL_TALK]
    if len(content) < _MIN_CONTENT_TOKENS:
        return None
    best_key: str | None = None
    best = 0.0
    for section in template.sections:
        score = _cue_score(text, section)
        if score and sentence.speaker and section.speaker == sentence.speaker:
            score += _SPEAKER_BONUS
        if score > best:
            best_key, best = section.key, score
    if best_key is not None:
        return best_key
    if sentence.speaker in (None, "patient") and len(content) >= _MIN_FALLBACK_TOKENS:
        return template.fallback_key
    return None


def draft_note(
    transcript: Transcript,
    template: Template,
    transcript_sha256: str,
    created_at: datetime | None = None,
) -> NoteDraft:
    """Draft a note from ``transcript`` with ``template``; an empty transcript gives a notice."""
    buckets: dict[str, list[NoteSentence]] = {s.key: [] for s in template.sections}
    notices: list[str] = []
    if not transcript.has_speech:
        notices.append(NO_SPEECH_NOTICE)
    for sentence in split_sentences(transcript):
        key = classify(sentence, template)
        if key is None:
            continue
        text = clean_sentence(sentence.text)
        if text:
            buckets[key].append(NoteSentence(text, sentence.evidence, sentence.speaker))
    if transcript.has_speech and not any(buckets.values()):
        notices.append("Speech was detected but none of it matched a note section.")
    sections = tuple(NoteSection(s.key, s.title, tuple(buckets[s.key])) for s in template.sections)
    return assemble_note(transcript, template, sections, notices, DRAFTER_ID, transcript_sha256, created_at)


def assemble_note(
    transcript: Transcript,
    template: Template,
    sections: Sequence[NoteSection],
    notices: Sequence[str],
    drafter: str,
    transcript_sha256: str,
    created_at: datetime | None = None,
) -> NoteDraft:
    """The NoteDraft every drafter returns: its sections plus the provenance that names what made it."""
    header = transcript.header
    provenance = Provenance(
        pipeline_version=PIPELINE_VERSION,
        drafter=drafter,
        template=template.ref,
        asr_model=header.model,
        input_sha256=header.source_sha256,
        transcript_sha256=transcript_sha256,
        created_at=(created_at or datetime.now(UTC)).isoformat(timespec="seconds"),
    )
    return NoteDraft(
        encounter_id=header.encounter_id,
        title=template.title,
        sections=tuple(sections),
        provenance=provenance,
        notices=tuple(notices),
    )
