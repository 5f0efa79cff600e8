"""Who said what: weights integrity, clustering, word attribution, channels, roles, enrolment.

The speech tests use real espeak-ng renderings, the real packaged Whisper tiny.en and the real
GE2E encoder; the reference is the renderer's own turn timing, so a wrong speaker is a real error.
"""

from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from ambient.audio.decode import read_all
from ambient.audio.synth import SAMPLE_DIALOGUE, render_dialogue
from ambient.cli.main import main
from ambient.config import resolve_paths
from ambient.diarize.assign import apply_speakers, smooth_runs
from ambient.diarize.attribute import attribute, resolve_mode, shared_encoder
from ambient.diarize.cluster import cluster_two, frame_margins, span_voice, voices_for_spans
from ambient.diarize.enroll import (
    load_voiceprint,
    make_voiceprint,
    save_voiceprint,
    voiceprint_path,
)
from ambient.diarize.models import load_encoder, load_manifest, weights_path
from ambient.diarize.roles import clinician_score, roles_by_content, roles_by_voiceprint
from ambient.errors import ConfigError, InputError, ModelIntegrityError, UsageError
from ambient.evaluation.speakers import align, score_aligned, score_by_time
from ambient.pipeline import Pipeline
from ambient.transcript.dialogue import CLINICIAN, PATIENT, parse_dialogue
from ambient.transcript.serialise import load_transcript_file, render
from ambient.types import Segment, Transcript, TranscriptHeader, Word
from tests.conftest import espeak_available, needs_espeak

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def _header() -> TranscriptHeader:
    return TranscriptHeader("enc-test", "x.wav", "0" * 64, "audio", 10.0, "en", None, None, "test")


def _words(text: str, start_s: float, step_s: float = 0.3) -> tuple[Word, ...]:
    return tuple(
        Word(w, round(start_s + i * step_s, 3), round(start_s + i * step_s + 0.25, 3), 0.9)
        for i, w in enumerate(text.split())
    )


# --- weights ------------------------------------------------------------------------------------


def test_manifest_matches_the_installed_weights() -> None:
    manifest = load_manifest()
    path = weights_path(manifest)
    assert path.name == manifest.file_name and len(manifest.sha256) == 64
    encoder = load_encoder(manifest)
    assert encoder.manifest.sha256 == manifest.sha256


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    manifest = load_manifest()
    tampered = tmp_path / "pretrained.pt"
    shutil.copyfile(weights_path(manifest), tampered)
    with tampered.open("r+b") as handle:
        handle.seek(4096)
        byte = handle.read(1)
        handle.seek(4096)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        load_encoder(manifest, weights=tampered)


def test_malformed_manifest_is_an_integrity_error(tmp_path: Path) -> None:
    bad = tmp_path / "resemblyzer-ge2e.toml"
    bad.write_text('name = "x"\n', encoding="utf-8")
    with pytest.raises(ModelIntegrityError, match="malformed"):
        load_manifest(bad)


# --- pure cores ---------------------------------------------------------------------------------


def test_cluster_two_separates_two_clouds_and_numbers_the_first_speaker_zero() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=256), rng.normal(size=256)
    points = np.concatenate([a + 0.3 * rng.normal(size=(30, 256)), b + 0.3 * rng.normal(size=(20, 256))])
    order = rng.permutation(50)
    clusters = cluster_two(points[order])
    truth = (order >= 30).astype(int)
    truth = truth if truth[0] == 0 else 1 - truth
    assert clusters.n_voices == 2
    assert np.array_equal(clusters.labels, truth)


def test_cluster_two_subsamples_long_recordings_and_still_labels_every_window() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=256), rng.normal(size=256)
    truth = (rng.random(6000) < 0.4).astype(int)
    truth[0] = 0
    points = np.where(truth[:, None] == 0, a, b) + 0.4 * rng.normal(size=(6000, 256))
    clusters = cluster_two(points)
    assert np.array_equal(clusters.labels, truth)


def test_cluster_two_keeps_one_voice_as_one() -> None:
    rng = np.random.default_rng(1)
    centre = rng.normal(size=256)
    clusters = cluster_two(centre + 0.05 * rng.normal(size=(40, 256)))
    assert clusters.n_voices == 1 and set(clusters.labels.tolist()) == {0}


