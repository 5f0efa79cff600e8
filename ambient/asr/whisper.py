"""faster-whisper backend: block-wise, batched transcription with flat memory.

faster-whisper's ``transcribe`` wants the whole recording as one array, which for a 3-hour file is
690 MB before the model runs. We instead take decoded blocks from :mod:`ambient.audio.decode`,
run Silero VAD over each, cut it in the last pause (so no word is split), transcribe the speech
before the cut, and carry the rest into the next block.

Speech is grouped into windows of at most 30 s (pauses over 2 s are dropped, so silence never
reaches Whisper to be turned into invented text) and decoded by faster-whisper's batched pipeline:
each window once, eight at a time. On 2 CPU cores this is about twice as fast as sequential
decoding at equal or better WER, and its word timestamps never move the decoding window (the
sequential decoder's ``word_timestamps=True`` skipped words on the CAR0002 interview; see
docs/benchmarks.md). We run the VAD ourselves because its regions serve twice: to find the cut
and to form the windows.

The model is loaded once per :class:`FasterWhisperTranscriber` and reused for every file; batch
workers and (later) the agent hold one each.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ambient.asr.models import ResolvedModel
from ambient.types import AudioChunk, DecodingOptions, ModelRef, Segment, Word

SAMPLE_RATE_HZ = 16000
# Silence at the very end of a block only counts as a pause when it is this long: VAD cannot see
# whether speech resumes right after the block, so a short tail may be a pause inside a word.
_MIN_TAIL_GAP_S = 1.0
# Never leave more than this much audio uncut: continuous speech is cut at the block end.
_MAX_CARRY_S = 60.0
# Whisper's input window; speech is grouped into windows no longer than this.
_WINDOW_S = 30.0
# Segments longer than this are split at a comma (twice as long: at any word).
_MAX_SEGMENT_S = 12.0
# A pause longer than this inside a window is left out of it (it starts a new window).
_MAX_GAP_S = 2.0


class Transcriber(Protocol):
    """Anything that turns audio blocks into segments; faster-whisper is the one we ship."""

    model: ModelRef

    def transcribe(
        self, blocks: Iterable[AudioChunk], options: DecodingOptions, prompt: str | None = None
    ) -> Iterator[Segment]: ...


@dataclass
class BlockResult:
    """What one transcribed piece reports back, besides its segments."""

    language: str | None = None
    audio_s: float = 0.0


@dataclass
class TranscriptionStats:
    language: str | None = None
    audio_s: float = 0.0
    blocks: list[BlockResult] = field(default_factory=list)


def find_cut(samples: npt.NDArray[np.float32], regions: list[dict[str, int]]) -> int:
    """Index at which to cut ``samples``: in silence after the speech, or between the last two
    speech regions, or (continuous speech) at the end.

    ``regions`` are Silero's speech regions in sample indices (``{"start": i, "end": j}``). Silero
    pads regions and, where two pads meet, puts the boundary in the middle of the pause, so any
    boundary between consecutive regions lies in silence. The tail after the last region is only
    trusted when it is long: VAD cannot see whether speech resumes just after the block.
    With no speech at all the whole block can go (it is silence), so the cut is the end.
    """
    if not regions:
        return len(samples)
    last_end = int(regions[-1]["end"])
    if len(samples) - last_end >= _MIN_TAIL_GAP_S * SAMPLE_RATE_HZ:
        return (last_end + len(samples)) // 2
    if len(regions) >= 2:
        return (int(regions[-2]["end"]) + int(regions[-1]["start"])) // 2
    return len(samples)


def speech_regions(samples: npt.NDArray[np.float32]) -> list[dict[str, int]]:
    """Silero VAD with the options of faster-whisper's batched pipeline (≤ 30 s regions)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(max_speech_duration_s=_WINDOW_S, min_silence_duration_ms=160)
    regions: list[dict[str, int]] = get_speech_timestamps(samples, options)
    return regions


def group_windows(regions: list[dict[str, int]], length: int) -> list[tuple[int, int]]:
    """Spans (sample indices, within ``length``) of at most 30 s covering the speech regions.

    Neighbouring regions share a window when the pause between them is short (≤ 2 s) and the
    window stays within 30 s; longer pauses fall between windows and are never decoded.
    """
    windows: list[tuple[int, int]] = []
    limit = int(_WINDOW_S * SAMPLE_RATE_HZ)
    max_gap = int(_MAX_GAP_S * SAMPLE_RATE_HZ)
    for region in regions:
        start, end = int(region["start"]), min(int(region["end"]), length)
        if end <= start:
            continue
        if windows and start - windows[-1][1] <= max_gap and end - windows[-1][0] <= limit:
            windows[-1] = (windows[-1][0], end)
        else:
            windows.append((start, min(end, start + limit)))
    return windows


def split_sentences(words: tuple[Word, ...], max_s: float = _MAX_SEGMENT_S) -> list[tuple[Word, ...]]:
    """Split one window's words into sentence-sized runs.

    Batched decoding returns one segment per 30 s window (asking Whisper for its own timestamps
    there cost 6 WER points on CAR0002). Subtitles, evidence spans and the drafter want
    sentences, so we split after words that end a sentence, and after ``max_s`` at a comma or,
    failing that, at any word: the words and their times are kept exactly.
    """
    runs: list[tuple[Word, ...]] = []
    current: list[Word] = []
    for word in words:
        current.append(word)
        long = current[-1].end_s - current[0].start_s >= max_s
        if (
            word.word.endswith((".", "?", "!"))
            or (long and word.word.endswith((",", ";")))
            or (long and current[-1].end_s - current[0].start_s >= 2 * max_s)
        ):
            runs.append(tuple(current))
            current = []
    if current:
        runs.append(tuple(current))
    return runs


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        return None
    return trim


