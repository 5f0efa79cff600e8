"""faster-whisper backend: block-wise transcription with flat memory.

faster-whisper's ``transcribe`` wants the whole recording as one array, which for a 3-hour file is
690 MB before the model runs. We instead take decoded blocks from :mod:`ambient.audio.decode`,
cut each at a pause that Silero VAD finds near its end (so no word is split), transcribe up to the
cut, and carry the rest into the next block. The tail of the text so far is fed back as the
prompt, as Whisper does within a file, so context survives the cuts.

The model is loaded once per :class:`FasterWhisperTranscriber` and reused for every file; batch
workers and (later) the agent hold one each.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ambient.asr.models import ResolvedModel
from ambient.types import AudioChunk, DecodingOptions, ModelRef, Segment, Word

SAMPLE_RATE_HZ = 16000
# Cut a block only in a pause this long; shorter gaps can fall between syllables.
_MIN_CUT_GAP_S = 0.3
# Never leave more than this much audio uncut: continuous speech is cut at the block end.
_MAX_CARRY_S = 60.0
# Characters of recent text fed back as the prompt for the next block.
_CONTEXT_CHARS = 400


class Transcriber(Protocol):
    """Anything that turns audio blocks into segments; faster-whisper is the one we ship."""

    model: ModelRef

    def transcribe(
        self, blocks: Iterable[AudioChunk], options: DecodingOptions, prompt: str | None = None
    ) -> Iterator[Segment]: ...


@dataclass
class BlockResult:
    """What one transcribed block reports back, besides its segments."""

    language: str | None = None
    audio_s: float = 0.0


@dataclass
class TranscriptionStats:
    language: str | None = None
    audio_s: float = 0.0
    blocks: list[BlockResult] = field(default_factory=list)


def find_cut(samples: np.ndarray, vad: Any) -> int:
    """Index at which to cut ``samples``: the middle of the last pause, or the end.

    ``vad`` maps an array to a list of ``{"start": i, "end": j}`` speech regions (sample indices).
    With no speech at all the whole block can go (it is silence), so the cut is the end.
    """
    regions = vad(samples)
    if not regions:
        return len(samples)
    last_end = int(regions[-1]["end"])
    if len(samples) - last_end >= _MIN_CUT_GAP_S * SAMPLE_RATE_HZ:
        return (last_end + len(samples)) // 2
    for before, after in zip(reversed(regions[:-1]), reversed(regions[1:]), strict=True):
        gap_start, gap_end = int(before["end"]), int(after["start"])
        if gap_end - gap_start >= _MIN_CUT_GAP_S * SAMPLE_RATE_HZ:
            return (gap_start + gap_end) // 2
    return len(samples)


def _silero(samples: np.ndarray) -> list[dict[str, int]]:
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_silence_duration_ms=int(_MIN_CUT_GAP_S * 1000), speech_pad_ms=0)
    regions: list[dict[str, int]] = get_speech_timestamps(samples, options)
    return regions


class FasterWhisperTranscriber:
    """Holds one loaded model; :meth:`transcribe` may be called for many files in turn."""

    def __init__(self, resolved: ResolvedModel, cpu_threads: int = 0, device: str = "cpu") -> None:
        from faster_whisper import WhisperModel

        self.model = resolved.ref
        self.english_only = resolved.english_only
        self._model = WhisperModel(
            resolved.path,
            device=device,
            compute_type=resolved.ref.compute_type,
            cpu_threads=cpu_threads,
            local_files_only=True,
        )
        self.stats = TranscriptionStats()

    def transcribe(
        self, blocks: Iterable[AudioChunk], options: DecodingOptions, prompt: str | None = None
    ) -> Iterator[Segment]:
        """Yield segments in time order; ids run from 1 across the whole file, never restarting."""
        self.stats = TranscriptionStats()
        carry = np.zeros(0, dtype=np.float32)
        carry_start_s = 0.0
        next_id = 1
        context = ""
        iterator = iter(blocks)
        block = next(iterator, None)
        while block is not None:
            following = next(iterator, None)
            buffer = np.concatenate([carry, block.samples.astype(np.float32, copy=False)])
            start_s = carry_start_s if len(carry) else block.start_s
            is_last = following is None
            cut = len(buffer) if is_last else find_cut(buffer, _silero)
            if not is_last and len(buffer) - cut > _MAX_CARRY_S * SAMPLE_RATE_HZ:
                cut = len(buffer)
            piece = buffer[:cut]
            carry = buffer[cut:].copy()
            carry_start_s = start_s + cut / SAMPLE_RATE_HZ
            self.stats.audio_s += len(piece) / SAMPLE_RATE_HZ
            for segment in self._transcribe_piece(piece, start_s, options, prompt, context, next_id):
                next_id = segment.id + 1
                if options.condition_on_previous_text:
                    context = (context + " " + segment.text).strip()[-_CONTEXT_CHARS:]
                yield segment
            block = following

    def _transcribe_piece(
        self,
        piece: np.ndarray,
        offset_s: float,
        options: DecodingOptions,
        prompt: str | None,
        context: str,
        first_id: int,
    ) -> Iterator[Segment]:
        if len(piece) < SAMPLE_RATE_HZ // 10:
            return
        initial = " ".join(p for p in (prompt or "", context) if p) or None
        language = "en" if self.english_only else options.language
        segments, info = self._model.transcribe(
            piece,
            language=language,
            beam_size=options.beam_size,
            vad_filter=options.vad_filter,
            word_timestamps=options.word_timestamps,
            condition_on_previous_text=options.condition_on_previous_text,
            initial_prompt=initial,
        )
        self.stats.language = self.stats.language or info.language
        self.stats.blocks.append(BlockResult(info.language, len(piece) / SAMPLE_RATE_HZ))
        seg_id = first_id
        for seg in segments:
            text = seg.text.strip()
            if not text:
                continue
            words = tuple(
                Word(
                    word=w.word.strip(),
                    start_s=round(offset_s + w.start, 3),
                    end_s=round(offset_s + w.end, 3),
                    probability=round(float(w.probability), 4),
                )
                for w in (seg.words or ())
                if w.word.strip()
            )
            yield Segment(
                id=seg_id,
                start_s=round(offset_s + seg.start, 3),
                end_s=round(offset_s + seg.end, 3),
                text=text,
                words=words,
            )
            seg_id += 1
