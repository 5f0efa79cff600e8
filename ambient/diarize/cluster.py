"""Two voices from a cloud of window embeddings: clustering, then a per-frame speaker score.

Sans-I/O: arrays in, arrays out, so every step is tested on synthetic points.

An encounter has two main voices, so we ask for two clusters: Ward linkage on unit-length
embeddings (robust to the odd outlier window that makes average-linkage put a cough in a cluster
of its own), then a few rounds of nearest-centroid reassignment by cosine, which moves windows
that straddle a turn change to the voice they mostly hold. Ward needs the full distance matrix,
so on long recordings it sees an evenly spaced subsample and every window is then assigned to the
nearest centroid.

Words are shorter than windows, so a word is not given its window's label: each 10 ms frame gets
the mean, over the windows covering it, of how much nearer the window is to voice 0 than to
voice 1, and a word takes the sign of that margin summed over its frames. Near a turn change the
windows that lie mostly in the other turn then outvote the one that straddles it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FRAME_S = 0.01
# Ward on more points than this costs too much memory (n² distances); subsample above it.
_MAX_WARD_POINTS = 2500
_REFINE_ROUNDS = 5
# Two centroids closer than this (cosine) are one voice. Measured on 2-way splits: one speaker 0.78 (an
# 11 s clip) to 0.96 (a 69 s speech); two speakers 0.70 (espeak) and 0.83 (CAR0002). So only a clear
# monologue is caught; short one-voice clips are still split in two (see docs/benchmarks.md).
SAME_VOICE_COSINE = 0.93
# A word is uncertain when its mean margin (cosine to one voice minus the other) is below this: the
# weakest 5 % of CAR0002's words. Chosen on CAR0002, the one real interview here (97.6 → 98.4 %).
WEAK_MARGIN = 0.04
JOIN_NEXT_S = 1.5

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class VoiceClusters:
    """``labels[i]`` is window i's voice (0 or 1); ``centroids`` are unit vectors, one per voice."""

    labels: npt.NDArray[np.int64]
    centroids: FloatArray

    @property
    def n_voices(self) -> int:
        return len(self.centroids)

    @property
    def centroid_cosine(self) -> float:
        return float(self.centroids[0] @ self.centroids[1]) if self.n_voices == 2 else 1.0


def unit_rows(x: npt.NDArray[np.floating[Any]]) -> FloatArray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    result: FloatArray = (x / np.maximum(norms, 1e-9)).astype(np.float32)
    return result


def _centroids(x: FloatArray, labels: npt.NDArray[np.int64], k: int) -> FloatArray:
    return unit_rows(np.stack([x[labels == c].mean(axis=0) for c in range(k)]))


def cluster_two(embeddings: npt.NDArray[np.floating[Any]]) -> VoiceClusters:
    """Split windows into two voices; one voice when there is only one (or too few windows).

    Voice 0 is whichever speaks first, so labels do not depend on the clustering's numbering.
    """
    x = unit_rows(np.asarray(embeddings, dtype=np.float32))
    if len(x) < 4:
        return VoiceClusters(np.zeros(len(x), dtype=np.int64), _one_centroid(x))
    from scipy.cluster.hierarchy import fcluster, linkage

    step = max(1, int(np.ceil(len(x) / _MAX_WARD_POINTS)))
    sample = x[::step]
    tree = linkage(sample, method="ward")
    sample_labels = fcluster(tree, t=2, criterion="maxclust").astype(np.int64) - 1
    if len(set(sample_labels.tolist())) < 2:
        return VoiceClusters(np.zeros(len(x), dtype=np.int64), _one_centroid(x))
    centroids = _centroids(sample, sample_labels, 2)
    labels = np.argmax(x @ centroids.T, axis=1).astype(np.int64)
    for _ in range(_REFINE_ROUNDS):
        if len(set(labels.tolist())) < 2:
            break
        centroids = _centroids(x, labels, 2)
        updated = np.argmax(x @ centroids.T, axis=1).astype(np.int64)
        if np.array_equal(updated, labels):
            break
        labels = updated
    if len(set(labels.tolist())) < 2 or float(centroids[0] @ centroids[1]) > SAME_VOICE_COSINE:
        return VoiceClusters(np.zeros(len(x), dtype=np.int64), _one_centroid(x))
    if labels[0] == 1:
        labels = 1 - labels
        centroids = centroids[::-1].copy()
    return VoiceClusters(labels, centroids)


def _one_centroid(x: FloatArray) -> FloatArray:
    if len(x) == 0:
        return np.zeros((1, 256), dtype=np.float32)
    return unit_rows(x.mean(axis=0, keepdims=True))