@functools.cache
def _mkl_free_buffers() -> Callable[[], None] | None:
    """Intel MKL's ``mkl_free_buffers`` inside CTranslate2's own library, where it has one.

    CTranslate2's x86-64 Linux wheels link MKL statically, and CTranslate2 allocates its CPU
    buffers through MKL, whose memory manager keeps freed buffers in a pool for reuse; glibc's
    ``malloc_trim`` cannot return those pages. On a 30-minute input the pool held 64 MiB of freed
    buffers after each 5-minute piece; emptying it lowered the steady RSS between pieces from
    358 to 313 MiB. Other builds (macOS, ARM) have no MKL: nothing to call.
    """
    try:
        import ctranslate2
    except ImportError:
        return None
    libs = Path(ctranslate2.__file__).resolve().parent.parent / "ctranslate2.libs"
    for lib in sorted(libs.glob("libctranslate2*.so*")):
        try:
            free: Callable[[], None] = ctypes.CDLL(str(lib)).mkl_free_buffers
        except (OSError, AttributeError):
            continue
        return free
    return None


def release_free_memory() -> None:
    """Hand freed memory back to the OS after each piece (5 minutes of audio).

    Decoding allocates and frees large native buffers of varying sizes. MKL's pool keeps them
    (emptied here: reallocating once per piece costs nothing next to decoding it), and glibc
    keeps freed heap pages (trimmed here). Without the trim, RSS grew with the input's length
    (556 → 756 MiB over a 2.9-hour file); see docs/benchmarks.md.
    """
    free = _mkl_free_buffers()
    if free is not None:
        free()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def fixed_windows(length: int) -> list[tuple[int, int]]:
    """Consecutive 30 s windows over everything: for ``--no-vad``."""
    step = int(_WINDOW_S * SAMPLE_RATE_HZ)
    return [(i, min(i + step, length)) for i in range(0, length, step)]


class FasterWhisperTranscriber:
    """Holds one loaded model; :meth:`transcribe` may be called for many files in turn."""

    def __init__(self, resolved: ResolvedModel, cpu_threads: int = 0, device: str = "cpu") -> None:
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        self.model = resolved.ref
        self.english_only = resolved.english_only
        self._model = WhisperModel(
            resolved.path,
            device=device,
            compute_type=resolved.ref.compute_type,
            cpu_threads=cpu_threads,
            local_files_only=True,
        )
        self._batched = BatchedInferencePipeline(self._model)
        self.stats = TranscriptionStats()

    def transcribe(
        self, blocks: Iterable[AudioChunk], options: DecodingOptions, prompt: str | None = None
    ) -> Iterator[Segment]:
        """Yield segments in time order; ids run from 1 across the whole file, never restarting."""
        self.stats = TranscriptionStats()
        carry = np.zeros(0, dtype=np.float32)
        carry_start_s = 0.0
        next_id = 1
        iterator = iter(blocks)
        block = next(iterator, None)
        while block is not None:
            following = next(iterator, None)
            buffer = np.concatenate([carry, block.samples.astype(np.float32, copy=False)])
            start_s = carry_start_s if len(carry) else block.start_s
            regions = speech_regions(buffer)
            cut = len(buffer) if following is None else find_cut(buffer, regions)
            if len(buffer) - cut > _MAX_CARRY_S * SAMPLE_RATE_HZ:
                cut = len(buffer)
            piece = buffer[:cut]
            windows = group_windows(regions, cut) if options.vad_filter else fixed_windows(cut)
            carry = buffer[cut:].copy()
            carry_start_s = start_s + cut / SAMPLE_RATE_HZ
            self.stats.audio_s += len(piece) / SAMPLE_RATE_HZ
            for segment in self._transcribe_piece(piece, windows, start_s, options, prompt, next_id):
                next_id = segment.id + 1
                yield segment
            release_free_memory()
            block = following

    def _transcribe_piece(
        self,
        piece: npt.NDArray[np.float32],
        windows: list[tuple[int, int]],
        offset_s: float,
        options: DecodingOptions,
        prompt: str | None,
        first_id: int,
    ) -> Iterator[Segment]:
        """Decode the windows of one cut piece; times come back on the encounter's time line."""
        if not windows:
            return  # no speech: nothing to transcribe, and nothing to invent
        language = "en" if self.english_only else options.language
        clips = [{"start": a / SAMPLE_RATE_HZ, "end": b / SAMPLE_RATE_HZ} for a, b in windows]
        segments, info = self._batched.transcribe(
            piece,
            language=language,
            beam_size=options.beam_size,
            batch_size=options.batch_size,
            word_timestamps=options.word_timestamps,
            initial_prompt=prompt,
            clip_timestamps=clips,
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
                    start_s=round(offset_s + float(w.start), 3),
                    end_s=round(offset_s + float(w.end), 3),
                    probability=round(float(w.probability), 4),
                )
                for w in (seg.words or ())
                if w.word.strip()
            )
            if not words:
                yield Segment(
                    id=seg_id,
                    start_s=round(offset_s + float(seg.start), 3),
                    end_s=round(offset_s + float(seg.end), 3),
                    text=text,
                )
                seg_id += 1
                continue
            for run in split_sentences(words):
                yield Segment(
                    id=seg_id,
                    start_s=run[0].start_s,
                    end_s=run[-1].end_s,
                    text=" ".join(w.word for w in run),
                    words=run,
                )
                seg_id += 1
