"""Which voice is the clinician: by what each voice says, or by an enrolled voice print.

Clustering finds two voices but not who is who. In a consultation the clinician asks the
questions, examines ("take a deep breath") and plans ("I'll order an ECG"), while the patient
reports in the first person ("I have had chest pain", "my chest"). The cue phrases live in
``role_cues.json`` beside this module, as data a clinician can review; each voice gets

    score = question_weight × (share of its sentences that are questions)
          + second_person_question_weight × (share that are "do you…"/"have you…" questions)
          + (clinician cue weight − patient cue weight) per sentence

and the higher score is the clinician. When the workstation's owner has enrolled a voice print,
the voice nearer to it is the clinician instead, whatever was said.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ambient.errors import ConfigError
from ambient.transcript.dialogue import CLINICIAN, PATIENT

CUES_PATH = Path(__file__).with_name("role_cues.json")
CUES_FORMAT = "ambient.role_cues.v1"
_SENTENCE = re.compile(r"[^.?!]+[.?!]*")
_SECOND_PERSON_QUESTION = re.compile(
    r"^\s*(and |so |okay,? |ok,? |now,? )*(do|did|does|have|has|are|were|is|can|could|would|will)"
    r" (you|your|it|there|anyone)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Cue:
    pattern: re.Pattern[str]
    weight: float


@dataclass(frozen=True)
class RoleCues:
    version: str
    question_weight: float
    second_person_question_weight: float
    clinician: tuple[Cue, ...]
    patient: tuple[Cue, ...]


def _cues(items: object, source: Path, side: str) -> tuple[Cue, ...]:
    if not isinstance(items, list):
        raise ConfigError(f"{source}: '{side}' must be a list of {{pattern, weight}} objects")
    cues: list[Cue] = []
    for index, item in enumerate(items):
        try:
            cues.append(Cue(re.compile(str(item["pattern"]), re.IGNORECASE), float(item["weight"])))
        except (KeyError, TypeError, ValueError, re.error) as exc:
            raise ConfigError(
                f"{source}: {side}[{index}] is not a valid cue ({exc}); fix the pattern"
            ) from None
    return tuple(cues)


@functools.cache
def load_cues(path: Path = CUES_PATH) -> RoleCues:
    """Read and compile the cue file once per process."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read role cues {path} ({exc}); restore it from the release") from None
    if not isinstance(data, dict) or data.get("format") != CUES_FORMAT:
        raise ConfigError(f"{path} is not a role cue file (expected format {CUES_FORMAT!r})")
    return RoleCues(
        version=str(data.get("version", "")),
        question_weight=float(data.get("question_weight", 0.0)),
        second_person_question_weight=float(data.get("second_person_question_weight", 0.0)),
        clinician=_cues(data.get("clinician"), path, "clinician"),
        patient=_cues(data.get("patient"), path, "patient"),
    )


def clinician_score(texts: Iterable[str], cues: RoleCues | None = None) -> float:
    """How much a voice's words sound like the clinician's (higher: more so). Per sentence, so a
    talkative patient does not outscore a terse clinician by volume alone."""
    cues = cues or load_cues()
    sentences = [s.strip() for text in texts for s in _SENTENCE.findall(text) if s.strip()]
    if not sentences:
        return 0.0
    questions = sum(s.endswith("?") for s in sentences)
    second_person = sum(bool(_SECOND_PERSON_QUESTION.match(s)) and s.endswith("?") for s in sentences)
    joined = " \n".join(sentences)
    clinician = sum(c.weight * len(c.pattern.findall(joined)) for c in cues.clinician)
    patient = sum(c.weight * len(c.pattern.findall(joined)) for c in cues.patient)
    n = len(sentences)
    return float(
        cues.question_weight * questions / n
        + cues.second_person_question_weight * second_person / n
        + (clinician - patient) / n
    )


def roles_by_content(texts_by_voice: Sequence[Sequence[str]], cues: RoleCues | None = None) -> list[str]:
    """Role of each voice (index 0, 1): the higher clinician score is the clinician. A single
    voice is the clinician when it sounds like one (dictation) and the patient otherwise."""
    scores = [clinician_score(texts, cues) for texts in texts_by_voice]
    if len(scores) == 1:
        return [CLINICIAN if scores[0] > 0 else PATIENT]
    clinician = int(np.argmax(scores))
    return [CLINICIAN if voice == clinician else PATIENT for voice in range(len(scores))]


def roles_by_voiceprint(centroids: npt.NDArray[np.float32], voiceprint: npt.NDArray[np.float32]) -> list[str]:
    """Role of each voice when the clinician's voice is known: the nearest voice is theirs."""
    sims = centroids @ (voiceprint / max(float(np.linalg.norm(voiceprint)), 1e-9))
    clinician = int(np.argmax(sims))
    return [CLINICIAN if voice == clinician else PATIENT for voice in range(len(centroids))]
