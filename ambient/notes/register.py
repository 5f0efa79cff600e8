"""From spoken words to a clinician's register, without adding facts.

Transcript sentences are first person and full of talk ("um, so I've been, I've been feeling
dizzy"); a note says "He has been feeling dizzy." These rewrites change only fillers,
repetitions, pronouns and verb agreement — never a drug, number, side or negation — and the
faithfulness check verifies exactly that on every draft.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ambient.nlp.numbers import words_to_digits

_FILLERS = re.compile(
    r"\b(?:um+|uh+|uhm+|er+|ah|hmm+|mm-?hmm|mhm)\b\s*,?\s*|\blike,\s*|(?:^|,)\s*(?:you know|i mean)\b,?\s*"
    r"|\b(?:kinda|sorta)\s+|\byou know\s+(?=(?:your|you|the|i|it|we|that)\b)",
    re.IGNORECASE,
)
_LEADING = re.compile(
    r"^(?:[,.;-]\s*)*(?:(?:okay|ok|so|and|but|um|uh|yeah|yes|well|alright|all right|right|oh|now|"
    r"actually|honestly|basically)\s*[,.]?\s+)+",
    re.IGNORECASE,
)
# A word or short phrase said twice: "i , i just" / "i've been, i've been feeling".
_STUTTER = re.compile(r"\b((?:[\w']+\s+){0,3}[\w']+)\s*[,-]?\s+\1\b", re.IGNORECASE)
_BROKEN = re.compile(r"\b\w+-\s+(?=\w)")  # "we- we're" → "we're"
_SPACE_PUNCT = re.compile(r"\s+([,.;:?!%])")

# Verbs whose third-person singular is irregular or that must not take an "s".
_IRREGULAR_3SG = {"have": "has", "do": "does", "go": "goes", "am": "is", "'m": "is", "'ve": "has"}
_NO_AGREEMENT = frozenset({
    "was", "had", "did", "can", "could", "will", "would", "should", "might", "may", "must",
    "'ll", "'d", "wo", "ca", "need", "used", "got", "not", "cannot",
    # common irregular past tenses: no agreement needed
    "caught", "thought", "felt", "went", "took", "said", "came", "saw", "made", "knew", "told",
    "gave", "found", "left", "lost", "ran", "fell", "broke", "hurt", "put", "quit", "let", "began",
    "became", "kept", "slept", "ate", "drank", "woke", "paid", "bought", "brought", "sat", "stood",
    "heard", "meant", "spent", "sent", "held", "read", "set", "cut", "hit", "drove", "wrote",
    "forgot", "threw", "bit", "tore", "rode", "swam", "grew", "won", "understood",
})  # fmt: skip
_ADVERBS = frozenset({
    "just", "also", "really", "usually", "never", "always", "still", "only", "even", "actually",
    "definitely", "probably", "sometimes", "often", "already", "mostly", "generally", "normally",
})  # fmt: skip
_CONTRACTIONS = {
    "i'm": "i am", "i've": "i have", "i'll": "i will", "i'd": "i would", "don't": "do not",
    "doesn't": "does not", "didn't": "did not", "haven't": "have not", "can't": "cannot",
    "won't": "will not", "isn't": "is not", "wasn't": "was not", "you're": "you are",
    "you've": "you have", "you'll": "you will", "it's": "it is", "that's": "that is",
}  # fmt: skip


@dataclass(frozen=True)
class Pronouns:
    subject: str  # he | she | the patient
    object: str  # him | her | them
    possessive: str  # his | her | their
    reflexive: str


def pronouns_for(sex: str | None) -> Pronouns:
    if sex == "male":
        return Pronouns("he", "him", "his", "himself")
    if sex == "female":
        return Pronouns("she", "her", "her", "herself")
    return Pronouns("the patient", "them", "their", "themselves")


_SPOKEN_FORMS = (
    (re.compile(r"\bgon\s?na\b", re.I), "going to"),
    (re.compile(r"\bwan\s?na\b", re.I), "want to"),
    (re.compile(r"\bgot\s?ta\b", re.I), "have to"),
    (re.compile(r"\bkinda\b", re.I), "kind of"),
    (re.compile(r"\bmilligrams?\b", re.I), "mg"),
    (re.compile(r"\bmicrograms?\b", re.I), "mcg"),
    (re.compile(r"\bmilliliters?\b", re.I), "mL"),
)
_HEDGES = re.compile(r"\b(?:just|really|actually|basically|literally|honestly|kind of|sort of)\s+", re.I)
# Tag questions and discourse markers inside a sentence: ", okay?", ", right?", ", you know,", ", so,".
_TAGS = re.compile(
    r"[,;]?\s*\b(?:okay|ok|right|alright|all right|you know|i mean|you see|like)\s*[?,]\s*"
    r"|[,;]\s*(?:so|and so|now|then|well)\s*,\s*"
    r"|\s+okay\s*(?=[.?!]|$)",
    re.I,
)


def written(text: str) -> str:
    """Spoken forms to written ones: digits for numbers, "mg" for milligrams, "going to" for "gonna".

    Only the form changes: the number, unit and words keep their meaning, which the faithfulness
    check verifies against the transcript (it normalises numbers the same way).
    """
    text = words_to_digits(text)
    for pattern, replacement in _SPOKEN_FORMS:
        text = pattern.sub(replacement, text)
    text = _TAGS.sub(" ", text)
    return _HEDGES.sub("", text)


def tidy(text: str) -> str:
    """Fillers, stutters and leading discourse words out; written forms; punctuation and case fixed."""
    text = written(_BROKEN.sub("", text))
    text = _FILLERS.sub(" ", text)
    for _ in range(2):
        text = _STUTTER.sub(r"\1 ", text)
    text = _LEADING.sub("", text.strip())
    text = _SPACE_PUNCT.sub(r"\1", re.sub(r"\s+", " ", text)).strip(" ,;-")
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".?!" else text + "."


def _third_person_verb(word: str) -> str:
    lower = word.lower()
    if lower in _IRREGULAR_3SG:
        return _IRREGULAR_3SG[lower]
    if lower in _NO_AGREEMENT or lower.endswith("ed") or not lower.isalpha():
        return word
    if lower.endswith("s") and not lower.endswith("ss"):
        return word  # already agrees, or not a verb at all ("you reflexes" in a transcript)
    if re.search(r"(?:s|sh|ch|x|z|o)$", lower):
        return word + "es"
    if re.search(r"[^aeiou]y$", lower):
        return word[:-1] + "ies"
    return word + "s"


def _expand(text: str) -> str:
    text = re.sub(r"\b(it|that|he|she|there)'s been\b", r"\1 has been", text, flags=re.IGNORECASE)

    def repl(m: re.Match[str]) -> str:
        return _CONTRACTIONS.get(m.group(0).lower(), m.group(0))

    return re.sub(r"\b[a-z]+'[a-z]+\b", repl, text, flags=re.IGNORECASE)


def _shift(tokens: list[str], index: int, subject: str) -> None:
    """Make the verb after a new third-person ``subject`` at ``index`` agree with it."""
    if subject == "they":
        return
    j = index + 1
    while j < len(tokens) and tokens[j].lower() in _ADVERBS:
        j += 1
    if j >= len(tokens):
        return
    verb = tokens[j]
    if verb.lower() == "do" and j + 1 < len(tokens) and tokens[j + 1].lower() == "not":
        tokens[j] = "does"
    elif verb.lower() in {"am", "are"}:
        tokens[j] = "is"
    elif verb.lower() == "were":
        tokens[j] = "was"
    else:
        tokens[j] = _third_person_verb(verb)


def patient_voice(text: str, p: Pronouns) -> str:
    """A patient's first-person sentence as the note says it: "I've been dizzy" → "He has been dizzy"."""
    tokens = _expand(text).split(" ")
    out: list[str] = []
    for i, token in enumerate(tokens):
        bare = token.strip(",.;:?!").lower()
        tail = token[len(token.rstrip(",.;:?!")) :]
        if bare == "i":
            out.append(p.subject + tail)
            _shift(tokens, i, p.subject)
        elif bare == "me":
            out.append(p.object + tail)
        elif bare == "my":
            out.append(p.possessive + tail)
        elif bare == "myself":
            out.append(p.reflexive + tail)
        elif bare == "mine":
            out.append({"his": "his", "her": "hers"}.get(p.possessive, "theirs") + tail)
        else:
            out.append(token)
    return capitalise(" ".join(out))


