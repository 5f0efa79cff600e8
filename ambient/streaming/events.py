"""What the streaming core emits: interim text and final words are different types, never a flag.

A :class:`PartialText` may be replaced by the next one at any time; a :class:`CommittedWords`
never changes once emitted, so a consumer (the journal, the note drafter, a subscriber's screen)
can append it and forget it. Word times are seconds on the encounter's audio time line, counted
from the first sample fed to the core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ambient.types import Word


@dataclass(frozen=True, slots=True)
class PartialText:
    """The current guess for audio not yet committed; the next partial replaces it."""

    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class CommittedWords:
    """Words that are final: in time order, after every word committed before them."""

    words: tuple[Word, ...]

    @property
    def text(self) -> str:
        return " ".join(w.word for w in self.words)


Event = PartialText | CommittedWords


def event_to_dict(event: Event) -> dict[str, Any]:
    """The wire form shared by ``ambient listen --events jsonl`` and the socket (without timing)."""
    if isinstance(event, CommittedWords):
        return {
            "kind": "committed",
            "words": [
                {"word": w.word, "start_s": w.start_s, "end_s": w.end_s, "probability": w.probability}
                for w in event.words
            ],
        }
    return {"kind": "partial", "text": event.text, "start_s": event.start_s, "end_s": event.end_s}
