"""LocalAgreement-2: commit what two consecutive hypotheses agree on.

A port of ``HypothesisBuffer`` from ufal/whisper_streaming (Macháček et al., 2023). Whisper is
re-run over a growing audio buffer; each run gives a hypothesis, a list of timed words. A word
is committed once two consecutive hypotheses agree on it *and* on everything before it (the
longest common prefix). Words already committed are removed from the front of each new
hypothesis: first by time (words starting before the last committed word ended), then by text
(a repeated 1- to 5-word n-gram at the seam, which Whisper produces when the buffer begins in
the middle of an already committed phrase).

Differences from the original, on purpose: words are compared by a normalised key (case and
surrounding punctuation ignored), because "pain" and "pain." are the same word to the reader
and waiting for Whisper to settle on punctuation only delays the commit; and words are our
frozen :class:`~ambient.types.Word`, already on the encounter's time line.
"""

from __future__ import annotations

from dataclasses import replace

from ambient.types import Word

_PUNCTUATION = ".,!?;:\"'“”‘’()[]-…"
# Words starting this much before the last committed end still count as new (times jitter).
_TIME_SLACK_S = 0.1
# The n-gram de-duplication looks only at a seam this close to the last committed word's end. Not
# to the start of a fresh buffer (after a pause): from there it removed real repeats a second
# after the first ("six days ago. Six days ago?", "a couple of times a month" said twice).
_SEAM_S = 1.0
_MAX_NGRAM = 5
# The last committed word, said again by a new hypothesis, starts this close to where it did.
_ANCHOR_S = 0.3


def word_key(text: str) -> str:
    """What two hypotheses must share for a word to count as agreed."""
    return text.strip().strip(_PUNCTUATION).lower()