def test_frame_margins_follow_the_windows() -> None:
    centroids = np.eye(2, 256, dtype=np.float32)
    starts, ends = np.array([0.0, 1.0]), np.array([1.0, 2.0])
    margins = frame_margins(starts, ends, centroids.copy(), centroids, 3.0)
    assert span_voice(margins, 0.2, 0.4) == 0
    assert span_voice(margins, 1.2, 1.4) == 1
    assert span_voice(margins, 2.5, 2.6) == 1  # uncovered: the nearest covered frame decides
    assert np.isnan(margins[250])


def test_uncertain_words_join_the_next_confident_word() -> None:
    margins = np.full(1000, np.nan)
    margins[0:100] = -0.3  # patient, 0-1 s
    margins[150:190] = -0.01  # "Okay." 1.5-1.9 s: too weak to tell
    margins[200:400] = 0.3  # clinician, 2-4 s
    margins[800:900] = 0.005  # weak, with nothing confident after it
    spans = [(0.1, 0.5), (0.6, 0.9), (1.5, 1.9), (2.0, 2.5), (3.0, 3.5), (8.0, 8.5)]
    assert voices_for_spans(margins, spans) == [1, 1, 0, 0, 0, 0]
    assert voices_for_spans(margins, spans, weak=0.0) == [1, 1, 1, 0, 0, 0]
    assert voices_for_spans(np.full(10, np.nan), [(0.0, 0.05)]) == [None]


def test_smooth_runs_absorbs_a_flicker_but_not_a_turn() -> None:
    assert smooth_runs(["a", "a", "b", "a", "a"]) == ["a"] * 5
    assert smooth_runs(["a", "a", "b", "b", "a"]) == ["a", "a", "b", "b", "a"]
    assert smooth_runs(["a", "b"]) == ["a", "b"]


def test_apply_speakers_splits_mixed_segments_and_renumbers() -> None:
    first = Segment(1, 0.0, 2.05, "How are you? Fine thanks", _words("How are you? Fine thanks", 0.0, 0.45))
    second = Segment(2, 3.0, 3.55, "Good.", _words("Good.", 3.0))
    transcript = Transcript(_header(), (first, second))

    def who(w: Word) -> str:
        return CLINICIAN if w.start_s < 1.3 or w.start_s >= 3.0 else PATIENT

    out = apply_speakers(transcript, who, lambda a, b: None)
    assert [(s.id, s.speaker, s.text) for s in out.segments] == [
        (1, CLINICIAN, "How are you?"),
        (2, PATIENT, "Fine thanks"),
        (3, CLINICIAN, "Good."),
    ]
    assert [w for s in out.segments for w in s.words] == [w for s in transcript.segments for w in s.words]
    assert out.segments[1].start_s == first.words[3].start_s
    text = render(out, "text")
    assert text.splitlines()[0] == "Clinician: How are you?"


def test_apply_speakers_without_a_split_keeps_ids_and_text() -> None:
    segment = Segment(7, 0.0, 1.0, " Hello  there.", _words("Hello there.", 0.0))
    out = apply_speakers(Transcript(_header(), (segment,)), lambda w: PATIENT, lambda a, b: None)
    assert out.segments == (Segment(7, 0.0, 1.0, " Hello  there.", segment.words, PATIENT),)


def test_alignment_scores_only_matching_words() -> None:
    assert align(["a", "b", "c", "d"], ["a", "x", "c", "d", "e"]) == [(0, 0), (2, 2), (3, 3)]
    reference = [("Hello,", CLINICIAN), ("how", CLINICIAN), ("are", CLINICIAN), ("you?", CLINICIAN)]
    reference += [("Okay", PATIENT), ("thanks", PATIENT)]
    hypothesis: list[tuple[str, str | None]] = [("hello", CLINICIAN), ("how", CLINICIAN)]
    hypothesis += [("art", CLINICIAN), ("you", PATIENT), ("OK.", PATIENT), ("thanks", None)]
    score, _ = score_aligned(reference, hypothesis)
    assert (score.scored, score.correct, score.unattributed) == (5, 3, 1)
    assert score.coverage == pytest.approx(5 / 6)


def test_score_by_time_uses_word_midpoints() -> None:
    turns = [(CLINICIAN, 0.0, 1.0), (PATIENT, 1.5, 3.0)]
    words: list[tuple[float, float, str | None]] = [(0.1, 0.4, CLINICIAN), (1.6, 1.9, CLINICIAN)]
    words.append((1.1, 1.3, PATIENT))  # in the gap: not scored
    score = score_by_time(turns, words)
    assert (score.scored, score.correct) == (2, 1)


