"""Scoring speaker attribution: word-level accuracy against a labelled reference.

A reference transcript (``D:``/``P:`` turns) has no times and its words differ from what the
recogniser heard, so hypothesis words are aligned to reference words by edit distance over
normalised spellings, and only words that align *and* match are scored: a misheard word says
nothing about who said it. Coverage (scored ÷ reference words) is reported beside accuracy, so
an aligner that scores only easy words cannot look good.

With rendered audio the reference has exact turn times instead, and each word is scored by the
turn its midpoint falls in (:func:`score_by_time`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

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
    previous = list(range(m + 1))
    rows: list[list[int]] = [previous]
    for i in range(1, n + 1):
        current = [i] + [0] * m
        r = reference[i - 1]
        for j in range(1, m + 1):
            cost = 0 if r == hypothesis[j - 1] else 1
            current[j] = min(previous[j - 1] + cost, previous[j] + 1, current[j - 1] + 1)
        rows.append(current)
        previous = current
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
