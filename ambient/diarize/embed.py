"""Voice embeddings over the speech of a recording: Silero VAD regions, sliding windows, GE2E.

Audio is read in 5-minute blocks (:func:`ambient.audio.decode.iter_blocks`), so a long encounter
costs the memory of one block plus 1 KB per window. Within each speech region we embed windows of
``window_s`` every ``hop_s``; a region shorter than one window is embedded whole when it is at
least :data:`~ambient.diarize.models.MIN_WINDOW_S` long ("Yes.", "Seven." are speaker turns too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ambient.audio.decode import iter_blocks
from ambient.diarize.models import FRAME_STEP_S, MIN_WINDOW_S, SAMPLE_RATE_HZ, SpeakerEncoder

_BLOCK_S = 300.0


@dataclass(frozen=True)
class WindowOptions:
    """1 s windows every 0.25 s: on CAR0002 these place turn changes better than 1.5 s windows
    (97.6 % against 96.7 % of words, docs/benchmarks.md) at four embeddings per second of speech,
    which the small LSTM runs at a few seconds per minute of audio."""

    window_s: float = 1.0
    hop_s: float = 0.25


@dataclass(frozen=True)
class SpeechWindows:
    """Embedded windows in time order: ``embeddings[i]`` covers ``starts_s[i]``–``ends_s[i]``."""

    starts_s: npt.NDArray[np.float64]
    ends_s: npt.NDArray[np.float64]
    embeddings: npt.NDArray[np.float32]
    regions_s: tuple[tuple[float, float], ...]  # the VAD's speech regions
    audio_s: float

    def __len__(self) -> int:
        return len(self.starts_s)


def speech_regions(samples: npt.NDArray[np.float32]) -> list[tuple[int, int]]:
    """Silero VAD regions (sample indices), with short pauses kept apart: turns often change in
    a pause of a quarter second, so regions must not be merged across them."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_silence_duration_ms=200, speech_pad_ms=60, max_speech_duration_s=30.0)
    return [(int(r["start"]), int(r["end"])) for r in get_speech_timestamps(samples, options)]


def window_frames(n_frames: int, width: int, hop: int) -> list[tuple[int, int]]:
    """Frame spans of ``width`` every ``hop`` covering ``n_frames``; the last is right-aligned so
    the end of a region is always seen, and a region shorter than ``width`` is one span."""
    if n_frames <= width:
        return [(0, n_frames)]
    spans = [(i, i + width) for i in range(0, n_frames - width + 1, hop)]
    if spans[-1][1] < n_frames:
        spans.append((n_frames - width, n_frames))
    return spans


def embed_samples(
    encoder: SpeakerEncoder,
    samples: npt.NDArray[np.float32],
    offset_s: float,
    options: WindowOptions,
) -> tuple[list[float], list[float], list[npt.NDArray[np.float32]], list[tuple[float, float]]]:
    """Windows of one block of audio; times on the encounter's time line."""
    width = round(options.window_s / FRAME_STEP_S)
    hop = max(1, round(options.hop_s / FRAME_STEP_S))
    min_frames = round(MIN_WINDOW_S / FRAME_STEP_S)
    starts: list[float] = []
    ends: list[float] = []
    mels: list[npt.NDArray[np.float32]] = []
    regions: list[tuple[float, float]] = []
    for a, b in speech_regions(samples):
        region_start_s = offset_s + a / SAMPLE_RATE_HZ
        regions.append((region_start_s, offset_s + b / SAMPLE_RATE_HZ))
        mel = encoder.mel(samples[a:b])
        if len(mel) < min_frames:
            continue
        for f0, f1 in window_frames(len(mel), width, hop):
            starts.append(region_start_s + f0 * FRAME_STEP_S)
            ends.append(min(region_start_s + f1 * FRAME_STEP_S, offset_s + b / SAMPLE_RATE_HZ))
            mels.append(mel[f0:f1])
    embeddings = list(encoder.embed_mels(mels)) if mels else []
    return starts, ends, embeddings, regions


def embed_file(encoder: SpeakerEncoder, path: Path, options: WindowOptions | None = None) -> SpeechWindows:
    """Every speech window of an audio file (decoded to 16 kHz mono by our own decoder)."""
    options = options or WindowOptions()
    starts: list[float] = []
    ends: list[float] = []
    embeddings: list[npt.NDArray[np.float32]] = []
    regions: list[tuple[float, float]] = []
    audio_s = 0.0
    for block in iter_blocks(path, _BLOCK_S):
        samples = block.samples.astype(np.float32, copy=False)
        s, e, emb, reg = embed_samples(encoder, samples, block.start_s, options)
        starts += s
        ends += e
        embeddings += emb
        regions += reg
        audio_s = block.start_s + block.duration_s
    return SpeechWindows(
        starts_s=np.asarray(starts, dtype=np.float64),
        ends_s=np.asarray(ends, dtype=np.float64),
        embeddings=np.asarray(embeddings, dtype=np.float32).reshape(-1, 256),
        regions_s=tuple(regions),
        audio_s=audio_s,
    )