# --- roles --------------------------------------------------------------------------------------


def test_roles_from_what_each_voice_says() -> None:
    doctor = [
        "What brings you in today?",
        "How long have you had it?",
        "Take a deep breath for me.",
        "I'll order an ECG and we will start aspirin.",
    ]
    patient = [
        "I have had chest pain for two days.",
        "It hurts when I climb stairs.",
        "Okay, thank you doctor.",
    ]
    assert roles_by_content([patient, doctor]) == [PATIENT, CLINICIAN]
    assert roles_by_content([doctor, patient]) == [CLINICIAN, PATIENT]
    assert clinician_score(doctor) > 0 > clinician_score(patient)
    assert roles_by_content([patient]) == [PATIENT]
    assert roles_by_content([doctor]) == [CLINICIAN]


def test_roles_from_a_voiceprint() -> None:
    centroids = np.eye(2, 256, dtype=np.float32)
    voiceprint = np.eye(2, 256, dtype=np.float32)[1] * 3
    assert roles_by_voiceprint(centroids, voiceprint) == [PATIENT, CLINICIAN]


# --- on speech ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def encounter(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[str, float, float]]]:
    """The built-in 20-turn visit, two espeak voices (about 75 s of audio)."""
    if not espeak_available():
        pytest.skip("espeak-ng or sox is not installed (apt-get install espeak-ng sox)")
    folder = tmp_path_factory.mktemp("diarize")
    rendered = render_dialogue(parse_dialogue(SAMPLE_DIALOGUE), folder, "visit")
    return rendered.audio_path, [(t.role, t.start_s, t.end_s) for t in rendered.turns]


@pytest.fixture(scope="module")
def recognised(encounter: tuple[Path, list[tuple[str, float, float]]], tiny_pipeline: Pipeline) -> Transcript:
    return tiny_pipeline.transcribe_audio(encounter[0])


def _time_score(transcript: Transcript, turns: list[tuple[str, float, float]]) -> float:
    words = [(w.start_s, w.end_s, s.speaker) for s in transcript.segments for w in s.words]
    score = score_by_time(turns, words)
    assert score.scored >= 0.9 * score.hypothesis_words  # the words are where the turns are
    return score.accuracy


@pytest.mark.model
@needs_espeak
def test_embeddings_attribute_a_rendered_dialogue(
    encounter: tuple[Path, list[tuple[str, float, float]]], recognised: Transcript
) -> None:
    audio, turns = encounter
    result = attribute(recognised, audio, "auto")
    assert (result.method, result.role_method, result.voices) == ("embeddings", "content", 2)
    assert _time_score(result.transcript, turns) >= 0.95
    for segment in result.transcript.segments:
        assert segment.speaker in (CLINICIAN, PATIENT)
    ids = [s.id for s in result.transcript.segments]
    assert ids == list(range(1, len(ids) + 1))
    vtt = render(result.transcript, "vtt")
    assert "<v Clinician>" in vtt and "<v Patient>" in vtt


