"""``ambient eval speakers``: word-level clinician/patient attribution against a labelled reference.

A reference transcript (``D:``/``P:`` turns) has no times and its words differ from what the
recogniser heard, so hypothesis words are aligned to reference words by edit distance over
normalised spellings, and only words that align *and* match are scored: a misheard word says
nothing about who said it. Coverage (scored ÷ reference words) is reported beside accuracy, so
an aligner that scores only easy words cannot look good.

With rendered audio the reference has exact turn times instead, and each word is scored by the
turn its midpoint falls in (:func:`score_by_time`).

Each result is given twice: with the roles as the system named them, and with the better of the
two voice→role mappings ("oracle roles"), which separates clustering errors from role naming.
``scripts/bench_diarization.py`` scores through these same functions.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ambient.evaluation.wer import edit_table
from ambient.transcript.dialogue import CLINICIAN, PATIENT
from ambient.types import Transcript

if TYPE_CHECKING:
    from ambient.evaluation.data import EvalItem, Reference
    from ambient.pipeline import Pipeline

_KEEP = re.compile(r"[^a-z0-9']+")


def normalise(word: str) -> str:
    """Lower case, punctuation dropped, "okay" and "ok" one word: spelling is not speech."""
    token = _KEEP.sub("", word.lower().replace("’", "'")).strip("'")
    return "ok" if token == "okay" else token


@dataclass(frozen=True)
class AttributionScore:
    scored: int
    correct: int
    reference_words: int
    hypothesis_words: int
    unattributed: int  # scored words the system left without a speaker (counted wrong)

    @property
    def accuracy(self) -> float:
        return self.correct / self.scored if self.scored else 0.0

    @property
    def coverage(self) -> float:
        return self.scored / self.reference_words if self.reference_words else 0.0


def align(reference: Sequence[str], hypothesis: Sequence[str]) -> list[tuple[int, int]]:
    """Index pairs (ref, hyp) of equal tokens on one minimum-edit-distance alignment.

    Plain Levenshtein with a backtrace that prefers matches; O(n·m) time in lists of ints, about
    a second for a 9-minute interview. Ties between substitution and insertion/deletion are
    broken toward the diagonal so long runs of equal words stay aligned.
    """
    n, m = len(reference), len(hypothesis)
    rows = edit_table(reference, hypothesis)
    pairs: list[tuple[int, int]] = []
    i, j = n, m
    while i > 0 and j > 0:
        here = rows[i][j]
        if reference[i - 1] == hypothesis[j - 1] and here == rows[i - 1][j - 1]:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif here == rows[i - 1][j - 1] + 1:
            i, j = i - 1, j - 1
        elif here == rows[i - 1][j] + 1:
            i -= 1
        else:
            j -= 1
    pairs.reverse()
    return pairs


def score_aligned(
    reference: Sequence[tuple[str, str]], hypothesis: Sequence[tuple[str, str | None]]
) -> tuple[AttributionScore, list[tuple[int, int]]]:
    """``reference``: (word, role) in spoken order; ``hypothesis``: (word, role or None).

    Returns the score and the aligned pairs (for error analysis).
    """
    ref_tokens = [normalise(w) for w, _ in reference]
    hyp_tokens = [normalise(w) for w, _ in hypothesis]
    ref_index = [i for i, t in enumerate(ref_tokens) if t]
    hyp_index = [j for j, t in enumerate(hyp_tokens) if t]
    pairs = [
        (ref_index[a], hyp_index[b])
        for a, b in align([ref_tokens[i] for i in ref_index], [hyp_tokens[j] for j in hyp_index])
    ]
    correct = sum(1 for i, j in pairs if reference[i][1] == hypothesis[j][1])
    unattributed = sum(1 for _, j in pairs if hypothesis[j][1] is None)
    score = AttributionScore(len(pairs), correct, len(ref_index), len(hyp_index), unattributed)
    return score, pairs


def score_by_time(
    turns: Sequence[tuple[str, float, float]], words: Sequence[tuple[float, float, str | None]]
) -> AttributionScore:
    """``turns``: (role, start_s, end_s) of a rendered reference; ``words``: (start_s, end_s, role).

    A word whose midpoint lies in no turn (a recogniser's invention in a pause) is not scored.
    """
    scored = correct = unattributed = 0
    for start_s, end_s, role in words:
        middle = (start_s + end_s) / 2
        truth = next((r for r, a, b in turns if a - 0.05 <= middle <= b + 0.05), None)
        if truth is None:
            continue
        scored += 1
        correct += role == truth
        unattributed += role is None
    return AttributionScore(scored, correct, scored, len(words), unattributed)


_SWAP = {CLINICIAN: PATIENT, PATIENT: CLINICIAN}


def swapped(transcript: Transcript) -> Transcript:
    """The same transcript with the two roles exchanged (for the oracle-roles figure)."""
    segments = tuple(replace(s, speaker=_SWAP.get(s.speaker or "", s.speaker)) for s in transcript.segments)
    return Transcript(transcript.header, segments)


def hypothesis_words(transcript: Transcript) -> list[tuple[str, str | None]]:
    return [(w.word, s.speaker) for s in transcript.segments for w in s.words]


def timed_words(transcript: Transcript) -> list[tuple[float, float, str | None]]:
    return [(w.start_s, w.end_s, s.speaker) for s in transcript.segments for w in s.words]


@dataclass(frozen=True)
class SpeakerResult:
    name: str
    method: str  # "by time" (rendered/TextGrid reference) or "aligned" (turns without times)
    score: AttributionScore
    oracle_accuracy: float
    audio_s: float
    wall_s: float
    synthetic: bool

    @property
    def roles_right(self) -> bool:
        return self.score.accuracy >= self.oracle_accuracy


def score_transcript(reference: Reference, transcript: Transcript) -> tuple[str, AttributionScore, float]:
    """(method, score, oracle accuracy) of an attributed transcript against a reference with roles."""
    if reference.has_times:
        turns = [(t.role or "", t.start_s or 0.0, t.end_s or 0.0) for t in reference.turns]
        score = score_by_time(turns, timed_words(transcript))
        other = score_by_time(turns, timed_words(swapped(transcript)))
        return "by time", score, max(score.accuracy, other.accuracy)
    words = [(w, t.role or "") for t in reference.turns for w in t.text.split()]
    score, _ = score_aligned(words, hypothesis_words(transcript))
    other, _ = score_aligned(words, hypothesis_words(swapped(transcript)))
    return "aligned", score, max(score.accuracy, other.accuracy)


def evaluate_speakers(
    items: Sequence[EvalItem], pipeline: Pipeline, progress: Callable[[str], None] | None = None
) -> list[SpeakerResult]:
    """Transcribe with speaker attribution on (the pipeline's ``speakers`` mode) and score each file.

    Files whose reference has no roles (plain text) are refused by the caller, not skipped here.
    """
    _ = pipeline.transcriber
    results = []
    for item in items:
        started = time.perf_counter()
        transcript = pipeline.transcribe_audio(item.audio)
        wall = time.perf_counter() - started
        method, score, oracle = score_transcript(item.reference, transcript)
        results.append(
            SpeakerResult(
                item.name, method, score, oracle, transcript.header.duration_s, wall, item.reference.synthetic
            )
        )
        if progress:
            progress(item.name)
    return results


def total(results: Sequence[SpeakerResult]) -> AttributionScore:
    return AttributionScore(
        sum(r.score.scored for r in results),
        sum(r.score.correct for r in results),
        sum(r.score.reference_words for r in results),
        sum(r.score.hypothesis_words for r in results),
        sum(r.score.unattributed for r in results),
    )


def speakers_json(results: Sequence[SpeakerResult]) -> dict[str, Any]:
    def row(score: AttributionScore, timed: bool) -> dict[str, Any]:
        # Scoring by time has no word alignment, so "scored ÷ reference words" means nothing there.
        return {
            "accuracy": round(score.accuracy, 4),
            "coverage": None if timed else round(score.coverage, 4),
            "words_scored": score.scored,
            "correct": score.correct,
            "unattributed": score.unattributed,
        }

    whole = total(results)
    oracle_correct = sum(round(r.oracle_accuracy * r.score.scored) for r in results)
    return {
        "total": {
            **row(whole, any(r.method == "by time" for r in results)),
            "oracle_roles_accuracy": round(oracle_correct / whole.scored, 4) if whole.scored else 0.0,
        },
        "files": [
            {
                "name": r.name,
                "method": r.method,
                **row(r.score, r.method == "by time"),
                "oracle_roles_accuracy": round(r.oracle_accuracy, 4),
                "roles_right": r.roles_right,
                "audio_s": round(r.audio_s, 2),
                "synthetic": r.synthetic,
            }
            for r in results
        ],
    }
