"""A small reader for Praat TextGrid files (interval tiers), as PriMock57 ships its transcripts.

Praat writes two text layouts — the long one (``xmin = 0``, ``text = "..."`` on their own lines)
and the short one (bare values, one per line) — in UTF-8, UTF-16 or Latin-1, with CRLF or LF.
Both layouts are the same sequence of values once the ``key =`` labels are ignored, so this
reader tokenises the file into numbers, quoted strings and flags and walks that sequence. Point
tiers (``TextTier``) carry no spans and are skipped. A well-kept package (``praat-textgrids``,
``tgt``) would do the same, but none is in our mirror and 80 lines are easier to audit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ambient.errors import InputError, TranscriptFormatError

# A quoted string ("" inside is a literal quote), a number, or a <flag>; labels like "xmin =" and
# "intervals [3]:" are skipped by the tokenizer because they match none of these.
_TOKEN = re.compile(
    r'"((?:[^"]|"")*)"'  # a quoted string
    r"|(?<![\w\[])(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w\]])"  # a number, not "[3]"
    r"|<(exists|absent)>"
)


@dataclass(frozen=True)
class Interval:
    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True)
class Tier:
    name: str
    intervals: tuple[Interval, ...]


def _decode(data: bytes, path: Path) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def parse_textgrid(text: str, *, source: str = "<TextGrid>") -> list[Tier]:
    """Interval tiers in file order; empty-text intervals are kept (they are pauses)."""
    if "ooTextFile" not in text[:200] or "TextGrid" not in text[:200]:
        raise TranscriptFormatError(
            f"{source} is not a Praat TextGrid (no 'ooTextFile'/'TextGrid' header); "
            "save it from Praat as a text file"
        )
    tokens: list[str | float] = []
    for match in _TOKEN.finditer(text):
        quoted, number, flag = match.groups()
        if quoted is not None:
            tokens.append(quoted.replace('""', '"'))
        elif number is not None:
            tokens.append(float(number))
        else:
            tokens.append(f"<{flag}>")
    try:
        return _walk(tokens)
    except (IndexError, TypeError, ValueError) as exc:
        raise TranscriptFormatError(
            f"{source}: malformed TextGrid ({exc}); re-save it from Praat as a text file"
        ) from None


def _walk(tokens: list[str | float]) -> list[Tier]:
    # header: "ooTextFile", "TextGrid", xmin, xmax, <exists>, size
    position = 2
    position += 2  # file xmin, xmax
    if tokens[position] != "<exists>":
        return []
    tier_count = int(_number(tokens[position + 1]))
    position += 2
    tiers: list[Tier] = []
    for _ in range(tier_count):
        kind, name = str(tokens[position]), str(tokens[position + 1])
        count = int(_number(tokens[position + 4]))
        position += 5
        if kind == "IntervalTier":
            intervals = []
            for _ in range(count):
                start, end, label = tokens[position : position + 3]
                intervals.append(Interval(_number(start), _number(end), str(label)))
                position += 3
            tiers.append(Tier(name, tuple(intervals)))
        else:  # TextTier: (time, mark) points
            position += 2 * count
    return tiers


def _number(token: str | float) -> float:
    if not isinstance(token, float):
        raise ValueError(f"expected a number, found {token!r}")
    return token


def read_textgrid(path: Path) -> list[Tier]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_textgrid(_decode(data, path), source=str(path))
