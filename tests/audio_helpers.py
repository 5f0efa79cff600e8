"""Test helpers that make audio files in any format (PyAV encoders, no fixtures)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

CODECS = {
    ".wav": ("wav", "pcm_s16le"),
    ".flac": ("flac", "flac"),
    ".mp3": ("mp3", "libmp3lame"),
    ".ogg": ("ogg", "libopus"),
    ".m4a": ("mp4", "aac"),
    ".webm": ("webm", "libopus"),
}


def encode(path: Path, samples: np.ndarray, rate: int, channels: int = 1) -> Path:
    """Write float samples in [-1, 1] (mono) to ``path`` with the codec its suffix implies."""
    container_format, codec = CODECS[path.suffix]
    out_rate = 48000 if codec == "libopus" else rate
    layout = "stereo" if channels == 2 else "mono"
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    if out_rate != rate:
        positions = np.arange(int(len(pcm) * out_rate / rate)) * rate / out_rate
        pcm = np.interp(positions, np.arange(len(pcm)), pcm).astype(np.int16)
    frames = np.tile(pcm[:, None], (1, channels)).reshape(1, -1)
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=out_rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(frames, format="s16", layout=layout)
        frame.sample_rate = out_rate
        frame.time_base = Fraction(1, out_rate)
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
