"""Decode any audio file into 16 kHz mono float32 blocks, without holding the whole file.

PyAV (FFmpeg) reads wav, flac, mp3, ogg/opus, m4a/aac and webm at any sample rate and channel
count. We resample once, here, to what Whisper expects, and hand the rest of the pipeline fixed-size
blocks on the encounter's time line: a 3-hour recording costs the same memory as a 5-minute one.

Bad files are the norm in a batch of real recordings, so every failure becomes an
:class:`~ambient.errors.InputError` that names the file and says what to do.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from ambient.errors import AudioDecodeError, EmptyAudioError, InputError
from ambient.hashing import sha256_file
from ambient.types import AudioChunk, AudioInfo

SAMPLE_RATE_HZ = 16000
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".webm", ".aac", ".mp4")
# A file whose decoded length falls this far short of what its container declares is truncated.
_TRUNCATION_TOLERANCE_S = 1.0
# Sample rates a recording of speech can have. Below 4 kHz nothing intelligible survives, and a
# crafted header claiming 1 Hz turns a 2 KB file into half an hour of audio to decode and transcribe.
MIN_SAMPLE_RATE_HZ = 4000
MAX_SAMPLE_RATE_HZ = 768000


def file_sha256(path: Path) -> str:
    """Content hash of the input file: the key of lineage and of batch resumption."""
    try:
        return sha256_file(path)
    except FileNotFoundError:
        raise InputError(f"{path} does not exist; check the path") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder; give a file (or use `ambient batch` for folders)") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}; check its permissions") from None


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if path.is_dir():
        raise InputError(f"{path} is a folder; give an audio file (or use `ambient batch` for folders)")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if size == 0:
        raise EmptyAudioError(f"{path} is empty (0 bytes); re-export or re-copy the recording")
    try:
        container = av.open(str(path), mode="r")
    except PermissionError:
        raise InputError(f"cannot read {path}: permission denied") from None
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise AudioDecodeError(
            f"{path} is not a readable audio file ({_reason(exc)}); expected one of "
            f"{', '.join(s.lstrip('.') for s in AUDIO_SUFFIXES)}"
        ) from None
    if not container.streams.audio:
        container.close()
        raise AudioDecodeError(
            f"{path} has no audio stream; give the recording, not a video-only or text file"
        )
    if container.streams.audio[0].codec_context is None:  # FFmpeg has no decoder for the declared codec
        container.close()
        raise AudioDecodeError(
            f"{path} uses an audio codec that cannot be decoded (or its header is corrupt); "
            "re-export the recording as WAV, FLAC or MP3"
        )
    rate = int(container.streams.audio[0].rate or 0)
    if rate and not MIN_SAMPLE_RATE_HZ <= rate <= MAX_SAMPLE_RATE_HZ:
        container.close()
        raise AudioDecodeError(
            f"{path} declares a sample rate of {rate} Hz, which no speech recording has "
            f"({MIN_SAMPLE_RATE_HZ}-{MAX_SAMPLE_RATE_HZ} Hz); the header is corrupt, re-export the recording"
        )
    return container


def _riff_declared_s(path: Path) -> float:
    """Length a WAV header declares (FFmpeg derives a WAV's duration from the file size instead,
    which hides truncation). 0.0 when the header cannot tell."""
    try:
        with path.open("rb") as handle:
            if handle.read(12)[:4] != b"RIFF":
                return 0.0
            byte_rate = 0
            while header := handle.read(8):
                if len(header) < 8:
                    return 0.0
                chunk, size = header[:4], struct.unpack("<I", header[4:])[0]
                if chunk == b"fmt ":
                    fmt = handle.read(size)
                    byte_rate = struct.unpack("<I", fmt[8:12])[0] if len(fmt) >= 12 else 0
                    continue
                if chunk == b"data":
                    # 0 and 0xFFFFFFFF mean "unknown length" (streamed WAV): no claim to check
                    if not byte_rate or size in (0, 0xFFFFFFFF):
                        return 0.0
                    return float(size / byte_rate)
                handle.seek(size + (size & 1), 1)
    except OSError:
        return 0.0
    return 0.0


def _reason(exc: BaseException) -> str:
    if isinstance(exc, av.error.FFmpegError) and exc.strerror:
        return str(exc.strerror)  # "Invalid data found when processing input", without errno noise
    return str(exc) or type(exc).__name__


def probe(path: Path, sha256: str | None = None) -> AudioInfo:
    """Read the container header: rate, channels, codec and declared duration."""
    container = _open(path)
    try:
        stream = container.streams.audio[0]
        duration_s = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration_s = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration_s = container.duration / av.time_base
        return AudioInfo(
            path=str(path),
            sha256=sha256 or file_sha256(path),
            size_bytes=path.stat().st_size,
            duration_s=duration_s,
            sample_rate_hz=int(stream.rate or 0),
            channels=int(stream.channels or 0),
            codec=stream.codec_context.name,
        )
    finally:
        container.close()


def iter_blocks(path: Path, block_s: float = 30.0) -> Iterator[AudioChunk]:
    """Yield consecutive 16 kHz mono float32 blocks of ``block_s`` seconds (the last may be short).

    Raises EmptyAudioError when the file decodes to no samples, and AudioDecodeError when the
    stream breaks part-way or ends well before its declared length (a truncated copy).
    """
    container = _open(path)
    block_len = max(1, int(block_s * SAMPLE_RATE_HZ))
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)
    pending: list[npt.NDArray[np.float32]] = []
    pending_len = 0
    emitted = 0
    try:
        stream = container.streams.audio[0]
        declared_s = 0.0
        if container.format.name == "wav":
            declared_s = _riff_declared_s(path)
        elif stream.duration is not None and stream.time_base is not None:
            declared_s = float(stream.duration * stream.time_base)
        try:
            frames = container.decode(stream)
            for frame in frames:
                for out in resampler.resample(frame):
                    pending.append(np.asarray(out.to_ndarray().reshape(-1), dtype=np.float32))
                    pending_len += out.samples
                while pending_len >= block_len:
                    joined = np.concatenate(pending)
                    yield AudioChunk(joined[:block_len].copy(), emitted / SAMPLE_RATE_HZ)
                    emitted += block_len
                    rest = joined[block_len:]
                    pending, pending_len = ([rest] if len(rest) else []), len(rest)
            for out in resampler.resample(None):
                pending.append(np.asarray(out.to_ndarray().reshape(-1), dtype=np.float32))
                pending_len += out.samples
        except (av.error.FFmpegError, ValueError) as exc:
            decoded = (emitted + pending_len) / SAMPLE_RATE_HZ
            raise AudioDecodeError(
                f"{path} is corrupt: decoding failed after {decoded:.1f} s ({_reason(exc)}); "
                "re-export the recording or copy it again"
            ) from None
        if pending_len:
            yield AudioChunk(np.concatenate(pending), emitted / SAMPLE_RATE_HZ)
            emitted += pending_len
    finally:
        container.close()
    decoded_s = emitted / SAMPLE_RATE_HZ
    if emitted == 0:
        raise EmptyAudioError(f"{path} holds no audio samples; re-export the recording")
    if declared_s and decoded_s + _TRUNCATION_TOLERANCE_S < declared_s:
        raise AudioDecodeError(
            f"{path} is truncated: its header declares {declared_s:.1f} s but only "
            f"{decoded_s:.1f} s could be decoded; copy the complete file again"
        )


def read_all(path: Path) -> npt.NDArray[np.float32]:
    """Whole file as one array: for short clips and tests only, never for encounters."""
    return np.concatenate([chunk.samples for chunk in iter_blocks(path, block_s=60.0)])