_SUBJECT_CONTEXT = frozenset({"if", "that", "so", "and", "because", "when", "since", "as", "but", "until"})
_OBJECT_CONTEXT = frozenset({
    "let", "tell", "ask", "give", "call", "send", "want", "help", "make", "show", "for", "to", "with",
    "about", "on", "see", "get", "put", "keep", "have", "bring", "remind", "refer", "start", "prescribe",
})  # fmt: skip
_SUBJECT_VERBS = frozenset({
    "are", "were", "have", "had", "will", "can", "could", "should", "would", "need", "may", "might",
    "do", "did", "seem", "feel", "felt", "look", "mentioned", "said", "told", "take", "took", "get",
    "got", "want", "go", "went", "still", "also", "just", "know", "see", "saw", "notice", "noticed",
})  # fmt: skip


def clinician_voice(text: str, p: Pronouns) -> str:
    """A clinician's words to the patient as the note says them: "your lungs are clear" → "his lungs…".

    The clinician's own "I" stays: notes are written by the clinician.
    """
    tokens = _expand(text).split(" ")
    out: list[str] = []
    for i, token in enumerate(tokens):
        bare = token.strip(",.;:?!").lower()
        tail = token[len(token.rstrip(",.;:?!")) :]
        prev = tokens[i - 1].strip(",.;:?!").lower() if i else ""
        nxt = tokens[i + 1].strip(",.;:?!").lower() if i + 1 < len(tokens) else ""
        if bare == "you":
            subject = prev not in _OBJECT_CONTEXT and (
                i == 0 or prev in _SUBJECT_CONTEXT or nxt in _SUBJECT_VERBS
            )
            out.append((p.subject if subject else p.object) + tail)
            if subject:
                _shift(tokens, i, p.subject)
        elif bare == "your":
            out.append(p.possessive + tail)
        elif bare == "yourself":
            out.append(p.reflexive + tail)
        elif bare == "i":
            out.append("I" + tail)
        else:
            out.append(token)
    return capitalise(" ".join(out))


def capitalise(text: str) -> str:
    return text[0].upper() + text[1:] if text else text
