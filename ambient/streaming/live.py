"""Everything a live stream needs, built once: the model, and a fresh core per encounter.

The CLI (``ambient listen``), the benchmark and the agent all build through here, so the
benchmark measures exactly what a user runs. The model is loaded once per process and shared by
every encounter's core; the Silero scorer and the agreement state belong to one encounter.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ambient.asr.prompt import build_prompt
from ambient.streaming.core import StreamingOptions, StreamingRecognizer
from ambient.streaming.vad import SileroScorer
from ambient.streaming.whisper import WhisperProducer, WhisperStreamOptions
from ambient.types import Word


@dataclass(frozen=True)
class LiveOptions:
    model: str = "tiny.en"
    whisper: WhisperStreamOptions = field(default_factory=WhisperStreamOptions)
    streaming: StreamingOptions = field(default_factory=StreamingOptions)
    clinical_prompt: bool = False


class LiveRecognizer:
    """One loaded model; :meth:`new_stream` gives each encounter its own core."""

    def __init__(self, options: LiveOptions, model_cache: Path) -> None:
        self.options = options
        streaming = options.streaming
        if options.clinical_prompt and not streaming.initial_prompt:
            streaming = replace(streaming, initial_prompt=build_prompt())
        self._streaming = streaming
        self.producer = WhisperProducer.load(options.model, model_cache, options.whisper)

    def new_stream(self, origin_s: float = 0.0, prior_words: tuple[Word, ...] = ()) -> StreamingRecognizer:
        """A fresh core; ``origin_s``/``prior_words`` continue a resumed encounter's time line."""
        scorer = SileroScorer() if self._streaming.vad else None
        return StreamingRecognizer(self.producer, self._streaming, scorer, origin_s, prior_words)
