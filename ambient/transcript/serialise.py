"""Transcripts to and from files: our JSON format, WebVTT, SRT and plain text.

The JSON form (``ambient.transcript.v1``) is the one a person may keep, edit and feed back to
``ambient note``, so reading it validates every field and names the bad one: a clinician who
hand-corrected a word should hear "segments[3].start_s: expected a number", not a traceback.
It round-trips exactly, and its canonical form is hashed for lineage (a note's provenance names
the transcript it came from). The subtitle and text renderings are one-way views for people.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from ambient.errors import TranscriptFormatError, UsageError
from ambient.protect.sealed import open_if_sealed
from ambient.types import DecodingOptions, ModelRef, Segment, Transcript, TranscriptHeader, Word

FORMAT_ID = "ambient.transcript.v1"
FORMATS = ("json", "vtt", "srt", "text")

# Synthetic timing for dialogues typed or pasted without audio: ~150 words a minute.
SECONDS_PER_WORD = 0.4

_R = TypeVar("_R")

_HINT = "Regenerate it with `ambient transcribe --format json` or fix the field by hand."


# --- JSON ----------------------------------------------------------------------------------------


def transcript_to_json(t: Transcript) -> dict[str, Any]:
    """The ``ambient.transcript.v1`` object. Segment and header keys are spelt out so the format
    does not drift when those dataclasses change; model and decoding records are kept whole."""
    h = t.header
    return {
        "format": FORMAT_ID,
        "header": {
            "encounter_id": h.encounter_id,
            "source_path": h.source_path,
            "source_sha256": h.source_sha256,
            "source_kind": h.source_kind,
            "duration_s": h.duration_s,
            "language": h.language,
            "model": None if h.model is None else dataclasses.asdict(h.model),
            "decoding": None if h.decoding is None else dataclasses.asdict(h.decoding),
            "pipeline_version": h.pipeline_version,
        },
        "segments": [
            {
                "id": s.id,
                "start_s": s.start_s,
                "end_s": s.end_s,
                "text": s.text,
                "speaker": s.speaker,
                "words": [
                    {"word": w.word, "start_s": w.start_s, "end_s": w.end_s, "probability": w.probability}
                    for w in s.words
                ],
            }
            for s in t.segments
        ],
    }


def transcript_from_json(data: dict[str, Any], source: str) -> Transcript:
    """Validate and build a Transcript; ``source`` (usually the file path) goes in every error.

    Keys we do not know are ignored so that a later minor version stays readable; every key that
    :func:`transcript_to_json` writes is required, so a typo in a key name is reported as missing.
    """
    r = _Reader(source)
    root = r.obj(data, "")
    fmt = root.get("format")
    if fmt != FORMAT_ID:
        what = "missing" if "format" not in root else f"is {fmt!r}"
        r.fail(
            "format",
            f"{what}; expected {FORMAT_ID!r}. This is not an ambient transcript "
            "file, or it was written by a newer version of ambient",
        )
    hp = "header"
    h = r.obj(r.get(root, hp, ""), hp)
    header = TranscriptHeader(
        encounter_id=r.string(h, "encounter_id", hp),
        source_path=r.string(h, "source_path", hp),
        source_sha256=r.string(h, "source_sha256", hp),
        source_kind=r.string(h, "source_kind", hp),
        duration_s=r.time(h, "duration_s", hp),
        language=r.opt_string(h, "language", hp),
        model=_record_from_json(r, ModelRef, r.get(h, "model", hp), "header.model"),
        decoding=_record_from_json(r, DecodingOptions, r.get(h, "decoding", hp), "header.decoding"),
        pipeline_version=r.string(h, "pipeline_version", hp),
    )
    raw_segments = r.array(r.get(root, "segments", ""), "segments")
    segments = tuple(_segment_from_json(r, item, f"segments[{i}]") for i, item in enumerate(raw_segments))
    return Transcript(header=header, segments=segments)


def transcript_sha256(t: Transcript) -> str:
    """Hash of the canonical JSON (sorted keys, no whitespace, UTF-8): equal transcripts hash
    equal whatever the key order or indentation of the file they were read from."""
    canonical = json.dumps(transcript_to_json(t), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def load_transcript_file(path: Path) -> Transcript:
    """Read one of our transcript JSON files (recognised by its ``format`` key).

    Dialogue text files are not handled here: ``ambient.transcript.dialogue`` parses those and
    :func:`transcript_from_turns` turns the result into a Transcript.
    """
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise TranscriptFormatError(
            f"{source}: cannot read transcript file ({reason}). Check the path and permissions."
        ) from exc
    return transcript_from_bytes(raw, source)


def transcript_from_bytes(raw: bytes, source: str) -> Transcript:
    """A transcript file's bytes (sealed or plain) read back; ``source`` names it in errors.

    Split from :func:`load_transcript_file` so a batch output behind an fsspec URL, read as bytes
    from its store, is checked exactly as a local file is.
    """
    raw = open_if_sealed(raw, "batch.transcript", where=source)  # a sealed batch output, or plain
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TranscriptFormatError(
            f"{source}: not UTF-8 text (byte {exc.start}). Save the file as UTF-8."
        ) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TranscriptFormatError(
            f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}). "
            "A dialogue text file must be given as such, not as a transcript JSON."
        ) from exc
    if not isinstance(data, dict) or "format" not in data:
        raise TranscriptFormatError(
            f'{source}: JSON without a "format" key, so not an ambient transcript file. '
            f'Expected {{"format": "{FORMAT_ID}", ...}} as written by '
            "`ambient transcribe --format json`."
        )
    return transcript_from_json(data, source)


def transcript_from_turns(
    turns: Sequence[tuple[str, str]],
    *,
    source_path: str,
    source_sha256: str,
    encounter_id: str,
    pipeline_version: str,
) -> Transcript:
    """Build a Transcript from the (role, text) turns of a dialogue that has no audio.

    One segment per turn, ids from 1, ``speaker`` = role (None when the role is empty). There is
    no audio, so the times are ESTIMATES: turns are laid end to end at ``SECONDS_PER_WORD`` per
    word (at least one word each), so that evidence spans still sort in speaking order. Nobody
    should read them as when anything was said. No word timings are invented.
    """
    segments: list[Segment] = []
    cursor_ms = 0  # whole milliseconds, so long dialogues do not accumulate float error
    for i, (role, text) in enumerate(turns, start=1):
        n_words = max(1, len(text.split()))
        start_ms = cursor_ms
        cursor_ms += round(n_words * SECONDS_PER_WORD * 1000)
        segments.append(
            Segment(
                id=i,
                start_s=start_ms / 1000,
                end_s=cursor_ms / 1000,
                text=text.strip(),
                speaker=role.strip() or None,
            )
        )
    header = TranscriptHeader(
        encounter_id=encounter_id,
        source_path=source_path,
        source_sha256=source_sha256,
        source_kind="dialogue-text",
        duration_s=cursor_ms / 1000,
        language="en",
        model=None,
        decoding=None,
        pipeline_version=pipeline_version,
    )
    return Transcript(header=header, segments=tuple(segments))


# --- Views for people ----------------------------------------------------------------------------


def speaker_label(speaker: str) -> str:
    """Display form of a role: "clinician" → "Clinician"; anything else keeps its spelling."""
    return speaker[:1].upper() + speaker[1:]


def format_timestamp(seconds: float, sep: str = ".") -> str:
    """``HH:MM:SS.mmm`` (``sep=","`` for SRT). Hours are not capped at 99 or wrapped, and
    milliseconds round half up on the decimal value (1.0005 s → 00:00:01.001, as a person
    reading the JSON would expect, not as binary floating point would have it)."""
    if not math.isfinite(seconds) or seconds <= 0:
        total_ms = 0
    else:
        total_ms = int(Decimal(repr(float(seconds))).scaleb(3).quantize(Decimal(1), ROUND_HALF_UP))
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{ms:03d}"


def to_vtt(t: Transcript) -> str:
    """WebVTT, with ``<v Clinician>`` voice tags where the speaker is known; segments with no
    text are left out (an empty cue only shows a blank caption)."""
    out = ["WEBVTT", ""]
    for s in t.segments:
        text = _one_line(s.text)
        if not text:
            continue
        body = _vtt_escape(text)
        if s.speaker:
            body = f"<v {_vtt_escape(speaker_label(s.speaker))}>{body}"
        out += [f"{format_timestamp(s.start_s)} --> {format_timestamp(s.end_s)}", body, ""]
    return "\n".join(out)


def to_srt(t: Transcript) -> str:
    """SubRip: cues numbered from 1, ``Clinician: `` before the text where the speaker is known;
    segments with no text are left out and do not use up a number."""
    out: list[str] = []
    index = 0
    for s in t.segments:
        text = _one_line(s.text)
        if not text:
            continue
        index += 1
        if s.speaker:
            text = f"{speaker_label(s.speaker)}: {text}"
        start, end = format_timestamp(s.start_s, ","), format_timestamp(s.end_s, ",")
        out += [str(index), f"{start} --> {end}", text, ""]
    return "\n".join(out)


def to_text(t: Transcript) -> str:
    """One line per segment; where speakers are known, consecutive segments of one speaker merge
    into a single turn ``Clinician: ...`` so the text reads like a dialogue. No speech → ""."""
    lines: list[str] = []
    turn_speaker: str | None = None
    turn_parts: list[str] = []

    def close_turn() -> None:
        if turn_parts:
            lines.append(f"{speaker_label(turn_speaker or '')}: {' '.join(turn_parts)}")
            turn_parts.clear()

    for s in t.segments:
        text = _one_line(s.text)
        if not text:
            continue
        if s.speaker and s.speaker == turn_speaker:
            turn_parts.append(text)
            continue
        close_turn()
        turn_speaker = s.speaker or None
        if turn_speaker:
            turn_parts.append(text)
        else:
            lines.append(text)
    close_turn()
    return "".join(line + "\n" for line in lines)


def render(t: Transcript, fmt: str) -> str:
    """The file content for ``ambient transcribe --format FMT``."""
    if fmt == "json":
        return json.dumps(transcript_to_json(t), indent=2, ensure_ascii=False) + "\n"
    if fmt == "vtt":
        return to_vtt(t)
    if fmt == "srt":
        return to_srt(t)
    if fmt == "text":
        return to_text(t)
    raise UsageError(f"unknown transcript format {fmt!r}; choose one of: {', '.join(FORMATS)}.")


def _one_line(text: str) -> str:
    # A blank line ends a cue in VTT and SRT; collapsing all whitespace keeps each cue whole.
    return " ".join(text.split())


def _vtt_escape(text: str) -> str:
    # "<" would open a tag and "-->" would look like a timing line.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- Validation ----------------------------------------------------------------------------------


_JSON_KINDS = (
    (bool, "a boolean"),
    ((int, float), "a number"),
    (str, "a string"),
    (list, "an array"),
    (dict, "an object"),
)


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    return next((name for kind, name in _JSON_KINDS if isinstance(value, kind)), "something else")


class _Reader:
    """Typed access to parsed JSON; every failure names ``source`` and the field path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, problem: str) -> NoReturn:
        where = f"{path}: " if path else ""
        raise TranscriptFormatError(f"{self.source}: {where}{problem}. {_HINT}")

    def expected(self, path: str, what: str, value: object) -> NoReturn:
        self.fail(path, f"expected {what}, got {_json_kind(value)}")

    def obj(self, value: object, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.expected(path or "top level", "an object", value)
        return value

    def array(self, value: object, path: str) -> list[Any]:
        if not isinstance(value, list):
            self.expected(path, "an array", value)
        return value

    def get(self, obj: dict[str, Any], key: str, path: str) -> Any:
        if key not in obj:
            self.fail(_join(path, key), "missing")
        return obj[key]

    def string(self, obj: dict[str, Any], key: str, path: str) -> str:
        value = self.get(obj, key, path)
        if not isinstance(value, str):
            self.expected(_join(path, key), "a string", value)
        return value

    def opt_string(self, obj: dict[str, Any], key: str, path: str) -> str | None:
        value = self.get(obj, key, path)
        if value is not None and not isinstance(value, str):
            self.expected(_join(path, key), "a string or null", value)
        return value

    def integer(self, obj: dict[str, Any], key: str, path: str) -> int:
        value = self.get(obj, key, path)
        if isinstance(value, bool) or not isinstance(value, int):
            self.expected(_join(path, key), "an integer", value)
        return value

    def boolean(self, obj: dict[str, Any], key: str, path: str) -> bool:
        value = self.get(obj, key, path)
        if not isinstance(value, bool):
            self.expected(_join(path, key), "true or false", value)
        return value

    def number(self, obj: dict[str, Any], key: str, path: str) -> float:
        value = self.get(obj, key, path)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.expected(_join(path, key), "a number", value)
        if not math.isfinite(value):
            self.fail(_join(path, key), f"expected a finite number, got {value}")
        return float(value)

    def time(self, obj: dict[str, Any], key: str, path: str) -> float:
        value = self.number(obj, key, path)
        if value < 0:
            self.fail(_join(path, key), f"expected a time in seconds >= 0, got {value}")
        return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# ModelRef and DecodingOptions are flat records read field by field from their own definitions,
# so a new field is written and read without touching this file if its annotation is listed here.
_FieldReader = Callable[[_Reader, dict[str, Any], str, str], Any]
_FIELD_READERS: dict[str, _FieldReader] = {
    "str": _Reader.string,
    "str | None": _Reader.opt_string,
    "int": _Reader.integer,
    "bool": _Reader.boolean,
    "float": _Reader.number,
}


def _record_from_json(r: _Reader, cls: type[_R], value: object, path: str) -> _R | None:
    if value is None:
        return None
    d = r.obj(value, path)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        reader = _FIELD_READERS.get(str(f.type))
        if reader is None:  # a programming error, caught by the test suite
            raise TypeError(f"serialise.py cannot read {cls.__name__}.{f.name}: {f.type}")
        kwargs[f.name] = reader(r, d, f.name, path)
    return cls(**kwargs)


def _segment_from_json(r: _Reader, value: object, path: str) -> Segment:
    s = r.obj(value, path)
    seg_id = r.integer(s, "id", path)
    start_s, end_s = r.time(s, "start_s", path), r.time(s, "end_s", path)
    text, speaker = r.string(s, "text", path), r.opt_string(s, "speaker", path)
    words: list[Word] = []
    for i, item in enumerate(r.array(r.get(s, "words", path), f"{path}.words")):
        wp = f"{path}.words[{i}]"
        w = r.obj(item, wp)
        words.append(
            Word(
                word=r.string(w, "word", wp),
                start_s=r.time(w, "start_s", wp),
                end_s=r.time(w, "end_s", wp),
                probability=r.number(w, "probability", wp),
            )
        )
    return Segment(seg_id, start_s, end_s, text, words=tuple(words), speaker=speaker)
