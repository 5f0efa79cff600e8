"""The block-wise faster-whisper backend: cuts in pauses, flat memory, real model on real speech."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ambient.asr.whisper import SAMPLE_RATE_HZ, find_cut, group_windows, split_sentences
from ambient.audio.decode import iter_blocks
from ambient.pipeline import Pipeline
from ambient.types import AudioChunk, DecodingOptions, Word
from tests.audio_helpers import encode


def fake_vad(regions_s: list[tuple[float, float]]) -> list[dict[str, int]]:
    return [{"start": int(a * SAMPLE_RATE_HZ), "end": int(b * SAMPLE_RATE_HZ)} for a, b in regions_s]


def test_cut_in_trailing_silence() -> None:
    samples = np.zeros(10 * SAMPLE_RATE_HZ, dtype=np.float32)
    assert find_cut(samples, fake_vad([(1, 8)])) == 9 * SAMPLE_RATE_HZ


def test_short_trailing_silence_is_not_trusted() -> None:
    """0.5 s of quiet at the block end may be inside a word that goes on in the next block."""
    samples = np.zeros(10 * SAMPLE_RATE_HZ, dtype=np.float32)
    cut = find_cut(samples, fake_vad([(0.5, 4.0), (5.0, 9.5)]))
    assert cut == int(4.5 * SAMPLE_RATE_HZ)


def test_cut_in_the_last_pause_when_speech_runs_to_the_end() -> None:
    samples = np.zeros(10 * SAMPLE_RATE_HZ, dtype=np.float32)
    cut = find_cut(samples, fake_vad([(0.5, 4.0), (5.0, 10.0)]))
    assert cut == int(4.5 * SAMPLE_RATE_HZ)


def test_no_pause_means_cut_at_the_end() -> None:
    samples = np.zeros(10 * SAMPLE_RATE_HZ, dtype=np.float32)
    assert find_cut(samples, fake_vad([(0.0, 10.0)])) == len(samples)


def test_silence_is_cut_whole() -> None:
    samples = np.zeros(5 * SAMPLE_RATE_HZ, dtype=np.float32)
    assert find_cut(samples, fake_vad([])) == len(samples)


def test_windows_group_short_pauses_and_drop_long_ones() -> None:
    regions = fake_vad([(0, 5), (6, 12), (20, 25), (25.5, 40), (40.2, 52)])
    windows = [
        (a / SAMPLE_RATE_HZ, b / SAMPLE_RATE_HZ) for a, b in group_windows(regions, 55 * SAMPLE_RATE_HZ)
    ]
    # 0-12 together (1 s pause); the 8 s pause is never decoded; 20-52 would pass 30 s,
    # so 40.2-52 starts a new window.
    assert windows == [(0, 12), (20, 40), (40.2, 52)]
    assert all(b - a <= 30 for a, b in windows)


def test_windows_stop_at_the_cut() -> None:
    assert group_windows(fake_vad([(0, 5), (9, 20)]), 10 * SAMPLE_RATE_HZ) == [
        (0, 5 * SAMPLE_RATE_HZ),
        (9 * SAMPLE_RATE_HZ, 10 * SAMPLE_RATE_HZ),
    ]


def _words(text: str, step: float = 0.5) -> tuple[Word, ...]:
    return tuple(Word(w, i * step, (i + 1) * step, 0.9) for i, w in enumerate(text.split()))


def test_sentences_split_at_full_stops_keeping_words() -> None:
    words = _words("I have chest pain. Since when? Two days ago.")
    runs = split_sentences(words)
    assert [" ".join(w.word for w in r) for r in runs] == [
        "I have chest pain.",
        "Since when?",
        "Two days ago.",
    ]
    assert sum(len(r) for r in runs) == len(words)


def test_long_sentences_split_at_commas_then_anywhere() -> None:
    words = _words("one two three, four five six seven eight nine ten", step=2.0)
    runs = split_sentences(words, max_s=4.0)
    assert [len(r) for r in runs] == [3, 4, 3]


@pytest.mark.model
def test_pure_silence_gives_no_segments(tiny_pipeline: Pipeline, tmp_path: Path) -> None:
    path = encode(tmp_path / "silence.wav", np.zeros(8 * 16000), 16000)
    transcript = tiny_pipeline.transcribe_audio(path)
    assert transcript.segments == ()
    assert not transcript.has_speech
    assert transcript.header.duration_s == pytest.approx(8.0, abs=0.01)


@pytest.mark.model
def test_small_blocks_give_the_same_words(tiny_pipeline: Pipeline, speech_wav: Path) -> None:
    """Cutting the recording into 4 s blocks must not lose or split words (the cuts fall in pauses)."""
    options, _ = tiny_pipeline.decoding_options()
    transcriber = tiny_pipeline.transcriber
    whole = list(transcriber.transcribe(iter_blocks(speech_wav, 600.0), options))
    small = list(transcriber.transcribe(iter_blocks(speech_wav, 4.0), replace(options, block_s=4.0)))
    assert len(transcriber.stats.blocks) > 3

    def words(segments: list) -> list[str]:  # type: ignore[type-arg]
        return [w.word.lower().strip(".,?!") for s in segments for w in s.words]

    whole_words, small_words = words(whole), words(small)
    common = set(whole_words) & set(small_words)
    assert len(common) >= 0.85 * len(set(whole_words))
    ids = [s.id for s in small]
    assert ids == list(range(1, len(ids) + 1))  # ids never restart at a block
    starts = [w.start_s for s in small for w in s.words]
    assert starts == sorted(starts)
    assert starts[-1] > 10.0  # times are on the encounter's time line, not the block's


@pytest.mark.model
def test_chunks_from_any_iterable(tiny_pipeline: Pipeline) -> None:
    silence = AudioChunk(np.zeros(SAMPLE_RATE_HZ, dtype=np.float32), 0.0)
    out = list(tiny_pipeline.transcriber.transcribe([silence], DecodingOptions()))
    assert out == []
