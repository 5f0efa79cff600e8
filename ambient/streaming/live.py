"""Everything a live stream needs, built once: the model, and a fresh core per encounter.

The CLI (``ambient listen``), the benchmark and the agent all build through here
(:func:`tuned_options` holds the settings measured in docs/benchmarks.md), so the benchmark
measures exactly what a user runs. The model is loaded once per process and shared by
every encounter's core; the Silero scorer and the agreement state belong to one encounter.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ambient.asr.prompt import build_prompt
from ambient.streaming.core import StreamingOptions, StreamingRecognizer
from ambient.streaming.vad import GateOptions, SileroScorer
from ambient.streaming.whisper import WhisperProducer, WhisperStreamOptions
from ambient.types import Word

# Tuned with scripts/bench_streaming.py on CAR0002 (docs/benchmarks.md, "Streaming").
STREAM_BEAM_SIZE = 1  # greedy: the buffer is decoded again every min-chunk, so each decode must be cheap
STREAM_MIN_CHUNK_S = 0.5  # new audio per decode
STREAM_MIN_SILENCE_S = 0.5  # a pause this long ends an utterance and commits its words
# earlier speech decoded before a fresh utterance: -2.2 WER points on CAR0002
STREAM_LEFT_CONTEXT_S = 3.0
# the short window's encoding with the padding's spliced after it (WhisperStreamOptions.window)
STREAM_WINDOW = "spliced"


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


def tuned_options(
    model: str,
    *,
    language: str | None,
    cpu_threads: int,
    vad: bool = True,
    clinical_prompt: bool = False,
    beam_size: int | None = None,
    min_chunk_s: float | None = None,
    min_silence_s: float | None = None,
    left_context_s: float | None = None,
    window: str | None = None,
) -> LiveOptions:
    """The measured streaming settings, with a caller's overrides (None: the tuned value).

    ``ambient listen`` and ``ambient agent`` both build here, so the agent streams exactly as
    the benchmark measures ``ambient listen``.
    """
    streaming = StreamingOptions(
        vad=vad,
        min_chunk_s=STREAM_MIN_CHUNK_S if min_chunk_s is None else min_chunk_s,
        gate=GateOptions(min_silence_s=STREAM_MIN_SILENCE_S if min_silence_s is None else min_silence_s),
        left_context_s=STREAM_LEFT_CONTEXT_S if left_context_s is None else left_context_s,
    )
    whisper = WhisperStreamOptions(
        beam_size=beam_size or STREAM_BEAM_SIZE,
        language=language,
        cpu_threads=cpu_threads,
        window=window or STREAM_WINDOW,
    )
    return LiveOptions(model, whisper, streaming, clinical_prompt)
