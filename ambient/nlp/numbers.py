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
# "twenty sixth": a tens word and the ordinal of a digit make one ordinal ("26th"). "second" is
# left out: "a thirty second test" is a duration far more often than a date.
_ORDINALS = {
    "first": (1, "st"), "third": (3, "rd"), "fourth": (4, "th"), "fifth": (5, "th"),
    "sixth": (6, "th"), "seventh": (7, "th"), "eighth": (8, "th"), "ninth": (9, "th"),
}  # fmt: skip
_NUMBER_WORD = "|".join([*_UNITS, *_TENS, *_SCALES])
_RUN = re.compile(
    rf"\b(?:{_NUMBER_WORD})\b(?:[\s-]+(?:{_NUMBER_WORD}|and|point)\b)*"
    rf"(?:[\s-]+(?:{'|'.join(_ORDINALS)})\b)?\s*",
    re.IGNORECASE,
)
# "one" on its own is as often a pronoun ("the left one") as a number: converted only before a unit.
_LONE_ONE_OK = re.compile(r"^\s*(?:mg|milligrams?|tablets?|pills?|puffs?|times?|units?|percent|%)\b", re.I)
# "twenty nineteen" is a year after these words; alone it may be "twenty twenty" vision.
_YEAR_BEFORE = re.compile(
    r"\b(?:in|since|from|until|till|by|of|year|january|february|march|april|may|june|july|august"
    r"|september|october|november|december)\W*$",
    re.IGNORECASE,
)


def _kind(word: str) -> str:
    if word in _UNITS:
        return "unit" if _UNITS[word] < 10 else "teen"
    return "tens" if word in _TENS else word  # hundred, thousand, and, point


def _continues(group: list[str], word: str) -> bool:
    """Whether ``word`` can go on the number spoken in ``group``, as English number grammar allows.

    "twenty five" and "one hundred and five" are one number; "nineteen ninety five", "five five"
    and "ten and twenty" are two, and adding them up ("114", "10", "30") would put a number in
    the note that nobody said.
    """
    kinds = [_kind(w) for w in group]
    kind = _kind(word)
    if "point" in kinds:  # after "point" only single digits (zero included): "ninety eight point six"
        return kind == "unit"
    after_and = kinds[-1] == "and"
    last = kinds[-2] if after_and else kinds[-1]
    since_thousand = kinds[kinds.index("thousand") + 1 :] if "thousand" in kinds else kinds
    if kind == "and":
        return not after_and and last in ("hundred", "thousand")
    if kind == "point":
        return not after_and
    if kind == "unit":
        return last in ("tens", "hundred", "thousand") and not (last == "tens" and after_and)
    if kind == "teen":
        return last in ("hundred", "thousand")
    if kind == "tens":
        # "one forty over ninety": a lone digit then a tens word is how hundreds are spoken.
        return last in ("hundred", "thousand") or (kinds == ["unit"] and group[0] != "zero")
    if kind == "hundred":
        return not after_and and last in ("unit", "teen", "tens") and "hundred" not in since_thousand
    if kind == "thousand":
        return not after_and and "thousand" not in kinds
    return False


def _value(words: list[str]) -> str:
    """The digits of one grammatical number (see :func:`_continues`)."""
    total, current = 0, 0
    decimals: list[str] = []
    in_decimal = False
    for word in words:
        if word == "and":
            continue
        if word == "point":
            in_decimal = True
        elif in_decimal:
            decimals.append(str(_UNITS[word]))
        elif word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current = current * 100 + _TENS[word] if 0 < current < 10 else current + _TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        elif word == "thousand":
            total += max(current, 1) * 1000
            current = 0
    number = str(total + current)
    return f"{number}.{''.join(decimals)}" if decimals else number


def _groups(words: list[str]) -> list[list[str]]:
    """Split a run of number words into the numbers spoken; an "and" between two is its own group."""
    groups: list[list[str]] = []
    for word in words:
        if groups and groups[-1] != ["and"] and _continues(groups[-1], word):
            groups[-1].append(word)
        else:
            groups.append([word])
    out: list[list[str]] = []
    for group in groups:  # a number never ends in "and"/"point": give it back as a word
        tail: list[list[str]] = []
        while len(group) > 1 and group[-1] in ("and", "point"):
            tail.insert(0, [group.pop()])
        out += [group, *tail]
    return out


def _year(first: list[str], second: list[str], before: str) -> bool:
    """A year spoken in two halves: "nineteen ninety five", "in twenty nineteen".

    The second half is a two-digit number (a teen, or a tens word with or without a digit); the
    first is "eighteen" or "nineteen" (not "eleven thirty", a time of day), or "twenty" where a
    year is expected ("in", "since", a month): "twenty twenty" alone may be visual acuity.
    """
    if [_kind(w) for w in second] not in (["teen"], ["tens"], ["tens", "unit"]):
        return False
    if first in (["eighteen"], ["nineteen"]):
        return True
    return first == ["twenty"] and bool(_YEAR_BEFORE.search(before))


def words_to_digits(text: str) -> str:
    """Replace runs of number words by digits; everything else is left exactly as it was."""

    def replace(match: re.Match[str]) -> str:
        raw = match.group(0)
        trailing = raw[len(raw.rstrip()) :]
        spoken = [w for w in re.split(r"[\s-]+", raw.strip()) if w]
        ordinal = _ORDINALS.get(spoken[-1].lower())
        if ordinal:
            spoken = spoken[:-1]
        words = [w.lower() for w in spoken]
        if words == ["one"] and not ordinal and not _LONE_ONE_OK.match(text[match.end() :]):
            return raw
        groups = _groups(words)
        pieces: list[str] = []
        i = 0
        while i < len(groups):
            group = groups[i]
            if group in (["and"], ["point"]):
                pieces.append(spoken[sum(len(g) for g in groups[:i])])  # the word as it was written
            elif i + 1 < len(groups) and _year(group, groups[i + 1], text[: match.start()]):
                pieces.append(_value(group) + _value(groups[i + 1]).zfill(2))
                i += 1
            else:
                pieces.append(_value(group))
            i += 1
        if ordinal and [_kind(w) for w in groups[-1]] == ["tens"]:
            pieces[-1] = f"{int(pieces[-1]) + ordinal[0]}{ordinal[1]}"  # "twenty sixth" -> "26th"
        elif ordinal:
            pieces.append(raw.strip().split()[-1])
        return " ".join(pieces) + trailing

    return _RUN.sub(replace, text)
