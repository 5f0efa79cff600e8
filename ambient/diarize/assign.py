"""Put speakers on a transcript: one role per word, segments split where the speaker changes.

A segment never mixes speakers after this step, because everything downstream (the note's
subjective/objective split, evidence spans, subtitles) reads ``Segment.speaker`` as the speaker of
every word in it. Splitting keeps every word and its times exactly; the pieces are renumbered
from 1 in time order so ids stay unique and ordered (evidence spans name them). A transcript
whose segments need no split keeps its ids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from ambient.types import Segment, Transcript, Word

# Smoothing: a run of fewer words than this between two runs of the *same* other speaker, inside
# one recognised segment, is taken to be that speaker (a voice flicker on a word or two). Real
# interjections ("Yes.", "Mm-hmm") come as their own segments and are never absorbed.
MIN_RUN_WORDS = 2


def smooth_runs(labels: Sequence[str | None], min_run: int = MIN_RUN_WORDS) -> list[str | None]:
    """Absorb runs shorter than ``min_run`` that sit between two runs of one other speaker."""
    out = list(labels)
    runs: list[tuple[int, int]] = []  # [start, end) of equal labels
    start = 0
    for i in range(1, len(out) + 1):
        if i == len(out) or out[i] != out[start]:
            runs.append((start, i))
            start = i
    for k in range(1, len(runs) - 1):
        a, b = runs[k]
        before, after = out[runs[k - 1][0]], out[runs[k + 1][0]]
        if b - a < min_run and before == after and before is not None:
            out[a:b] = [before] * (b - a)
    return out


def _piece(segment: Segment, words: Sequence[Word], speaker: str | None) -> Segment:
    return Segment(
        id=segment.id,
        start_s=words[0].start_s,
        end_s=words[-1].end_s,
        text=" ".join(w.word for w in words),
        words=tuple(words),
        speaker=speaker,
    )


def apply_speakers(
    transcript: Transcript,
    word_speaker: Callable[[Word], str | None],
    span_speaker: Callable[[float, float], str | None],
    *,
    smooth: bool = True,
) -> Transcript:
    """Label every word with ``word_speaker``; segments without word times get ``span_speaker``
    over their own span. Segments are split at speaker changes and renumbered if any split."""
    pieces: list[Segment] = []
    split_any = False
    for segment in transcript.segments:
        if not segment.words:
            pieces.append(replace(segment, speaker=span_speaker(segment.start_s, segment.end_s)))
            continue
        labels = [word_speaker(w) for w in segment.words]
        if smooth:
            labels = smooth_runs(labels)
        run_start = 0
        for i in range(1, len(labels) + 1):
            if i == len(labels) or labels[i] != labels[run_start]:
                pieces.append(_piece(segment, segment.words[run_start:i], labels[run_start]))
                run_start = i
        split_any = split_any or len(set(labels)) > 1
    if split_any:
        pieces = [replace(p, id=i) for i, p in enumerate(pieces, start=1)]
    else:
        # No split: keep each segment's text exactly as recognised (and its id).
        pieces = [
            replace(original, speaker=p.speaker)
            for original, p in zip(transcript.segments, pieces, strict=True)
        ]
    return Transcript(transcript.header, tuple(pieces))


def word_roles(transcript: Transcript) -> list[tuple[Word, str | None]]:
    """Every word with its segment's speaker, in order: what scoring and tests compare."""
    return [(w, s.speaker) for s in transcript.segments for w in s.words]
