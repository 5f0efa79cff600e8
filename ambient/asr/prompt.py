"""The clinical vocabulary prompt that biases Whisper towards clinical words.

Whisper conditions on a text prompt; a short list of the terms a consultation is likely to contain
moves tiny.en from "paint in my cast" to "pain in my chest". The prompt is kept short (Whisper
keeps at most 223 prompt tokens, and a long list of rare words invites hallucinated drug names),
and its sha256 is recorded in every transcript header so its effect can be audited.
Whether it is on by default is decided by the numbers in docs/benchmarks.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

_BUILTIN = Path(__file__).with_name("clinical_vocabulary.txt")
# Roughly 120 Whisper tokens: room for the previous block's text in the same prompt.
_MAX_PROMPT_CHARS = 480


def builtin_vocabulary() -> list[str]:
    lines = _BUILTIN.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def build_prompt(template_terms: Iterable[str] = ()) -> str:
    """Template terms first (they are the most specific), then the built-in list, deduplicated."""
    seen: set[str] = set()
    terms: list[str] = []
    for term in [*template_terms, *builtin_vocabulary()]:
        key = term.strip().lower()
        if key and key not in seen:
            seen.add(key)
            terms.append(term.strip())
    prompt = "Clinical consultation between a doctor and a patient."
    for term in terms:
        candidate = f"{prompt} {term},"
        if len(candidate) > _MAX_PROMPT_CHARS:
            break
        prompt = candidate
    return prompt.rstrip(",") + "."


def prompt_sha256(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()