def frame_margins(
    starts_s: npt.NDArray[np.float64],
    ends_s: npt.NDArray[np.float64],
    embeddings: npt.NDArray[np.floating[Any]],
    centroids: FloatArray,
    duration_s: float,
) -> npt.NDArray[np.float64]:
    """Per 10 ms frame: mean over covering windows of cos(voice 0) − cos(voice 1); NaN where no
    window covers the frame. Positive means voice 0."""
    n_frames = int(np.ceil(max(duration_s, float(ends_s.max(initial=0.0))) / FRAME_S)) + 1
    total = np.zeros(n_frames)
    count = np.zeros(n_frames)
    if len(centroids) < 2 or len(embeddings) == 0:
        return np.full(n_frames, np.nan)
    sims = unit_rows(np.asarray(embeddings, dtype=np.float32)) @ centroids.T
    margins = sims[:, 0] - sims[:, 1]
    # A difference of cumulative sums adds each window to its frames in O(windows + frames).
    delta_total = np.zeros(n_frames + 1)
    delta_count = np.zeros(n_frames + 1)
    first = np.clip(np.floor(starts_s / FRAME_S).astype(np.int64), 0, n_frames)
    last = np.clip(np.ceil(ends_s / FRAME_S).astype(np.int64), 0, n_frames)
    np.add.at(delta_total, first, margins)
    np.add.at(delta_total, last, -margins)
    np.add.at(delta_count, first, 1.0)
    np.add.at(delta_count, last, -1.0)
    total = np.cumsum(delta_total)[:n_frames]
    count = np.round(np.cumsum(delta_count)[:n_frames])
    with np.errstate(invalid="ignore", divide="ignore"):
        result: npt.NDArray[np.float64] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return result


def span_margin(margins: npt.NDArray[np.float64], start_s: float, end_s: float) -> float:
    """Mean margin over the covered frames of a stretch of time; NaN when none is covered."""
    a = max(0, int(np.floor(start_s / FRAME_S)))
    b = max(a + 1, int(np.ceil(end_s / FRAME_S)))
    piece = margins[a:b]
    covered = piece[~np.isnan(piece)]
    return float(covered.mean()) if covered.size else float("nan")


def voices_for_spans(
    margins: npt.NDArray[np.float64],
    spans: Sequence[tuple[float, float]],
    weak: float = WEAK_MARGIN,
    max_gap_s: float = JOIN_NEXT_S,
) -> list[int | None]:
    """Voice of each word (spans in time order), with a turn-taking rule for uncertain words.

    A word whose margin is weaker than ``weak`` (or that no window covers) is mostly a short
    utterance in a VAD region of its own, embedded from half a second of voice: "Okay." opening
    the clinician's next question is the typical case (12 of the 23 errors on CAR0002 before this
    rule). Such a word joins the next confident word when that follows within ``max_gap_s``
    (turns start with a discourse marker far more often than they trail one), else the previous.
    """
    values = [span_margin(margins, a, b) for a, b in spans]
    sure: list[int | None] = [None if np.isnan(v) or abs(v) < weak else (0 if v >= 0 else 1) for v in values]
    voices = list(sure)
    following: int | None = None  # index of the next confident word, scanning backwards
    after: list[int | None] = [None] * len(sure)
    for i in range(len(sure) - 1, -1, -1):
        after[i] = following
        if sure[i] is not None:
            following = i
    previous: int | None = None
    for i, voice in enumerate(sure):
        if voice is not None:
            previous = i
            continue
        nxt = after[i]
        if nxt is not None and spans[nxt][0] - spans[i][1] <= max_gap_s:
            voices[i] = sure[nxt]
        elif previous is not None:
            voices[i] = sure[previous]
        elif nxt is not None:
            voices[i] = sure[nxt]
        elif not np.isnan(values[i]):
            voices[i] = 0 if values[i] >= 0 else 1
    return voices


def span_voice(margins: npt.NDArray[np.float64], start_s: float, end_s: float) -> int | None:
    """Voice (0/1) of a stretch of time from its frames' margins; the nearest covered frame when
    the stretch itself is uncovered (a word the recogniser placed just outside the VAD region);
    None when no frame is covered at all."""
    a = int(np.floor(start_s / FRAME_S))
    b = max(a + 1, int(np.ceil(end_s / FRAME_S)))
    piece = margins[max(0, a) : max(0, b)]
    covered = piece[~np.isnan(piece)]
    if covered.size:
        return 0 if float(covered.sum()) >= 0 else 1
    known = np.flatnonzero(~np.isnan(margins))
    if known.size == 0:
        return None
    middle = (a + b) / 2
    nearest = int(known[np.argmin(np.abs(known - middle))])
    return 0 if margins[nearest] >= 0 else 1
