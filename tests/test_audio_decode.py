"""Decoding: every supported format, any rate and channel count, and every kind of bad file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ambient.audio.decode import SAMPLE_RATE_HZ, file_sha256, iter_blocks, probe, read_all
from ambient.errors import AudioDecodeError, EmptyAudioError, InputError
from tests.audio_helpers import CODECS, encode


def tone(seconds: float, rate: int, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return 0.3 * np.sin(2 * np.pi * hz * t)


@pytest.mark.parametrize("suffix", sorted(CODECS))
@pytest.mark.parametrize(("rate", "channels"), [(44100, 2), (8000, 1)])
def test_every_format_decodes_to_16k_mono(tmp_path: Path, suffix: str, rate: int, channels: int) -> None:
    path = encode(tmp_path / f"clip{suffix}", tone(2.0, rate), rate, channels)
    samples = read_all(path)
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    # Codecs pad a little (AAC priming, Opus pre-skip); the length must still be ~2 s at 16 kHz.
    assert abs(len(samples) / SAMPLE_RATE_HZ - 2.0) < 0.05
    assert 0.1 < float(np.abs(samples).max()) <= 1.0


def test_blocks_are_contiguous_and_sized(tmp_path: Path) -> None:
    path = encode(tmp_path / "long.wav", tone(7.3, 22050), 22050)
    blocks = list(iter_blocks(path, block_s=2.0))
    assert [round(b.start_s, 3) for b in blocks] == [0.0, 2.0, 4.0, 6.0]
    assert all(len(b.samples) == 2 * SAMPLE_RATE_HZ for b in blocks[:-1])
    assert abs(blocks[-1].duration_s - 1.3) < 0.01


def test_probe_reports_the_source(tmp_path: Path) -> None:
    path = encode(tmp_path / "clip.flac", tone(1.5, 44100), 44100, channels=2)
    info = probe(path)
    assert (info.sample_rate_hz, info.channels, info.codec) == (44100, 2, "flac")
    assert abs(info.duration_s - 1.5) < 0.01
    assert info.sha256 == file_sha256(path)


def test_zero_length_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(EmptyAudioError, match=r"empty\.wav is empty"):
        list(iter_blocks(path))


def test_text_file_is_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio at all\n" * 50)
    with pytest.raises(AudioDecodeError, match=r"notes\.wav is not a readable audio file"):
        list(iter_blocks(path))


def test_random_bytes_are_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "noise.mp3"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    with pytest.raises(InputError):
        list(iter_blocks(path))


def test_truncated_wav_is_reported(tmp_path: Path) -> None:
    path = encode(tmp_path / "full.wav", tone(10.0, 16000), 16000)
    data = path.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 3])  # header still declares 10 s
    with pytest.raises(AudioDecodeError, match="truncated"):
        list(iter_blocks(cut))


def test_truncated_header_only(tmp_path: Path) -> None:
    path = encode(tmp_path / "full.flac", tone(3.0, 16000), 16000)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(path.read_bytes()[:30])
    with pytest.raises(InputError):
        list(iter_blocks(cut))


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        list(iter_blocks(tmp_path / "nope.wav"))
    with pytest.raises(InputError, match="is a folder"):
        list(iter_blocks(tmp_path))
