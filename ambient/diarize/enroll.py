"""The clinician's voice print: one embedding of the workstation owner's voice, kept locally.

``ambient enroll VOICE.wav`` embeds the speech of a short recording of the clinician (30 s of
ordinary talk is plenty; at least :data:`MIN_SPEECH_S` of speech is required) and stores it under
``<data dir>/voiceprints/clinician.json`` with the speaker model it was made with. Attribution
then names the voice nearer to it the clinician. A voice print is biometric data: the file is
written owner-readable only, holds no audio, and is never logged.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ambient.atomic import atomic_write_text
from ambient.audio.decode import file_sha256, iter_blocks
from ambient.config import Paths
from ambient.diarize.embed import speech_regions
from ambient.diarize.models import SAMPLE_RATE_HZ, SpeakerEncoder
from ambient.errors import ConfigError, InputError

FORMAT_ID = "ambient.voiceprint.v1"
MIN_SPEECH_S = 5.0
_MAX_SPEECH_S = 300.0


@dataclass(frozen=True)
class VoicePrint:
    embedding: npt.NDArray[np.float32]
    model_name: str
    model_sha256: str
    speech_s: float
    source_sha256: str
    created_at: str


def voiceprint_path(paths: Paths, name: str = "clinician") -> Path:
    return paths.data_dir / "voiceprints" / f"{name}.json"


def make_voiceprint(encoder: SpeakerEncoder, audio: Path) -> VoicePrint:
    """Embed the speech (Silero VAD regions) of an enrolment recording; silence is left out so a
    quiet room does not dilute the voice."""
    sha = file_sha256(audio)
    speech: list[npt.NDArray[np.float32]] = []
    total = 0
    for block in iter_blocks(audio, 60.0):
        samples = block.samples.astype(np.float32, copy=False)
        for a, b in speech_regions(samples):
            speech.append(samples[a:b])
            total += b - a
        if total >= _MAX_SPEECH_S * SAMPLE_RATE_HZ:
            break
    speech_s = total / SAMPLE_RATE_HZ
    if speech_s < MIN_SPEECH_S:
        raise InputError(
            f"{audio} holds only {speech_s:.1f} s of speech; record at least {MIN_SPEECH_S:.0f} s "
            "(30 s of ordinary talk is best) and enrol again"
        )
    embedding = encoder.embed(np.concatenate(speech))
    return VoicePrint(
        embedding=embedding,
        model_name=encoder.manifest.name,
        model_sha256=encoder.manifest.sha256,
        speech_s=round(speech_s, 2),
        source_sha256=sha,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def save_voiceprint(voiceprint: VoicePrint, path: Path) -> Path:
    data = {
        "format": FORMAT_ID,
        "model": {"name": voiceprint.model_name, "sha256": voiceprint.model_sha256},
        "speech_s": voiceprint.speech_s,
        "source_sha256": voiceprint.source_sha256,
        "created_at": voiceprint.created_at,
        "embedding": [round(float(v), 7) for v in voiceprint.embedding],
    }
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")
    os.chmod(path, 0o600)
    return path


def load_voiceprint(path: Path, expected_model_sha256: str | None = None) -> VoicePrint:
    """Read a stored voice print; one made with another speaker model cannot be compared."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT_ID:
            raise ValueError(f"format is {data.get('format')!r}, expected {FORMAT_ID!r}")
        embedding = np.asarray(data["embedding"], dtype=np.float32)
        if embedding.shape != (256,) or not np.all(np.isfinite(embedding)):
            raise ValueError("embedding must be 256 finite numbers")
        voiceprint = VoicePrint(
            embedding=embedding,
            model_name=str(data["model"]["name"]),
            model_sha256=str(data["model"]["sha256"]),
            speech_s=float(data["speech_s"]),
            source_sha256=str(data["source_sha256"]),
            created_at=str(data["created_at"]),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"voice print {path} cannot be read ({exc}); delete it and run `ambient enroll` again"
        ) from None
    if expected_model_sha256 and voiceprint.model_sha256 != expected_model_sha256:
        raise ConfigError(
            f"voice print {path} was made with another speaker model; run `ambient enroll` again"
        )
    return voiceprint
