"""Word error rate with substitutions, insertions and deletions, under the ``medwer`` protocol.

Both sides are normalised by medwer's normaliser (Whisper's English normaliser, number words
folded to digits), so "five hundred mg" and "500 mg" are not an error. medwer itself returns
only the edit count; a person validating a recogniser wants to know *what kind* of errors, so
the alignment here is our own Levenshtein with a backtrace that counts each kind. Its total
equals medwer's edit count (a test checks that), and medical-term WER uses medwer's own term
list and longest-match filter.

Two figures are reported, both labelled: the protocol's, and one where "OK" and "okay" are the
same word. Transcribers write both; the protocol counts them apart, which alone costs about
3 points on CAR0002 (its reference writes "OK" where Whisper writes "Okay").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_OK = re.compile(r"\bOK\b", re.IGNORECASE)


@dataclass(frozen=True)
class Edits:
    """Counts from one alignment; ``reference_words`` is the WER denominator."""

    substitutions: int = 0
    insertions: int = 0
    deletions: int = 0
    reference_words: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.insertions + self.deletions

    @property
    def wer(self) -> float | None:
        """None, never 0, when there is nothing to compare against."""
        return self.errors / self.reference_words if self.reference_words else None

    def __add__(self, other: Edits) -> Edits:
        return Edits(
            self.substitutions + other.substitutions,
            self.insertions + other.insertions,
            self.deletions + other.deletions,
            self.reference_words + other.reference_words,
        )


def edit_table(reference: Sequence[str], hypothesis: Sequence[str]) -> list[list[int]]:
    """Levenshtein table over words: ``rows[i][j]`` edits turn ``reference[:i]`` into ``hypothesis[:j]``.

    Shared by the WER counts here and the word alignment of speaker attribution, which walk it back
    with different tie-breaking. O(n·m) in lists of ints: about a second for a 9-minute interview.
    """
    n, m = len(reference), len(hypothesis)
    previous = list(range(m + 1))
    rows = [previous]
    for i in range(1, n + 1):
        current = [i] + [0] * m
        r = reference[i - 1]
        for j in range(1, m + 1):
            cost = 0 if r == hypothesis[j - 1] else 1
            current[j] = min(previous[j - 1] + cost, previous[j] + 1, current[j - 1] + 1)
        rows.append(current)
        previous = current
    return rows


def align_counts(reference: Sequence[str], hypothesis: Sequence[str]) -> Edits:
    """Minimum-edit alignment of two token lists; ties prefer substitution (one error, not two)."""
    n, m = len(reference), len(hypothesis)
    rows = edit_table(reference, hypothesis)
    s = ins = dels = 0
    i, j = n, m
    while i > 0 or j > 0:
        here = rows[i][j]
        if i > 0 and j > 0 and here == rows[i - 1][j - 1] + (reference[i - 1] != hypothesis[j - 1]):
            s += reference[i - 1] != hypothesis[j - 1]
            i, j = i - 1, j - 1
        elif i > 0 and here == rows[i - 1][j] + 1:
            dels += 1
            i -= 1
        else:
            ins += 1
            j -= 1
    return Edits(s, ins, dels, n)


def ok_is_okay(text: str) -> str:
    return _OK.sub("okay", text)


@dataclass(frozen=True)
class WerScore:
    """One file's (or a corpus's) figures; rates are fractions, None when undefined."""

    edits: Edits  # medwer protocol
    edits_okay: Edits  # the same with OK ≡ okay
    medical: Edits  # medwer's term list only

    def __add__(self, other: WerScore) -> WerScore:
        return WerScore(
            self.edits + other.edits, self.edits_okay + other.edits_okay, self.medical + other.medical
        )

    def as_dict(self) -> dict[str, Any]:
        e = self.edits
        return {
            "wer": _round(e.wer),
            "wer_ok_equals_okay": _round(self.edits_okay.wer),
            "medical_wer": _round(self.medical.wer),
            "substitutions": e.substitutions,
            "insertions": e.insertions,
            "deletions": e.deletions,
            "reference_words": e.reference_words,
            "medical_reference_words": self.medical.reference_words,
        }


EMPTY = WerScore(Edits(), Edits(), Edits())


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


class WerScorer:
    """Holds medwer's normaliser and term list (loaded once) and scores reference/hypothesis pairs."""

    def __init__(self) -> None:
        from medwer import Normalizer, default_terms_path, load_terms

        self.normalise = Normalizer()
        self.terms, self.max_tokens = load_terms(default_terms_path())

    def _tokens(self, text: str) -> list[str]:
        return str(self.normalise(text)).split()

    def score(self, reference: str, hypothesis: str) -> WerScore:
        from medwer import keep_medical

        ref, hyp = self._tokens(reference), self._tokens(hypothesis)
        medical = align_counts(
            keep_medical(" ".join(ref), self.terms, self.max_tokens).split(),
            keep_medical(" ".join(hyp), self.terms, self.max_tokens).split(),
        )
        okay = align_counts(self._tokens(ok_is_okay(reference)), self._tokens(ok_is_okay(hypothesis)))
        return WerScore(align_counts(ref, hyp), okay, medical)
