"""What ``ambient eval asr|stream|speakers`` reads: audio files paired with reference transcripts.

DATA is either

* a folder: each ``NAME.<audio>`` is paired with the first reference found beside it, in this
  order — ``NAME.reference.json`` (written by ``scripts/render_dialogues.py``: turns with exact
  times, marked synthetic), ``NAME.TextGrid`` (Praat; one tier per speaker, named doctor/patient),
  ``NAME_doctor.TextGrid`` + ``NAME_patient.TextGrid`` (PriMock57's one file per speaker), or
  ``NAME.txt`` (plain text, or ``D:``/``P:`` / ``[doctor]``/``[patient]`` turns); or
* a manifest: a JSON list (or ``{"items": [...]}``) or a CSV with columns ``audio`` and
  ``reference``, paths relative to the manifest. The ``manifest.json`` files of
  ``../shared/data/realspeech`` (``file`` + ``transcript_plain``/``transcript_file``/``transcript``)
  are read as they are.

A reference keeps its turns (role, and times when it has them) so one loader serves WER, which
needs only the words, and speaker attribution, which needs who said them.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ambient.audio.decode import AUDIO_SUFFIXES
from ambient.errors import InputError, TranscriptFormatError
from ambient.evaluation.textgrid import read_textgrid
from ambient.transcript.dialogue import parse_dialogue, role_for_label

_TAG = re.compile(r"</?[A-Za-z_]+/?>")  # PriMock57's <UNSURE>…</UNSURE>, <UNIN/>, <INAUDIBLE_SPEECH/>
_LABELLED = re.compile(r"^\s*(?:\[([^\]\n]*)\]|([A-Za-z][A-Za-z0-9_.]{0,24})\s*[:;])")


@dataclass(frozen=True)
class ReferenceTurn:
    role: str | None  # "clinician" | "patient" | None when the reference does not say
    text: str
    start_s: float | None = None
    end_s: float | None = None


@dataclass(frozen=True)
class Reference:
    path: Path
    turns: tuple[ReferenceTurn, ...]
    synthetic: bool = False  # rendered speech (espeak-ng): label every figure measured on it

    @property
    def text(self) -> str:
        return " ".join(t.text for t in self.turns)

    @property
    def has_roles(self) -> bool:
        return any(t.role for t in self.turns)

    @property
    def has_times(self) -> bool:
        return bool(self.turns) and all(t.start_s is not None for t in self.turns)


@dataclass(frozen=True)
class EvalItem:
    name: str
    audio: Path
    reference: Reference


def clean(text: str) -> str:
    """Transcriber tags out (their inner words stay), whitespace collapsed."""
    return " ".join(_TAG.sub(" ", text).split())


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise TranscriptFormatError(f"{path} is not UTF-8 text; save the reference as UTF-8") from None
    except OSError as exc:
        raise InputError(f"cannot read reference {path}: {exc.strerror or exc}") from None


def _is_dialogue(text: str) -> bool:
    """Turns when the first line opens with ``[label]`` (any: an unknown one is then reported) or
    with ``label:`` for a speaker we know; otherwise plain text ("Note: ..." stays prose)."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    match = _LABELLED.match(first)
    if match is None:
        return False
    return match.group(1) is not None or role_for_label(match.group(2) or "") is not None


def _tier_role(name: str, path: Path) -> str | None:
    """The tier's name says the speaker; failing that, PriMock57's ``…_doctor.TextGrid`` file name."""
    return role_for_label(name) or role_for_label(path.stem.rsplit("_", 1)[-1])


def read_textgrid_turns(*paths: Path) -> list[ReferenceTurn]:
    """Non-empty intervals of every tier of every file, merged in time order."""
    turns: list[ReferenceTurn] = []
    for path in paths:
        for tier in read_textgrid(path):
            role = _tier_role(tier.name, path)
            for interval in tier.intervals:
                text = clean(interval.text)
                if text:
                    turns.append(ReferenceTurn(role, text, interval.start_s, interval.end_s))
    return sorted(turns, key=lambda t: (t.start_s or 0.0, t.end_s or 0.0))


