"""``ambient listen`` and what feeds it: replay pacing, the worker thread, devices, resampling."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from ambient.cli.main import main
from ambient.errors import InputError, UsageError
from ambient.streaming.core import StreamingOptions, StreamingRecognizer
from ambient.streaming.events import CommittedWords
from ambient.streaming.runtime import TimedEvent, run_stream
from ambient.streaming.sources import InputDevice, ReplaySource, Resampler, list_input_devices, pick_device
from tests.audio_helpers import encode
from tests.test_streaming_core import SPANS, NonZeroScorer, ScriptedProducer, speech_script, timeline

REPO = Path(__file__).resolve().parents[1]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---- bad input: one clear message and an exit code -------------------------------------------


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--replay", "{missing}"], 3, "does not exist"),
        (["--replay", "{corrupt}"], 3, "not a readable audio file"),
        (["--replay", "{empty}"], 3, "is empty"),
        (["--replay", "{good}", "--speed", "0"], 2, "--speed must be above 0"),
        (["--replay", "{good}", "--speed", "-2"], 2, "--speed must be above 0"),
        (["--replay", "{good}", "--speed", "nan"], 2, "--speed must be above 0"),
        (["--replay", "{good}", "--device", "1"], 2, "--device is for the microphone"),
        (["--replay", "{good}", "--min-chunk", "0"], 2, "--min-chunk must be"),
    ],
)
def test_bad_input_is_one_clear_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], code: int, message: str
) -> None:
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....WAVEfmt this is not audio at all" * 10)
    empty = tmp_path / "empty.wav"
    empty.touch()
    good = encode(tmp_path / "tone.wav", np.zeros(16000, dtype=np.float32), 16000)
    names = {"missing": tmp_path / "nope.wav", "corrupt": corrupt, "empty": empty, "good": good}
    argv = [a.format(**{k: str(v) for k, v in names.items()}) for a in argv]
    got, out, err = run_cli(capsys, "listen", *argv)
    assert got == code
    assert message in err and out == ""
    assert "Traceback" not in err


def test_microphone_without_an_input_device_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    if list_input_devices():
        pytest.skip("this machine has an audio input device")
    code, _, err = run_cli(capsys, "listen")
    assert code == 3
    assert "no audio input device found" in err and "--replay" in err
    code, _, err = run_cli(capsys, "listen", "--list-devices")
    assert code == 0 and "no audio input devices" in err


def test_device_selection() -> None:
    devices = [
        InputDevice(0, "HDA Intel: Mic", 2, 44100, False),
        InputDevice(3, "USB Headset", 1, 48000, True),
    ]
    assert pick_device(devices, None).index == 3
    assert pick_device(devices, "0").name.startswith("HDA")
    assert pick_device(devices, "usb").index == 3
    with pytest.raises(UsageError, match="matches no input device"):
        pick_device(devices, "bluetooth")
    with pytest.raises(InputError, match="no audio input device"):
        pick_device([], None)


def test_resampler_makes_16k_mono_from_any_rate() -> None:
    rate = 44100
    t = np.arange(rate * 2) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    stereo = np.stack([tone, tone], axis=1)  # what sounddevice delivers: frames by channels
    resample = Resampler(rate, 2)
    out = np.concatenate([resample(stereo[i : i + 4410]) for i in range(0, len(stereo), 4410)])
    assert abs(len(out) - 32000) < 400  # the resampler keeps a few ms in its filter
    spectrum = np.abs(np.fft.rfft(out[4000:20000]))
    assert abs(np.argmax(spectrum) * 16000 / 16000 - 440) < 3
    assert Resampler(16000, 1)(tone[:100]).shape == (100,)


# ---- the runtime: pacing outside the core, decoding off the loop ------------------------------


class SlowProducer(ScriptedProducer):
    """Scripted words, but each decode holds the thread like Whisper does."""

    def hypothesise(
        self, audio: npt.NDArray[np.float32], prompt: str, final: bool = False, hurry: bool = False
    ):  # type: ignore[no-untyped-def]
        time.sleep(0.15)
        return super().hypothesise(audio, prompt)


async def paced(audio: npt.NDArray[np.float32], speed: float) -> AsyncIterator[npt.NDArray[np.float32]]:
    started = time.monotonic()
    for i in range(0, len(audio), 1600):
        delay = started + (i + 1600) / 16000 / speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        yield audio[i : i + 1600]


def test_decoding_never_stalls_the_event_loop() -> None:
    script = speech_script(SPANS)
    core = StreamingRecognizer(SlowProducer(script), StreamingOptions(min_chunk_s=0.5), NonZeroScorer())
    events: list[TimedEvent] = []
    gaps: list[float] = []

    async def main_() -> None:
        async def ticker() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        report = await run_stream(paced(timeline(19.0, SPANS), 4.0), core, events.append)
        tick.cancel()
        assert report.audio_s == pytest.approx(19.0)
        assert report.max_backlog_s < 2.5  # bounded: one decode's worth of audio, not a growing queue

    asyncio.run(main_())
    assert max(gaps) < 0.1, "a decode ran on the event loop"
    words = [w for e in events if isinstance(e.event, CommittedWords) for w in e.event.words]
    assert [w.word for w in words] == [w.word for w in script]
    stamps = [e.emitted_at_s for e in events]
    assert stamps == sorted(stamps) and stamps[-1] >= 19.0 / 4.0 - 0.1


def test_replay_is_paced_by_speed(tmp_path: Path) -> None:
    wav = encode(tmp_path / "two-seconds.wav", np.zeros(32000, dtype=np.float32), 16000)

    async def drain(speed: float) -> tuple[float, int]:
        started = time.monotonic()
        total = 0
        async for chunk in ReplaySource(wav, speed):
            total += len(chunk)
        return time.monotonic() - started, total

    wall, total = asyncio.run(drain(2.0))
    assert total == 32000 and 0.95 <= wall <= 1.6


# ---- the real thing --------------------------------------------------------------------------


@pytest.mark.model
def test_listen_replay_prints_jsonl_events(speech_wav: Path, tmp_path: Path) -> None:
    """`ambient listen --replay FILE --speed 4 --events jsonl`, run as a user runs it."""
    speed = 4.0
    proc = subprocess.run(
        [sys.executable, "-m", "ambient", "listen", "--replay", str(speech_wav), "--speed", str(speed),
         "--events", "jsonl", "--threads", "2"],
        capture_output=True, text=True, check=False, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert {line["kind"] for line in lines} == {"partial", "committed"}
    stamps = [line["emitted_at_s"] for line in lines]
    assert stamps == sorted(stamps)
    words = [w for line in lines if line["kind"] == "committed" for w in line["words"]]
    text = " ".join(w["word"] for w in words).lower()
    for key in ("blood pressure", "milligrams", "two days", "one week"):
        assert key in text
    duration_s = 15.0
    previous = 0.0
    for w in words:
        assert set(w) == {"word", "start_s", "end_s", "probability"}
        assert previous <= w["start_s"] <= w["end_s"] <= duration_s + 0.2
        previous = w["end_s"]
    # the replay was paced: the last commit cannot come before the audio was all delivered
    assert stamps[-1] >= words[-1]["end_s"] / speed
    assert "largest backlog" in proc.stderr
