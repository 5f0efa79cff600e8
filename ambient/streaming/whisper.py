"""The real hypothesis producer: one faster-whisper model, loaded once, decoding a buffer.

The model is resolved through :mod:`ambient.asr.models` exactly as the batch path does (packaged
manifests, sha256 of every file checked on load, int8 on CPU), so a live encounter and a
recorded one name the same :class:`~ambient.types.ModelRef`.

Settings differ from batch on purpose: streaming decodes the same few seconds again and again,
so it uses the sequential decoder on one short buffer (no batching, no VAD inside faster-whisper:
our gate already removed silence) with greedy search by default, and asks for word timestamps,
which LocalAgreement needs to place the commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ambient.asr.models import ResolvedModel, resolve_model
from ambient.streaming.core import Hypothesis
from ambient.types import ModelRef, Word

# Segments Whisper itself thinks are probably not speech are dropped, as whisper_streaming does.
_NO_SPEECH_PROB = 0.9


@dataclass(frozen=True)
class WhisperStreamOptions:
    beam_size: int = 1
    language: str | None = "en"
    cpu_threads: int = 0


class WhisperProducer:
    """Wraps one loaded ``WhisperModel``; ``hypothesise`` is called from one thread at a time."""

    def __init__(self, resolved: ResolvedModel, options: WhisperStreamOptions | None = None) -> None:
        from faster_whisper import WhisperModel

        self.options = options or WhisperStreamOptions()
        self.model: ModelRef = resolved.ref
        self._language = "en" if resolved.english_only else self.options.language
        self._model = WhisperModel(
            resolved.path,
            device="cpu",
            compute_type=resolved.ref.compute_type,
            cpu_threads=self.options.cpu_threads,
            local_files_only=True,
        )

    @classmethod
    def load(cls, name: str, cache_dir: Path, options: WhisperStreamOptions | None = None) -> WhisperProducer:
        return cls(resolve_model(name, cache_dir, "int8"), options)

    def hypothesise(self, audio: npt.NDArray[np.float32], prompt: str) -> Hypothesis:
        segments, _ = self._model.transcribe(
            audio,
            language=self._language,
            beam_size=self.options.beam_size,
            word_timestamps=True,
            initial_prompt=prompt or None,
            condition_on_previous_text=True,
            vad_filter=False,
            temperature=0.0,
        )
        words: list[Word] = []
        ends: list[float] = []
        for segment in segments:
            if segment.no_speech_prob > _NO_SPEECH_PROB:
                continue
            ends.append(float(segment.end))
            for w in segment.words or ():
                text = w.word.strip()
                if text:
                    words.append(Word(text, float(w.start), float(w.end), round(float(w.probability), 4)))
        return Hypothesis(tuple(words), tuple(ends))
