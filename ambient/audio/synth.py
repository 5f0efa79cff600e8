"""Synthetic two-voice clinical encounters, rendered with espeak-ng.

Real consultation audio is scarce and cannot be shared, but the public datasets have thousands of
doctor–patient dialogues as text. Speaking each turn with one of two clearly different espeak-ng
voices gives an audio file whose words and speaker timings are known exactly, so every dialogue
becomes a speech-recognition *and* a diarisation test. The speech is robotic: figures measured on
it say how the pipeline behaves, not how well it hears people, and every file says so (the
``.reference.json`` sidecar carries ``"synthetic": true``).

The output is what ``ambient.audio`` promises everywhere: one 16 kHz mono 16-bit WAV.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ambient.atomic import atomic_write_bytes
from ambient.errors import AmbientError, OutputError, UsageError
from ambient.transcript.dialogue import CLINICIAN, PATIENT, ROLES, DialogueTurn, detokenize, parse_dialogue

SAMPLE_RATE_HZ = 16000
# Anything quieter than this (int16 full scale is 32767) is espeak's own padding, not speech.
_SILENCE_LEVEL = 64
_EDGE_PAD_S = 0.02
# sox output settings: headerless little-endian int16 at 16 kHz mono, read straight into numpy.
_SOX_RAW_16K_MONO_INT16 = (
    *("-t", "raw", "-r", str(SAMPLE_RATE_HZ), "-e", "signed-integer", "-b", "16", "-c", "1"),
    *("--endian", "little"),
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

SAMPLE_DIALOGUE = """\
[doctor] Good morning. I am Doctor Lee. What brings you in today?
[patient] I have had chest pain for two days.
[doctor] Where is the pain?
[patient] In the middle of my chest. It feels tight.
[doctor] Does it get worse when you walk or climb stairs?
[patient] Yes. It gets worse when I climb stairs, and it goes away when I rest.
[doctor] Do you have any shortness of breath?
[patient] No. I have no shortness of breath.
[doctor] What medicines do you take?
[patient] I take lisinopril 10 milligrams once a day for my blood pressure.
[doctor] Do you have any allergies?
[patient] Yes. I am allergic to penicillin. It gives me a rash.
[doctor] Let me examine you. Your blood pressure is 150 over 90. Your heart rate is 88.
[patient] Is that too high?
[doctor] Your blood pressure is high today. Your lungs are clear. Your heart sounds are normal.
[patient] Is it my heart?
[doctor] It could be angina. That means your heart is not getting enough blood.
[doctor] I will order an ECG and a troponin today. Take aspirin, 81 milligrams, once a day.
[doctor] Follow up in one week. Go to the emergency room if the pain gets worse.
[patient] Okay. Thank you, doctor.
"""


@dataclass(frozen=True)
class SynthOptions:
    """Voices and pacing. The defaults are a low male and a higher female variant, far enough
    apart in pitch that a diarisation error is the diariser's fault, not the voices'."""

    clinician_voice: str = "en-us+m3"
    patient_voice: str = "en-us+f2"
    clinician_wpm: int = 165
    patient_wpm: int = 160
    gap_s: float = 0.6
    lead_s: float = 0.25
    tail_s: float = 0.05


@dataclass(frozen=True)
class RenderedTurn:
    """Where one turn sits in the rendered audio; ``text`` is exactly what was spoken."""

    role: str
    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class RenderedEncounter:
    """A rendered dialogue: the audio, and the reference of who said what and when."""

    audio_path: Path
    duration_s: float
    turns: tuple[RenderedTurn, ...]
    voices: dict[str, str]
    reference_path: Path
    engine: str


def speakable(text: str) -> str:
    """What espeak should say for a dataset turn: the detokenised text (see ``detokenize``)."""
    return detokenize(text)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise UsageError(f"{name} is not installed; on Debian: apt-get install espeak-ng sox")
    return path


def espeak_version() -> str:
    """Engine name and version for every sidecar, since another version speaks differently."""
    result = subprocess.run([_tool("espeak-ng"), "--version"], capture_output=True, text=True, check=False)
    found = re.search(r"text-to-speech:\s*(\S+)", result.stdout)
    return f"espeak-ng {found.group(1) if found else result.stdout.strip() or 'unknown'}"


def _listing(argument: str) -> set[str]:
    """Lower-case language codes, voice names and file names in an espeak-ng voice table."""
    table = subprocess.run([_tool("espeak-ng"), argument], capture_output=True, text=True, check=False).stdout
    names: set[str] = set()
    for row in table.splitlines()[1:]:
        cells = row.split()
        if len(cells) >= 4:
            names.update({cells[1].lower(), cells[3].lower()})
            names.update(cell.rsplit("/", 1)[-1].lower() for cell in cells if "/" in cell)
    return names


def _check_voices(voices: dict[str, str]) -> None:
    """espeak-ng quietly falls back to its default for an unknown variant ("en-us+m33") and some
    unknown names, which would give both roles one voice and void the diarisation reference."""
    if len(set(voices.values())) < len(voices):
        raise UsageError(f"the clinician and patient voices must differ, got {voices}")
    languages, variants = _listing("--voices"), _listing("--voices=variant")
    for role, voice in voices.items():
        language, _, variant = voice.lower().partition("+")
        if language not in languages or (variant and variant not in variants):
            raise UsageError(
                f"espeak-ng has no voice {voice!r} (asked for the {role}); "
                "list them with: espeak-ng --voices=en; espeak-ng --voices=variant"
            )


def _speak(text: str, voice: str, wpm: int, workdir: Path) -> npt.NDArray[np.int16]:
    """One turn as 16 kHz int16 samples, trimmed to the speech plus a few milliseconds."""
    raw_wav = workdir / "turn.wav"
    raw_wav.unlink(missing_ok=True)  # a failed call must not leave us reading the last turn
    spoken = subprocess.run(
        [_tool("espeak-ng"), "-v", voice, "-s", str(wpm), "-b", "1", "--stdin", "-w", str(raw_wav)],
        input=text.replace("[[", "[ [").encode("utf-8"),  # "[[" would start phoneme input
        capture_output=True,
        check=False,
    )
    if spoken.returncode != 0 or not raw_wav.exists():
        detail = spoken.stderr.decode("utf-8", "replace").strip() or "no message"
        raise AmbientError(f"espeak-ng failed on {text[:40]!r} with voice {voice!r}: {detail}")
    converted = subprocess.run(
        [_tool("sox"), "-V1", str(raw_wav), *_SOX_RAW_16K_MONO_INT16, "-"],
        capture_output=True,
        check=False,
    )
    if converted.returncode != 0:
        detail = converted.stderr.decode("utf-8", "replace").strip() or "no message"
        raise AmbientError(f"sox could not resample espeak-ng output: {detail}")
    samples = np.frombuffer(converted.stdout, dtype="<i2").astype(np.int16)
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > _SILENCE_LEVEL)
    if loud.size == 0:
        return samples  # punctuation-only text: keep espeak's silence rather than invent timing
    pad = int(_EDGE_PAD_S * SAMPLE_RATE_HZ)
    return samples[max(0, int(loud[0]) - pad) : int(loud[-1]) + 1 + pad]


def _silence(seconds: float) -> npt.NDArray[np.int16]:
    return np.zeros(round(seconds * SAMPLE_RATE_HZ), dtype=np.int16)


def _wav_bytes(samples: npt.NDArray[np.int16]) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(SAMPLE_RATE_HZ)
        writer.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def _as_turn(turn: DialogueTurn | tuple[str, str], index: int) -> DialogueTurn:
    role, text = (turn.role, turn.text) if isinstance(turn, DialogueTurn) else turn
    if role not in ROLES:
        raise UsageError(f"turn {index}: role {role!r} is not one of {', '.join(ROLES)}")
    if not speakable(text):
        raise UsageError(f"turn {index}: the {role}'s text is empty; drop the turn or give words")
    return DialogueTurn(role=role, text=speakable(text))


def render_dialogue(
    turns: Sequence[DialogueTurn | tuple[str, str]],
    out_dir: Path,
    name: str,
    options: SynthOptions | None = None,
) -> RenderedEncounter:
    """Writes ``<out_dir>/<name>.wav`` and ``<name>.reference.json``; turns are spoken in order
    with ``gap_s`` of silence between them, so reference turns never overlap."""
    options = options or SynthOptions()
    if not _NAME.match(name):
        raise UsageError(f"name {name!r} must be a plain file stem (letters, digits, . _ -)")
    checked = [_as_turn(turn, index) for index, turn in enumerate(turns, start=1)]
    if not checked:
        raise UsageError("the dialogue has no turns to speak")
    engine = espeak_version()
    _tool("sox")
    voices = {CLINICIAN: options.clinician_voice, PATIENT: options.patient_voice}
    speeds = {CLINICIAN: options.clinician_wpm, PATIENT: options.patient_wpm}
    _check_voices(voices)
    gap = _silence(options.gap_s)
    pieces: list[npt.NDArray[np.int16]] = [_silence(options.lead_s)]
    cursor = len(pieces[0])
    rendered: list[RenderedTurn] = []
    with tempfile.TemporaryDirectory(prefix="ambient-synth-") as workdir:
        for index, turn in enumerate(checked):
            if index:
                pieces.append(gap)
                cursor += len(gap)
            speech = _speak(turn.text, voices[turn.role], speeds[turn.role], Path(workdir))
            pieces.append(speech)
            start_s, cursor = cursor / SAMPLE_RATE_HZ, cursor + len(speech)
            # Exact sample positions, not rounded: a reference must not cut into a word.
            rendered.append(RenderedTurn(turn.role, turn.text, start_s, cursor / SAMPLE_RATE_HZ))
    pieces.append(_silence(options.tail_s))
    audio = np.concatenate(pieces)
    duration_s = len(audio) / SAMPLE_RATE_HZ

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create {out_dir}: {error.strerror}") from error
    audio_path = out_dir / f"{name}.wav"
    reference_path = out_dir / f"{name}.reference.json"
    data = _wav_bytes(audio)
    atomic_write_bytes(audio_path, data)
    reference: dict[str, Any] = {
        "synthetic": True,
        "note": "synthetic speech (espeak-ng), not a human recording",
        "engine": engine,
        "audio": audio_path.name,
        "audio_sha256": hashlib.sha256(data).hexdigest(),
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "channels": 1,
        "duration_s": duration_s,
        "voices": voices,
        "words_per_minute": speeds,
        "gap_s": options.gap_s,
        "turns": [asdict(turn) for turn in rendered],
    }
    text = json.dumps(reference, indent=2, ensure_ascii=False) + "\n"
    atomic_write_bytes(reference_path, text.encode("utf-8"))
    return RenderedEncounter(audio_path, duration_s, tuple(rendered), voices, reference_path, engine)


def render_sample(out_dir: Path, name: str = "sample-encounter") -> RenderedEncounter:
    """The built-in primary-care visit: a quick end-to-end input with known facts (complaint,
    a denied symptom, a dosed medication, an allergy, vitals, assessment and plan)."""
    return render_dialogue(parse_dialogue(SAMPLE_DIALOGUE, source="SAMPLE_DIALOGUE"), out_dir, name)
