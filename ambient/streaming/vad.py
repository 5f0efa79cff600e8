"""Voice activity for a stream: Silero VAD scored frame by frame as audio arrives.

faster-whisper ships Silero VAD (ONNX) and scores a whole array at once. A stream cannot wait for
the whole array, so :class:`SileroScorer` scores each new run of 512-sample frames as it comes,
carrying Silero's 64-sample context and its recurrent state from one call to the next; the
probabilities match those of one call over the concatenated audio.

:class:`SpeechGate` turns probabilities into speech starts and ends with the hysteresis of
faster-whisper's ``get_speech_timestamps`` (enter at ``threshold``, leave below
``threshold - 0.15``, and only after ``min_silence_s`` of silence). It is pure: frames of
probabilities in, edges out, so the streaming core can be tested with any scorer.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ambient.errors import ModelIntegrityError
from ambient.hashing import sha256_file

FRAME_SAMPLES = 512  # Silero's window at 16 kHz: 32 ms
_CONTEXT_SAMPLES = 64
# silero_vad_v6.onnx as shipped in faster-whisper 1.2.x: checked on load like every model we run.
SILERO_SHA256 = "4cbf549b8326f60f80f2536d9eefeb450a9abe83365a098031c89719f1be17d2"


class SpeechScorer(Protocol):
    """Speech probability per 512-sample frame; called with consecutive audio, in order."""

    def score(self, frames: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...

    def reset(self) -> None: ...


@functools.cache
def _silero_session() -> Any:
    import onnxruntime
    from faster_whisper.utils import get_assets_path

    path = os.path.join(get_assets_path(), "silero_vad_v6.onnx")
    actual = sha256_file(Path(path))
    if actual != SILERO_SHA256:
        raise ModelIntegrityError(
            f"Silero VAD: sha256 of {path} is {actual}, expected {SILERO_SHA256}; "
            "reinstall faster-whisper (pip install --force-reinstall faster-whisper)"
        )
    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 4
    return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"], sess_options=opts)


class SileroScorer:
    """Silero VAD over a stream (the ONNX session is shared and loaded once per process)."""

    def __init__(self) -> None:
        self._session = _silero_session()
        self.reset()

    def reset(self) -> None:
        self._context = np.zeros(_CONTEXT_SAMPLES, dtype=np.float32)
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)

    def score(self, frames: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if len(frames) == 0:
            return np.zeros(0, dtype=np.float32)
        batched = frames.astype(np.float32, copy=False).reshape(-1, FRAME_SAMPLES)
        contexts = np.concatenate([self._context[None, :], batched[:-1, -_CONTEXT_SAMPLES:]])
        self._context = batched[-1, -_CONTEXT_SAMPLES:].copy()
        inputs = np.concatenate([contexts, batched], axis=1)
        out, self._h, self._c = self._session.run(None, {"input": inputs, "h": self._h, "c": self._c})
        probabilities: npt.NDArray[np.float32] = np.asarray(out, dtype=np.float32).reshape(-1)
        return probabilities


@dataclass(frozen=True)
class GateOptions:
    threshold: float = 0.5
    min_silence_s: float = 0.5  # silence this long ends an utterance (and finalises its words)
    speech_pad_s: float = 0.2  # audio kept before a start, so the first word is not clipped


@dataclass(frozen=True, slots=True)
class Edge:
    """A speech start or end at ``frame`` (index counted from the start of the stream)."""

    kind: str  # "start" | "end"
    frame: int


class SpeechGate:
    """Hysteresis over frame probabilities: starts at once, ends after ``min_silence_s`` quiet."""

    def __init__(self, options: GateOptions, sample_rate_hz: int = 16000) -> None:
        self.options = options
        self._frame_s = FRAME_SAMPLES / sample_rate_hz
        self._negative = max(options.threshold - 0.15, 0.01)
        self._min_silence_frames = max(1, round(options.min_silence_s / self._frame_s))
        self.in_speech = False
        self.heard_until = 0  # end (frame index) of the last frame at or above the threshold
        self._quiet = 0
        self._frame = 0

    def push(self, probabilities: npt.NDArray[np.float32]) -> list[Edge]:
        edges: list[Edge] = []
        for p in probabilities:
            if p >= self.options.threshold:
                self.heard_until = self._frame + 1
            if not self.in_speech:
                if p >= self.options.threshold:
                    self.in_speech = True
                    self._quiet = 0
                    edges.append(Edge("start", self._frame))
            elif p < self._negative:
                self._quiet += 1
                if self._quiet >= self._min_silence_frames:
                    self.in_speech = False
                    # the utterance ends after the quiet frames; Whisper sees the short pause
                    edges.append(Edge("end", self._frame + 1))
            elif p >= self.options.threshold:
                self._quiet = 0
            self._frame += 1
        return edges
