"""Where live audio comes from: a file replayed at a chosen speed, or a microphone.

Each source is an async iterator of 16 kHz mono float32 chunks. Pacing lives here, not in the
streaming core: a replay sleeps until each chunk's time has come (``speed`` × real time), so a
benchmark sees what a microphone would deliver, and the core stays free of clocks.

The microphone goes through ``sounddevice`` (PortAudio). Its callback runs on PortAudio's thread;
chunks cross to the event loop with ``call_soon_threadsafe`` and are resampled from the device's
native rate with FFmpeg's resampler (the one :mod:`ambient.audio.decode` uses for files).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ambient.audio.decode import SAMPLE_RATE_HZ, iter_blocks, probe
from ambient.errors import InputError, UsageError

Samples = npt.NDArray[np.float32]
CHUNK_S = 0.1  # what a microphone callback typically delivers; also the replay's step
MAX_SPEED = 1000.0


def check_speed(speed: float) -> float:
    if not speed > 0 or speed > MAX_SPEED:  # also refuses NaN
        raise UsageError(f"--speed must be above 0 and at most {MAX_SPEED:g} (1.0 is real time), got {speed}")
    return speed


class ReplaySource:
    """A recorded file delivered chunk by chunk at ``speed`` × real time from the first chunk."""

    def __init__(self, path: Path, speed: float = 1.0, chunk_s: float = CHUNK_S) -> None:
        self.path = path
        self.speed = check_speed(speed)
        self.chunk_s = chunk_s
        self.info = probe(path)  # a missing, empty or non-audio file fails here, before any model loads
        self.started_at: float | None = None

    async def __aiter__(self) -> AsyncIterator[Samples]:
        blocks: Iterator[Any] = iter_blocks(self.path, self.chunk_s)
        self.started_at = started = time.monotonic()
        sent_s = 0.0
        while True:
            # decoding a 100 ms block is quick, but it is still file I/O: keep it off the loop
            block = await asyncio.to_thread(next, blocks, None)
            if block is None:
                return
            samples: Samples = block.samples
            sent_s += len(samples) / SAMPLE_RATE_HZ
            delay = started + sent_s / self.speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            yield samples


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    channels: int
    default_rate_hz: int
    default: bool


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError:  # the Python package is there, the PortAudio library is not
        raise InputError(
            "cannot use the microphone: the PortAudio library is missing; install it "
            "(Debian/Ubuntu: apt-get install libportaudio2) or use --replay FILE"
        ) from None
    return sounddevice


def list_input_devices() -> list[InputDevice]:
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        default_in = sd.default.device[0]
    except sd.PortAudioError as exc:
        raise InputError(f"cannot list audio devices ({exc}); check the sound system") from None
    return [
        InputDevice(
            index=i,
            name=str(d["name"]),
            channels=int(d["max_input_channels"]),
            default_rate_hz=int(d["default_samplerate"]),
            default=i == default_in,
        )
        for i, d in enumerate(devices)
        if int(d["max_input_channels"]) > 0
    ]


def pick_device(devices: list[InputDevice], wanted: str | None) -> InputDevice:
    """The device named by ``--device`` (index or part of its name), else the default input."""
    if not devices:
        raise InputError(
            "no audio input device found: connect a microphone (and check that this user may use "
            "it), or replay a recording with --replay FILE; `ambient listen --list-devices` shows "
            "what the system offers"
        )
    if wanted is None:
        return next((d for d in devices if d.default), devices[0])
    if wanted.isdigit():
        found = [d for d in devices if d.index == int(wanted)]
    else:
        found = [d for d in devices if wanted.lower() in d.name.lower()]
    if len(found) != 1:
        names = "; ".join(f"{d.index}: {d.name}" for d in devices)
        what = "matches no" if not found else "matches more than one"
        raise UsageError(f"--device {wanted!r} {what} input device; inputs are {names}")
    return found[0]


class Resampler:
    """Any rate and channel count → 16 kHz mono float32, in stream order (keeps filter state)."""

    def __init__(self, rate_hz: int, channels: int) -> None:
        import av

        self.rate_hz = rate_hz
        self.channels = channels
        self._layout = "mono" if channels == 1 else "stereo" if channels == 2 else f"{channels}c"
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)
        self._pts = 0

    def __call__(self, block: Samples) -> Samples:
        import av

        if self.rate_hz == SAMPLE_RATE_HZ and self.channels == 1:
            return np.ascontiguousarray(block.reshape(-1), dtype=np.float32)
        interleaved = np.ascontiguousarray(block, dtype=np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(interleaved, format="flt", layout=self._layout)
        frame.sample_rate = self.rate_hz
        frame.pts = self._pts
        self._pts += interleaved.shape[1] // self.channels
        out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, dtype=np.float32)


class MicrophoneSource:
    """Live input from one device, at its native rate, resampled to 16 kHz mono."""

    def __init__(self, device: str | None = None, chunk_s: float = CHUNK_S) -> None:
        self.device = pick_device(list_input_devices(), device)
        self.chunk_s = chunk_s

    async def __aiter__(self) -> AsyncIterator[Samples]:
        sd = _sounddevice()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Samples] = asyncio.Queue()
        channels = min(self.device.channels, 2)
        resample = Resampler(self.device.default_rate_hz, channels)

        def callback(indata: Samples, frames: int, when: Any, status: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, indata.copy())

        try:
            stream = sd.InputStream(
                device=self.device.index,
                channels=channels,
                samplerate=self.device.default_rate_hz,
                dtype="float32",
                blocksize=int(self.chunk_s * self.device.default_rate_hz),
                callback=callback,
            )
        except sd.PortAudioError as exc:
            raise InputError(f"cannot open input device {self.device.name!r} ({exc})") from None
        with stream:
            while True:
                block = await queue.get()
                samples = resample(block)
                if len(samples):
                    yield samples
