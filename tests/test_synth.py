from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from ambient.audio.synth import (
    SAMPLE_DIALOGUE,
    RenderedEncounter,
    SynthOptions,
    render_dialogue,
    render_sample,
    speakable,
)
from ambient.errors import UsageError
from ambient.transcript.dialogue import DialogueTurn, parse_dialogue

NO_ESPEAK = "espeak-ng and sox are not installed (Debian: apt-get install espeak-ng sox)"
HAVE_ESPEAK = shutil.which("espeak-ng") is not None and shutil.which("sox") is not None
espeak = pytest.mark.espeak
needs_espeak = pytest.mark.skipif(not HAVE_ESPEAK, reason=NO_ESPEAK)
TWO_TURNS = [("clinician", "How are you feeling today?"), ("patient", "I have had a cough.")]


def _samples(path: Path) -> npt.NDArray[np.float64]:
    with wave.open(str(path), "rb") as reader:
        data = reader.readframes(reader.getnframes())
    return np.frombuffer(data, dtype="<i2").astype(np.float64)


def _median_f0_hz(segment: npt.NDArray[np.float64], rate: int = 16000) -> float:
    """Rough pitch by autocorrelation over loud 40 ms frames: enough to tell the voices apart."""
    frame, found = 640, []
    for start in range(0, len(segment) - frame, frame // 2):
        piece = segment[start : start + frame] - segment[start : start + frame].mean()
        if np.sqrt(np.mean(piece**2)) < 500:
            continue
        corr = np.correlate(piece, piece, "full")[frame - 1 :]
        low, high = rate // 400, rate // 60
        lag = low + int(np.argmax(corr[low:high]))
        if corr[lag] > 0.3 * corr[0]:
            found.append(rate / lag)
    return float(np.median(found))


@pytest.fixture(scope="module")
def two_turns(tmp_path_factory: pytest.TempPathFactory) -> RenderedEncounter:
    if not HAVE_ESPEAK:
        pytest.skip(NO_ESPEAK)
    return render_dialogue(TWO_TURNS, tmp_path_factory.mktemp("synth"), "two-turns")


@espeak
@needs_espeak
def test_wav_is_16k_mono_int16_and_matches_reference(two_turns: RenderedEncounter) -> None:
    with wave.open(str(two_turns.audio_path), "rb") as reader:
        params = reader.getparams()
    assert (params.framerate, params.nchannels, params.sampwidth) == (16000, 1, 2)
    assert two_turns.duration_s == pytest.approx(params.nframes / 16000, abs=0.001)
    assert two_turns.duration_s == pytest.approx(two_turns.turns[-1].end_s, abs=0.1)
    assert [(t.role, t.text) for t in two_turns.turns] == TWO_TURNS


@espeak
@needs_espeak
def test_turns_ordered_non_overlapping_with_silent_gaps(two_turns: RenderedEncounter) -> None:
    samples = _samples(two_turns.audio_path)
    first, second = two_turns.turns
    assert 0 <= first.start_s < first.end_s <= second.start_s < second.end_s
    assert second.start_s - first.end_s == pytest.approx(0.6, abs=0.01)
    gap = samples[int(first.end_s * 16000) + 1 : int(second.start_s * 16000) - 1]
    assert not gap.any()
    speech = samples[int(first.start_s * 16000) : int(first.end_s * 16000)]
    assert np.abs(speech).max() > 1000


@espeak
@needs_espeak
def test_voices_differ_in_name_and_pitch(two_turns: RenderedEncounter) -> None:
    assert two_turns.voices["clinician"] != two_turns.voices["patient"]
    samples = _samples(two_turns.audio_path)
    pitch = {
        t.role: _median_f0_hz(samples[int(t.start_s * 16000) : int(t.end_s * 16000)]) for t in two_turns.turns
    }
    assert pitch["patient"] > 1.4 * pitch["clinician"]


@espeak
@needs_espeak
def test_sidecar_says_synthetic_and_holds_the_turns(two_turns: RenderedEncounter) -> None:
    assert two_turns.reference_path == two_turns.audio_path.with_name("two-turns.reference.json")
    reference = json.loads(two_turns.reference_path.read_text(encoding="utf-8"))
    assert reference["synthetic"] is True
    assert reference["engine"].startswith("espeak-ng ")
    assert reference["audio"] == "two-turns.wav"
    assert [turn["role"] for turn in reference["turns"]] == ["clinician", "patient"]
    assert reference["turns"][-1]["end_s"] == two_turns.turns[-1].end_s
    leftovers = [p.name for p in two_turns.audio_path.parent.iterdir() if p.suffix == ".tmp"]
    assert leftovers == []


@espeak
@needs_espeak
def test_sample_lasts_about_a_minute(tmp_path: Path) -> None:
    encounter = render_sample(tmp_path)
    assert encounter.audio_path == tmp_path / "sample-encounter.wav"
    assert 55 <= encounter.duration_s <= 85
    assert {turn.role for turn in encounter.turns} == {"clinician", "patient"}


@espeak
@needs_espeak
@pytest.mark.parametrize(
    ("options", "message"),
    [
        (SynthOptions(clinician_voice="no-such-voice"), "no voice 'no-such-voice'"),
        (SynthOptions(patient_voice="en-us+f99"), "no voice 'en-us\\+f99'"),
        (SynthOptions(patient_voice="en-us+m3"), "must differ"),
    ],
)
def test_voices_espeak_would_silently_replace_are_refused(
    options: SynthOptions, message: str, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match=message):
        render_dialogue(TWO_TURNS, tmp_path, "x", options)
    assert list(tmp_path.iterdir()) == []


def test_sample_dialogue_holds_the_facts_a_note_needs() -> None:
    spoken = " ".join(turn.text for turn in parse_dialogue(SAMPLE_DIALOGUE)).lower()
    for fact in (
        "chest pain for two days",
        "no shortness of breath",
        "lisinopril 10 milligrams",
        "allergic to penicillin",
        "rash",
        "150 over 90",
        "heart rate is 88",
        "lungs are clear",
        "angina",
        "ecg",
        "troponin",
        "aspirin, 81 milligrams",
        "follow up in one week",
    ):
        assert fact in spoken, fact


def test_speakable_glues_aci_bench_tokens() -> None:
    assert speakable("i do n't know , it 's   fine .") == "i don't know, it's fine."


def test_missing_espeak_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(UsageError, match="apt-get install espeak-ng sox"):
        render_dialogue(TWO_TURNS, tmp_path, "x")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("turns", "name", "message"),
    [
        ([("nurse", "hello")], "x", "role 'nurse'"),
        ([DialogueTurn("patient", "  ")], "x", "text is empty"),
        ([], "x", "no turns"),
        (TWO_TURNS, "../escape", "plain file stem"),
    ],
)
def test_bad_input_is_a_usage_error(
    turns: list[tuple[str, str]], name: str, message: str, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match=message):
        render_dialogue(turns, tmp_path, name)