class HypothesisBuffer:
    """Holds the previous hypothesis and commits its agreement with the next one."""

    def __init__(self, seam_across_resets: bool = True) -> None:
        self.seam_across_resets = seam_across_resets
        self.committed_in_buffer: list[Word] = []  # committed words still inside the audio buffer
        self.previous: list[Word] = []  # the last hypothesis, less what has been committed
        self.new: list[Word] = []
        self.last_committed_end_s = 0.0
        self._reset_s = 0.0  # the buffer's start (see ``reset``)

    def insert(self, hypothesis: list[Word]) -> None:
        """Take a new hypothesis (times already on the encounter time line)."""
        new = [w for w in hypothesis if w.start_s > self.last_committed_end_s - _TIME_SLACK_S]
        anchor = self._anchor(hypothesis)
        if anchor is not None and len(hypothesis) - anchor - 1 > len(new):
            new = hypothesis[anchor + 1 :]
        last = self.committed_in_buffer[-1] if self.committed_in_buffer else None
        if new and last is not None and abs(new[0].start_s - last.end_s) < _SEAM_S:
            tail = [word_key(w.word) for w in self.committed_in_buffer]
            for n in range(min(len(tail), len(new), _MAX_NGRAM), 0, -1):
                if tail[-n:] == [word_key(w.word) for w in new[:n]]:
                    new = new[n:]
                    break
        self.new = new

    def _anchor(self, hypothesis: list[Word]) -> int | None:
        """Where the new hypothesis says the last committed word again, if it clearly does.

        Whisper stretches a word over the silence after it ("difficulty" lasting 1.2 s); the
        next decode puts the following word ("breathing") inside that stretch, and the time
        filter alone drops it for good. When the hypothesis holds the last committed word (and
        the one before it) at about the same time, what follows it is new, whatever its time.
        Only within this buffer: across a pause the words before it are not in the audio. For
        the same reason, when the last committed word is the first of this buffer, it is found
        without the one before: on CAR0002 "No, but" was agreed on, "but" (p 0.07) refused, and
        the next decodes heard "No nausea or vomiting" with "nausea" starting before where the
        refused "but" had; without the anchor, "nausea" was lost to the time filter.
        """
        if not self.committed_in_buffer or self.committed_in_buffer[-1].end_s <= self._reset_s:
            return None
        last = self.committed_in_buffer[-1]
        # the word before it, unless that one is from before the pause (not in this buffer's audio)
        earlier = self.committed_in_buffer[-2] if len(self.committed_in_buffer) > 1 else None
        before = word_key(earlier.word) if earlier is not None and earlier.end_s > self._reset_s else None
        best: int | None = None
        for i, w in enumerate(hypothesis):
            if word_key(w.word) != word_key(last.word) or abs(w.start_s - last.start_s) > _ANCHOR_S:
                continue
            if before is not None and (i == 0 or word_key(hypothesis[i - 1].word) != before):
                continue
            if best is None or abs(w.start_s - last.start_s) < abs(hypothesis[best].start_s - last.start_s):
                best = i
        return best

    def withdraw(self, words: list[Word]) -> None:
        """Committed words the caller refused (too unlikely): forget them as committed.

        If they ended the committed text, the time they covered is open again, so a real word
        that a later hypothesis puts there (the "and" an invented, refused "Okay." covered) is
        not lost to the time filter; nor does a refused word count in the seam check.
        """
        if not words:
            return
        gone = {id(w) for w in words}
        first_trailing: Word | None = None  # the first of the refused words that end the text
        for w in reversed(self.committed_in_buffer):
            if id(w) not in gone:
                break
            first_trailing = w
        self.committed_in_buffer = [w for w in self.committed_in_buffer if id(w) not in gone]
        if first_trailing is not None:
            self.last_committed_end_s = max(first_trailing.start_s, self._reset_s)

    def flush(self) -> list[Word]:
        """Commit the longest common prefix of the previous and the new hypothesis."""
        committed: list[Word] = []
        while self.new and self.previous and word_key(self.new[0].word) == word_key(self.previous[0].word):
            word = self.new.pop(0)
            self.previous.pop(0)
            committed.append(word)
            self.last_committed_end_s = word.end_s
        self.previous, self.new = self.new, []
        self.committed_in_buffer.extend(committed)
        return committed

    def pop_committed(self, time_s: float) -> None:
        """Forget committed words that ended before the audio buffer's new start."""
        while self.committed_in_buffer and self.committed_in_buffer[0].end_s <= time_s:
            self.committed_in_buffer.pop(0)

    def pending(self) -> list[Word]:
        """The uncommitted rest of the latest hypothesis: what a partial shows."""
        return list(self.previous)

    def commit_pending(self) -> list[Word]:
        """Commit everything still pending (end of an utterance: no later hypothesis will come)."""
        words = self.previous
        self.previous = []
        if words:
            self.last_committed_end_s = words[-1].end_s
            self.committed_in_buffer.extend(words)
        return words

    def reset(self, time_s: float, open_from_s: float | None = None) -> None:
        """Start afresh at ``time_s`` (after a pause: nothing before it can come back by time).

        ``open_from_s`` (at most ``time_s``): new words may start from there instead, for audio
        before the buffer that is decoded again and holds words never committed.

        The last few committed words stay for the n-gram check at the seam: decoded without the
        audio before it, a fresh buffer often begins with the end of its prompt again ("… it came
        on" → "on, okay, and has …"), which the time filter cannot catch.
        """
        self.committed_in_buffer = self.committed_in_buffer[-_MAX_NGRAM:] if self.seam_across_resets else []
        self.previous = []
        self.new = []
        floor_s = time_s if open_from_s is None else min(time_s, open_from_s)
        self.last_committed_end_s = max(self.last_committed_end_s, floor_s)
        self._reset_s = time_s


def clamp_monotone(words: list[Word], floor_s: float) -> list[Word]:
    """Make word times non-decreasing and not before ``floor_s`` (Whisper's times can overlap)."""
    out: list[Word] = []
    for word in words:
        start = max(word.start_s, floor_s)
        end = max(word.end_s, start)
        out.append(replace(word, start_s=round(start, 3), end_s=round(end, 3)) if
                   (start, end) != (word.start_s, word.end_s) else word)  # fmt: skip
        floor_s = end
    return out