def _write_stereo(path: Path, left: npt.NDArray[np.float32], right: npt.NDArray[np.float32]) -> Path:
    frames = np.stack([left, right], axis=1)
    pcm = (np.clip(frames, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(16000)
        writer.writeframes(pcm.tobytes())
    return path


@pytest.mark.model
@needs_espeak
def test_channels_attribute_a_two_microphone_recording(
    encounter: tuple[Path, list[tuple[str, float, float]]], recognised: Transcript, tmp_path: Path
) -> None:
    """Each voice on its own channel, with the other voice leaking in at -20 dB as it would
    between two lapel microphones in one room."""
    audio, turns = encounter
    mono = read_all(audio)
    doctor = np.zeros_like(mono)
    for role, start_s, end_s in turns:
        if role == CLINICIAN:
            a, b = int(start_s * 16000), int(end_s * 16000)
            doctor[a:b] = mono[a:b]
    patient = mono - doctor
    # The clinician on the right channel: channel order must not decide the role.
    stereo = _write_stereo(tmp_path / "two-mics.wav", patient + 0.1 * doctor, doctor + 0.1 * patient)
    assert resolve_mode(stereo, "auto") == "channels"
    result = attribute(recognised, stereo, "channels")
    assert result.method == "channels"
    assert _time_score(result.transcript, turns) >= 0.97

    copied = _write_stereo(tmp_path / "mono-as-stereo.wav", mono, mono)
    assert resolve_mode(copied, "auto") == "embeddings"
    with pytest.raises(UsageError, match="stereo"):
        attribute(recognised, audio, "channels")


@pytest.mark.model
@needs_espeak
def test_enrolment_round_trip_names_the_clinician_by_voice(
    encounter: tuple[Path, list[tuple[str, float, float]]], recognised: Transcript, tmp_path: Path
) -> None:
    audio, turns = encounter
    # The clinician's voice saying other things: a voice print is of a voice, not of words.
    enrol_lines = "\n".join(
        f"[doctor] {line}"
        for line in (
            "Thank you for waiting. Please have a seat and tell me how you have been.",
            "I reviewed your blood tests from last month and they look much better.",
            "We will keep the same dose for now and check your kidneys again in three months.",
        )
    )
    enrol = render_dialogue(parse_dialogue(enrol_lines), tmp_path, "enrol").audio_path
    assert main(["enroll", str(enrol)]) == 0
    paths = resolve_paths()
    stored = voiceprint_path(paths)
    assert stored.is_file() and stored.stat().st_mode & 0o077 == 0
    voiceprint = load_voiceprint(stored, shared_encoder().manifest.sha256)
    assert voiceprint.speech_s >= 5 and voiceprint.embedding.shape == (256,)

    result = attribute(recognised, audio, "embeddings", paths=paths)
    assert result.role_method == "voiceprint"
    assert _time_score(result.transcript, turns) >= 0.95

    # The patient enrolled by mistake: roles follow the voice print, so they swap.
    patient_lines = "\n".join(
        f"[patient] {t}" for t in ("I have been coughing at night.", "My chest is sore.")
    )
    patient_lines += "\n[patient] It started after a cold three weeks ago and it keeps me awake."
    wrong = render_dialogue(parse_dialogue(patient_lines), tmp_path, "wrong").audio_path
    save_voiceprint(make_voiceprint(shared_encoder(), wrong), stored)
    swapped = attribute(recognised, audio, "embeddings", paths=paths)
    assert _time_score(swapped.transcript, turns) <= 0.05

    data = json.loads(stored.read_text(encoding="utf-8"))
    data["model"]["sha256"] = "0" * 64
    stored.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigError, match="enroll"):
        attribute(recognised, audio, "embeddings", paths=paths)
    assert main(["enroll", "--remove"]) == 0 and not stored.exists()


@needs_espeak
def test_enrolment_needs_enough_speech(tmp_path: Path) -> None:
    short = render_dialogue([(CLINICIAN, "Hello.")], tmp_path, "short").audio_path
    with pytest.raises(InputError, match="speech"):
        make_voiceprint(shared_encoder(), short)


@pytest.mark.model
@needs_espeak
def test_cli_transcribe_and_note_with_speakers(
    encounter: tuple[Path, list[tuple[str, float, float]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audio, _ = encounter
    out = tmp_path / "visit.json"
    assert (
        main(["transcribe", str(audio), "--speakers", "embeddings", "--format", "json", "-o", str(out)]) == 0
    )
    segments = json.loads(out.read_text(encoding="utf-8"))["segments"]
    assert {s["speaker"] for s in segments} == {CLINICIAN, PATIENT}
    assert segments[0]["speaker"] == CLINICIAN  # "Good morning. I am Doctor Lee."
    lines = render(load_transcript_file(out), "text").splitlines()
    assert lines[0].startswith("Clinician: ") and lines[1].startswith("Patient: ")
    assert main(["note", str(audio), "--speakers", "auto", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["sections"]
    assert main(["transcribe", str(audio), "--speakers", "channels"]) == 2  # usage error: not stereo


def test_a_recording_without_speech_attributes_to_nothing(tmp_path: Path) -> None:
    silent = tmp_path / "silence.wav"
    with wave.open(str(silent), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(16000)
        writer.writeframes(np.zeros(16000 * 3, dtype="<i2").tobytes())
    empty = Transcript(_header(), ())
    result = attribute(empty, silent, "auto")
    assert (result.method, result.windows, result.transcript.segments) == ("embeddings", 0, ())
    wordless = Transcript(_header(), (Segment(1, 0.5, 1.5, "[inaudible]"),))
    assert attribute(wordless, silent, "embeddings").transcript.segments[0].text == "[inaudible]"