def _rendered(path: Path) -> Reference:
    try:
        data = json.loads(_read_text(path))
        turns = tuple(
            ReferenceTurn(t["role"], t["text"], float(t["start_s"]), float(t["end_s"])) for t in data["turns"]
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise TranscriptFormatError(
            f"{path} is not a rendered reference (expected turns with role, text, start_s, end_s: {exc}); "
            "re-render it with scripts/render_dialogues.py"
        ) from None
    return Reference(path, turns, synthetic=bool(data.get("synthetic", False)))


def read_reference(path: Path, *more: Path) -> Reference:
    """One reference from its file(s); the format follows the suffix (see the module docstring)."""
    suffix = path.suffix.lower()
    if path.name.endswith(".reference.json"):
        return _rendered(path)
    if suffix == ".textgrid":
        turns = read_textgrid_turns(path, *more)
    else:
        text = _read_text(path)
        if _is_dialogue(text):
            turns = [ReferenceTurn(t.role, clean(t.text)) for t in parse_dialogue(text, source=str(path))]
        else:
            turns = [ReferenceTurn(None, clean(text))]
    turns = [t for t in turns if t.text]
    if not turns:
        raise TranscriptFormatError(f"{path} has no words to compare with; give the reference transcript")
    return Reference(path, tuple(turns))


def _reference_beside(audio: Path) -> tuple[Path, ...] | None:
    stem = audio.with_suffix("")
    for candidate in (stem.with_name(stem.name + ".reference.json"), stem.with_suffix(".TextGrid")):
        if candidate.is_file():
            return (candidate,)
    pair = (stem.with_name(stem.name + "_doctor.TextGrid"), stem.with_name(stem.name + "_patient.TextGrid"))
    if all(p.is_file() for p in pair):
        return pair
    text = stem.with_suffix(".txt")
    return (text,) if text.is_file() else None


def _from_folder(folder: Path) -> list[EvalItem]:
    audio = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not audio:
        raise InputError(
            f"{folder} holds no audio files ({', '.join(s.lstrip('.') for s in AUDIO_SUFFIXES)}); "
            "put NAME.wav beside NAME.txt, or give a manifest"
        )
    items, unpaired = [], []
    for path in audio:
        refs = _reference_beside(path)
        if refs is None:
            unpaired.append(path.name)
            continue
        items.append(EvalItem(path.stem, path, read_reference(*refs)))
    if unpaired:
        raise InputError(
            f"{folder}: no reference for {', '.join(unpaired[:5])}{' …' if len(unpaired) > 5 else ''}; "
            "put NAME.txt (or NAME.TextGrid / NAME.reference.json) beside each audio file"
        )
    return items


def _manifest_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return list(csv.DictReader(handle))
    data = json.loads(_read_text(path))
    rows = data.get("items") if isinstance(data, dict) else data
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InputError(f'{path}: a JSON manifest is a list of objects (or {{"items": [...]}})')
    return rows


def _from_manifest(path: Path) -> list[EvalItem]:
    try:
        rows = _manifest_rows(path)
    except (OSError, UnicodeDecodeError, csv.Error, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read manifest {path}: {exc}") from None
    base = path.parent
    items = []
    for number, row in enumerate(rows, start=1):
        audio_name = row.get("audio") or row.get("file")
        ref_name = row.get("reference") or row.get("transcript_file") or row.get("transcript_plain")
        if not audio_name or not (ref_name or row.get("transcript")):
            raise InputError(
                f"{path}, item {number}: needs 'audio' and 'reference' (paths relative to the manifest)"
            )
        audio = base / str(audio_name)
        if not audio.is_file():
            raise InputError(f"{path}, item {number}: audio file {audio} does not exist")
        if ref_name:
            refs = [base / p for p in str(ref_name).split("+")]
            missing = [p for p in refs if not p.is_file()]
            if missing:
                raise InputError(f"{path}, item {number}: reference {missing[0]} does not exist")
            reference = read_reference(*refs)
        else:
            reference = Reference(path, (ReferenceTurn(None, clean(str(row["transcript"]))),))
        items.append(EvalItem(str(row.get("name") or audio.stem), audio, reference))
    if not items:
        raise InputError(f"{path} lists no items")
    return items


def load_items(data: Path) -> list[EvalItem]:
    """Audio + reference pairs from a folder or a manifest (JSON or CSV)."""
    if data.is_dir():
        return _from_folder(data)
    if data.is_file() and data.suffix.lower() in (".json", ".csv"):
        return _from_manifest(data)
    if data.is_file():
        raise InputError(f"{data}: DATA is a folder of NAME.<audio> + NAME.txt, or a .json/.csv manifest")
    raise InputError(f"{data} does not exist; give a folder of audio + references or a manifest")
