"""Spoken numbers to digits ("twenty five milligrams" → "25 milligrams").

Doses and vitals arrive from speech as words as often as digits; findings, the faithfulness check
and the note all compare numbers, so they are normalised once, here, before any rule runs.
"""

from __future__ import annotations

import re

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1000}
_NUMBER_WORD = "|".join([*_UNITS, *_TENS, *_SCALES])
_RUN = re.compile(rf"\b(?:{_NUMBER_WORD})\b(?:[\s-]+(?:{_NUMBER_WORD}|and|point)\b)*\s*", re.IGNORECASE)
# "one" on its own is as often a pronoun ("the left one") as a number: converted only before a unit.
_LONE_ONE_OK = re.compile(r"^\s*(?:mg|milligrams?|tablets?|pills?|puffs?|times?|units?|percent|%)\b", re.I)


def _value(words: list[str]) -> str | None:
    total, current = 0, 0
    decimals: list[str] = []
    in_decimal = False
    seen = False
    for word in words:
        if word == "and":
            continue
        if word == "point":
            in_decimal = True
            continue
        if in_decimal:
            if word not in _UNITS or _UNITS[word] > 9:
                return None
            decimals.append(str(_UNITS[word]))
            continue
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            # "one forty over ninety": a digit then a tens word is how hundreds are spoken.
            current = current * 100 + _TENS[word] if 0 < current < 10 else current + _TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        elif word == "thousand":
            total += max(current, 1) * 1000
            current = 0
        seen = True
    if not seen:
        return None
    number = str(total + current)
    return f"{number}.{''.join(decimals)}" if decimals else number


def words_to_digits(text: str) -> str:
    """Replace runs of number words by digits; everything else is left exactly as it was."""

    def replace(match: re.Match[str]) -> str:
        raw = match.group(0)
        trailing = raw[len(raw.rstrip()) :]
        words = [w for w in re.split(r"[\s-]+", raw.strip().lower()) if w]
        while words and words[-1] in {"and", "point"}:
            words.pop()
        if not words or words == ["and"]:
            return raw
        if words == ["one"] and not _LONE_ONE_OK.match(text[match.end() :]):
            return raw
        value = _value(words)
        if value is None:
            return raw
        # Keep a dropped trailing "and" so "ten and twenty" stays readable.
        tail_words = raw.strip().split()[len(words) :]
        return value + (" " + " ".join(tail_words) if tail_words else "") + trailing

    return _RUN.sub(replace, text)
