"""Channel mode: a recording with one microphone per speaker (a stereo file, left and right).

Here no voice model is needed: a word belongs to the channel where it is loudest. Each channel is
decoded separately at 16 kHz and reduced to 10 ms RMS frames (100 values a second, so an hour
costs 3 MB), and a word goes to the channel with more energy over its span. Which channel is the
clinician is then decided like any two voices (:mod:`ambient.diarize.roles`).

A stereo file whose two channels carry the same signal (mono saved as stereo, or one room
microphone) says nothing about speakers; :func:`channels_differ` detects it so ``--speakers auto``
falls back to voice embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from ambient.audio.decode import probe
from ambient.errors import AudioDecodeError, UsageError

SAMPLE_RATE_HZ = 16000
FRAME_S = 0.01
_FRAME = int(FRAME_S * SAMPLE_RATE_HZ)
# Channels whose frame energies differ by less than this (relative, in the median frame) are
# copies of one signal.
_SAME_SIGNAL = 0.05


@dataclass(frozen=True)
class ChannelEnergy:
    """``rms[c, f]``: RMS of channel ``c`` in 10 ms frame ``f``."""

    rms: npt.NDArray[np.float32]

    @property
    def duration_s(self) -> float:
        return float(self.rms.shape[1]) * FRAME_S


def channel_energy(path: Path) -> ChannelEnergy:
    """Per-channel 10 ms RMS of a file with exactly two channels, streamed block by block."""
    info = probe(path)
    if info.channels != 2:
        raise UsageError(
            f"{path} has {info.channels} channel(s); --speakers channels needs a stereo file "
            "with one speaker per channel (use --speakers embeddings for one microphone)"
        )
    frames: list[npt.NDArray[np.float32]] = []
    pending = np.zeros((2, 0), dtype=np.float32)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=SAMPLE_RATE_HZ)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    pending = np.concatenate([pending, out.to_ndarray().astype(np.float32)], axis=1)
                    usable = pending.shape[1] // _FRAME * _FRAME
                    if usable:
                        block = pending[:, :usable].reshape(2, -1, _FRAME)
                        frames.append(np.sqrt(np.mean(block**2, axis=2)).astype(np.float32))
                        pending = pending[:, usable:]
    except (av.error.FFmpegError, ValueError) as exc:
        raise AudioDecodeError(f"{path} could not be decoded per channel ({exc}); re-export it") from None
    if pending.shape[1]:
        frames.append(np.sqrt(np.mean(pending**2, axis=1, keepdims=True)).astype(np.float32))
    rms = np.concatenate(frames, axis=1) if frames else np.zeros((2, 0), dtype=np.float32)
    return ChannelEnergy(rms)


def channels_differ(energy: ChannelEnergy) -> bool:
    """True when the two channels carry different signals (one speaker each, as far as we can
    tell), False for a copied or near-copied mono signal."""
    loud = energy.rms.max(axis=0) > 1e-4
    if not loud.any():
        return False
    left, right = energy.rms[0, loud], energy.rms[1, loud]
    relative = np.abs(left - right) / np.maximum(left, right)
    return float(np.median(relative)) > _SAME_SIGNAL


def span_channel(energy: ChannelEnergy, start_s: float, end_s: float) -> int | None:
    """The louder channel (0 left, 1 right) over a span; None when both are silent there."""
    a = max(0, int(np.floor(start_s / FRAME_S)))
    b = max(a + 1, int(np.ceil(end_s / FRAME_S)))
    piece = energy.rms[:, a:b]
    if piece.size == 0:
        return None
    power = (piece.astype(np.float64) ** 2).sum(axis=1)
    if power.max() <= 0:
        return None
    return int(np.argmax(power))
