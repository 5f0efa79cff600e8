"""Clinical drafter: findings and transcript evidence → a note in a clinician's register.

``ambient.clinical.v1`` reads the transcript the way a scribe does. Sentences are split across
segments (``drafter.split_sentences``) and run through the clinical NLP pipeline once. Each
sentence then gets a role from who said it, what it holds and where in the visit it falls: the
clinician's dictated summary, the patient's history, a question answered yes or no (review of
systems), the examination, results, and the assessment and plan per problem. Sentences are
rewritten into the note's voice (third person, no fillers) by ``ambient.notes.register``, which
never changes a drug, a number, a side or a negation. Each note sentence keeps the transcript
spans it came from. The template's sections say which kinds of content they hold, so SOAP, H&P,
progress note and patient instructions all come from the same reading.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from ambient.nlp.findings import ClinicalNLP, Finding, icd10_suggestion
from ambient.notes import section_routing
from ambient.notes.drafter import NO_SPEECH_NOTICE, TranscriptSentence, assemble_note, split_sentences
from ambient.notes.register import (
    Pronouns,
    capitalise,
    clinician_voice,
    patient_voice,
    pronouns_for,
    tidy,
)
from ambient.notes.templates import Template
from ambient.types import EvidenceSpan, NoteDraft, NoteSection, NoteSentence, Transcript

DRAFTER_ID = "ambient.clinical.v1"

# Roles of a transcript sentence in the note.
HPI, ROS, EXAM, RESULTS, PLAN, DICTATION, SKIP = "hpi", "ros", "exam", "results", "plan", "dictation", "skip"

_WORD = re.compile(r"[a-z0-9']+")
_SMALL_TALK = frozenset({
    "ok", "okay", "yeah", "yes", "yep", "no", "nope", "so", "um", "uh", "mm", "hmm", "mhm", "right",
    "alright", "well", "and", "but", "great", "thanks", "thank", "you", "hi", "hello", "good", "sure",
    "morning", "afternoon", "bye", "oh", "ah", "i", "see", "fine", "perfect", "got", "it", "that's",
    "all", "the", "a", "is", "to", "of", "hey", "sounds", "cool", "wow", "gotcha", "awesome",
})  # fmt: skip
_MIN_CONTENT_WORDS = 3
_NO = re.compile(r"^\W*(?:no|nope|nah|none|not really|never|nothing|not at all|negative)\b", re.I)
_YES = re.compile(r"^\W*(?:yes|yeah|yep|yup|uh-huh|mm-hmm|i do|i have|correct|definitely|sometimes)\b", re.I)
# Commands to a dictation system ("hey dragon, show me the vitals") are not clinical content.
# The rest of a command can be a real order ("hey dragon, order a refill of fosamax"); navigation
# ("show me the x-ray", "finalize the note") is not.
_VOICE_COMMAND = re.compile(r"^\W*(?:hey|okay|ok)\W+(?:dragon|dax|computer|ambient)\b\W*", re.I)
_NAVIGATION = re.compile(r"^\W*(?:show me|finalize|open|go to|pull up|bring up|start|stop|end)\b", re.I)
_QUESTION = re.compile(
    r"^\W*(?:(?:and|so|now|okay|all right|alright)\W+)*(?:have|has|do|does|did|are|is|was|were|can|could|"
    r"would|will|any|what|when|where|how|why|who|which|tell me)\b|\bany (?:issues|problems|questions)\b",
    re.I,
)
_TRANSITION = re.compile(
    r"\b(?:let's|let me|lets|i want to|we'll|we will)\s+(?:\w+\s+){0,4}?(?:talk|go over|talk about|review|"
    r"discuss|do)\b.{0,40}\b(?:assessment|plan|results|exam|examination)\b",
    re.I,
)
# An examination finding stated outright, even before the clinician announces the exam.
_EXAM_STATEMENT = re.compile(
    r"\b(?:lungs? (?:are|is|sound)|heart (?:is|sounds)|no (?:murmurs?|edema|tenderness|rash)|"
    r"tender(?:ness)? (?:to|on|over)|range of motion is|reflexes are|abdomen is|on exam(?:ination)?)\b",
    re.I,
)
_RESULT_VERBS = re.compile(r"\b(?:showed|shows|came back|revealed)\b", re.I)
_FIRST_PERSON = re.compile(r"\b(?:i|i'm|i've|i'd|i'll|my|me|we|our|us)\b", re.I)
_PATIENT_MIN_WORDS = 8
_DICTATION = re.compile(r"\b\d{1,3}[- ]year[- ]old\b|\bpresents?\b.*\b(?:with|for)\b", re.I)
_PRESENTS = re.compile(
    r"\bpresents?(?: today| here)?(?: to the clinic| to clinic)? (?:with|for) (?P<cc>[^,.;]+)", re.I
)
_SEX = re.compile(r"\b(?P<sex>male|female|man|woman|gentleman|lady|boy|girl|guy)\b", re.I)
_EXAM_START = re.compile(
    r"\b(?:physical exam(?:ination)?|on exam(?:ination)?|examine you|your exam|listen to your|take a look at|"
    r"vital signs|on my exam|exam today)\b",
    re.I,
)
_EXAM_CUES = re.compile(
    r"\b(?:lungs?|heart|murmur|tender(?:ness)?|palpation|swelling|edema|range of motion|reflexes|abdomen|"
    r"pulses?|clear|rhonchi|wheez\w*|crackles|rales|bruising|erythema|strength|sensation|"
    r"ecchymosis|effusion|neck|throat|ears?|incision|wound|skin|gait|\d/5|\d out of 5)\b",
    re.I,
)
_RESULTS_CUES = re.compile(
    r"\b(?:results?|x-?rays?|showed|shows|show|came back|revealed|reveals|demonstrated|labs?|lab work|"
    r"a1c|ekg|ecg|echo(?:cardiogram)?|mri|ct|ultrasound|blood work|levels?|reviewed|looked at your)\b",
    re.I,
)
_PLAN_START = re.compile(
    r"\b(?:assessment and plan|my assessment|my plan|my impression|(?:first|second|third|next|last) "
    r"problem|for your \w+|(?:from|in terms of) (?:an? |your )?[\w ]{3,30}? standpoint|let's talk about)\b",
    re.I,
)
_ORDER_CUES = re.compile(
    r"\b(?:i'll|i will|i'm going to|i am going to|we'll|we will|we're going to|let's|i want you to|"
    r"i'd like (?:you )?to|i would like (?:you )?to|continue|prescribe|order|refer|referral|follow[- ]up|"
    r"come back|recommend|start you|schedule|refill|increase|decrease|stop taking|go ahead and)\b",
    re.I,
)
_ASSESSMENT_CUES = re.compile(
    r"\b(?:diagnos\w+|likely|unlikely|consistent with|i think (?:this|it|you|that)|i believe|i suspect|"
    r"could be|might be|may be|sounds like|looks like (?:it|this|you)|probably|impression|suggestive of)\b",
    re.I,
)
# Instructions start with the verb: "Take aspirin once a day." "Follow up in one week."
_IMPERATIVE = re.compile(
    r"^\W*(?:please\s+)?(?:take|go|follow|call|come|keep|avoid|stop|start|continue|use|apply|return|"
    r"drink|rest|ice|elevate|schedule|make sure|try)\b",
    re.I,
)


def _leaves_exam(text: str, found: Sequence[Finding]) -> bool:
    """An impression, an order or an instruction ends the examination part of the visit."""
    if _ASSESSMENT_CUES.search(text) or _IMPERATIVE.search(text):
        return True
    return bool(_ORDER_CUES.search(text)) and any(f.category in {"ORDER", "MEDICATION"} for f in found)


def _plan_like(text: str) -> bool:
    return bool(_ORDER_CUES.search(text) or _ASSESSMENT_CUES.search(text) or _IMPERATIVE.search(text))


@dataclass(frozen=True)
class Read:
    """One transcript sentence with its findings and its role in the note."""

    sentence: TranscriptSentence
    findings: tuple[Finding, ...]
    role: str
    text: str  # tidied, still in the speaker's voice


@dataclass
class Reading:
    """The whole visit as the drafter understood it: the input to every section renderer."""

    reads: list[Read]
    pronouns: Pronouns
    ros: list[NoteSentence] = field(default_factory=list)  # from questions answered yes or no
    chief_complaint: NoteSentence | None = None


def _content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _SMALL_TALK]


def _join(*groups: tuple[EvidenceSpan, ...]) -> tuple[EvidenceSpan, ...]:
    seen: dict[tuple[int, float], EvidenceSpan] = {}
    for group in groups:
        for span in group:
            seen.setdefault((span.segment_id, span.start_s), span)
    return tuple(sorted(seen.values(), key=lambda s: (s.start_s, s.segment_id)))


@lru_cache(maxsize=1)
def clinical_nlp() -> ClinicalNLP:
    """One pipeline per process: building it (vocabularies, matchers) costs seconds, using it ms."""
    return ClinicalNLP()


_TITLE = re.compile(r"\b(?:(?P<m>mr|mister|sir)|(?P<f>mrs|ms|miss|ma'am|madam))\b\.?", re.I)
_HE = re.compile(r"\b(?:he|him|his|himself)\b", re.I)
_SHE = re.compile(r"\b(?:she|her|hers|herself)\b", re.I)
_MALE_WORDS = frozenset({"male", "man", "gentleman", "boy", "guy"})


def _sex(sentences: Sequence[TranscriptSentence]) -> str | None:
    """The patient's sex as the clinician states it, else None (the note then says "the patient").

    In order: "a 59-year-old male" or "this gentleman"; a title ("Mr. Smith"); the pronouns the
    clinician uses when speaking *about* the patient (dictation, not "you") — by a clear majority.
    """
    clinician = [s.text for s in sentences if s.speaker != "patient"]
    for text in clinician:
        if _DICTATION.search(text) or re.search(
            r"\b(?:this|a|the)\s+(?:gentleman|lady|woman|man)\b", text, re.I
        ):
            match = _SEX.search(text)
            if match:
                return "male" if match.group("sex").lower() in _MALE_WORDS else "female"
    titles = [m for text in clinician for m in _TITLE.finditer(text)]
    if titles:
        male = sum(1 for m in titles if m.group("m"))
        return "male" if male * 2 > len(titles) else "female" if male * 2 < len(titles) else None
    narrative = [t for t in clinician if not re.search(r"\b(?:you|your)\b", t, re.I)]
    he = sum(len(_HE.findall(t)) for t in narrative)
    she = sum(len(_SHE.findall(t)) for t in narrative)
    if he >= 2 and he >= 3 * she:
        return "male"
    if she >= 2 and she >= 3 * he:
        return "female"
    return None


def _roles(sentences: Sequence[TranscriptSentence], findings: Sequence[list[Finding]]) -> list[str]:
    """A role per sentence: clinician talk follows the visit's phases (history, exam, results, plan)."""
    roles: list[str] = []
    phase = HPI
    for sentence, found in zip(sentences, findings, strict=True):
        text = _VOICE_COMMAND.sub("", sentence.text.strip())
        if _NAVIGATION.search(text) or len(_content_words(text)) < _MIN_CONTENT_WORDS - 1:
            roles.append(SKIP)
            continue
        if sentence.speaker != "clinician":
            informative = (
                bool(found)
                or (_FIRST_PERSON.search(text) and len(_content_words(text)) >= _MIN_CONTENT_WORDS)
                or len(text.split()) >= _PATIENT_MIN_WORDS
            )
            roles.append(HPI if informative and not text.endswith("?") else SKIP)
            continue
        if text.endswith("?") or (_QUESTION.search(text) and not _DICTATION.search(text)):
            roles.append(SKIP)  # questions are used with their answers, below
            continue
        if _TRANSITION.search(text):
            if re.search(r"\b(?:assessment|plan)\b", text, re.I):
                phase = PLAN
            elif re.search(r"\bexam", text, re.I):
                phase = EXAM
            else:
                phase = RESULTS
            roles.append(SKIP)
            continue
        if _DICTATION.search(text) and phase == HPI:
            roles.append(DICTATION)
            continue
        if _PLAN_START.search(text) or (phase in (EXAM, RESULTS) and _leaves_exam(text, found)):
            phase = PLAN
        elif _EXAM_START.search(text) and phase in (HPI, EXAM):
            phase = EXAM
        elif (
            _RESULTS_CUES.search(text)
            and phase in (HPI, EXAM, RESULTS)
            and not _plan_like(text)
            and (phase != HPI or _RESULT_VERBS.search(text))
        ):
            phase = RESULTS
        if phase == HPI and (_EXAM_STATEMENT.search(text) or any(f.category == "VITAL" for f in found)):
            roles.append(EXAM)
        elif phase == HPI:
            clinical = any(f.category != "ORDER" for f in found)
            plan = _plan_like(text) and (clinical or _IMPERATIVE.search(text))
            roles.append(PLAN if plan else (HPI if clinical else SKIP))
        elif phase == EXAM:
            roles.append(EXAM)
        elif phase == RESULTS:
            roles.append(RESULTS)
        else:
            roles.append(PLAN)
    return roles


def _answers(
    reading_sentences: Sequence[TranscriptSentence], findings: Sequence[list[Finding]], p: Pronouns
) -> list[NoteSentence]:
    """Review of systems from a clinician's question and the patient's yes or no."""
    out: list[NoteSentence] = []
    for i, question in enumerate(reading_sentences[:-1]):
        if question.speaker != "clinician" or not question.text.strip().endswith("?"):
            continue
        answer = reading_sentences[i + 1]
        if answer.speaker != "patient":
            continue
        symptoms = [f for f in findings[i] if f.category == "SYMPTOM" and not f.family]
        if not symptoms:
            continue
        names = _series([f.name for f in dict.fromkeys(symptoms)])
        short = len(_content_words(answer.text)) <= 3
        if _NO.search(answer.text) and short:
            text = f"{capitalise(p.subject)} denies {names}."
        elif _YES.search(answer.text) and short:
            text = f"{capitalise(p.subject)} endorses {names}."
        else:
            continue
        out.append(NoteSentence(text, _join(question.evidence, answer.evidence), "patient"))
    return out


def _series(names: Sequence[str]) -> str:
    names = list(dict.fromkeys(names))
    if len(names) <= 2:
        return " or ".join(names)
    return ", ".join(names[:-1]) + ", or " + names[-1]


_CLINICIAN_TALK = re.compile(r"\b(?:your|you're|you've|you'll|let me|let's|i'll|i will|i'm going to)\b", re.I)


def guess_speaker(text: str) -> str:
    """Who most likely said a sentence when the transcript does not know (no diarisation).

    Questions, talk about "your" body, examination findings and plans are the clinician's; the
    rest — first-person history — the patient's. Crude, and only used when speakers are unknown.
    """
    if text.rstrip().endswith("?") or _QUESTION.search(text):
        return "clinician"
    if _CLINICIAN_TALK.search(text) or _EXAM_STATEMENT.search(text) or _DICTATION.search(text):
        return "clinician"
    if _IMPERATIVE.search(text) or (_plan_like(text) and not _FIRST_PERSON.search(text)):
        return "clinician"
    return "patient"


_CLINICIAN_LABELS = frozenset({"clinician", "doctor", "physician", "provider", "nurse", "dr", "d"})
_PATIENT_LABELS = frozenset({"patient", "pt", "p"})


def role_of(speaker: str | None, text: str) -> str:
    """``clinician`` or ``patient``: the label when it names a role, else a guess from the words."""
    label = (speaker or "").strip().lower()
    if label in _CLINICIAN_LABELS:
        return "clinician"
    if label in _PATIENT_LABELS:
        return "patient"
    return guess_speaker(text)  # unknown, or a diariser's "SPEAKER_01"


def read_visit(transcript: Transcript) -> Reading:
    sentences = [
        TranscriptSentence(s.text, role_of(s.speaker, s.text), s.evidence)
        for s in split_sentences(transcript)
    ]
    nlp = clinical_nlp()
    findings = nlp.analyse([s.text for s in sentences])
    pronouns = pronouns_for(_sex(sentences))
    roles = _roles(sentences, findings)
    if section_routing.enabled():
        speakers = [s.speaker for s in sentences]
        roles = section_routing.route_unplaced([s.text for s in sentences], speakers, roles, SKIP)
    reads = [
        Read(s, tuple(f), role, tidy(_VOICE_COMMAND.sub("", s.text)))
        for s, f, role in zip(sentences, findings, roles, strict=True)
    ]
    reading = Reading(reads=reads, pronouns=pronouns, ros=_answers(sentences, findings, pronouns))
    reading.chief_complaint = _chief_complaint(reads)
    return reading


def _chief_complaint(reads: Sequence[Read]) -> NoteSentence | None:
    for r in reads:
        if r.role == DICTATION:
            match = _PRESENTS.search(r.sentence.text)
            if match:
                cc = re.sub(r"^(?:an?|the|his|her|their)\s+", "", match.group("cc").strip(), flags=re.I)
                cc = re.split(r"\s+(?:and|who|which|that)\s+", cc)[0]
                if cc:
                    return NoteSentence(cc[0].upper() + cc[1:] + ".", r.sentence.evidence, r.sentence.speaker)
    for r in reads:
        if r.role == HPI and r.sentence.speaker == "patient":
            for f in r.findings:
                if f.category in {"SYMPTOM", "PROBLEM"} and f.asserted:
                    name = f.name[0].upper() + f.name[1:]
                    return NoteSentence(f"{name}.", r.sentence.evidence, "patient")
    return None


# -- section renderers -----------------------------------------------------------------------


def _voice(r: Read, p: Pronouns) -> str:
    if r.sentence.speaker == "patient":
        return patient_voice(r.text, p)
    text = re.sub(
        r"^(?:i know|i see that|i see|i understand|i noticed that|i noticed)\s+", "", r.text, flags=re.I
    )
    text = re.sub(r"^(?:(?:then|and then|so|and)\s+)?(?:in \w-?,?\s+)?", "", text, flags=re.I)
    return clinician_voice(text[:1].upper() + text[1:], p)


def _sentence(r: Read, p: Pronouns) -> NoteSentence:
    return NoteSentence(_voice(r, p), r.sentence.evidence, r.sentence.speaker)


def _has(r: Read, *categories: str, asserted: bool | None = None) -> bool:
    return any(f.category in categories and (asserted is None or f.asserted == asserted) for f in r.findings)


_HISTORY_DETAIL = re.compile(
    r"\b(?:\d+|days?|weeks?|months?|years?|yesterday|ago|since|started|began|worse|better|worst|severe|"
    r"mild|sharp|dull|constant|morning|night|swollen|swelling|hurts?|ache|aching|sore|numb|medications?|"
    r"medicine|pills?|doctor|hospital|surgery|tried|taking|took|knee|back|shoulder|chest|head|leg|arm|"
    r"hand|foot|feet|hip|neck|stomach|ankle|wrist|elbow|eye|ear|throat|skin|blood|sugar|pressure|"
    r"weight|sleep|eating|diet|exercise|walk(?:ing)?|work(?:ing)?|fell|fall|injur\w*)\b",
    re.I,
)
_MIN_HISTORY_DETAILS = 1


def _informative(r: Read) -> bool:
    """History worth a clinician's reading time: a finding, or details (time course, body part)."""
    if any(f.category != "SOCIAL" for f in r.findings):
        return True
    return len(_HISTORY_DETAIL.findall(r.text)) >= _MIN_HISTORY_DETAILS


def _detail_score(r: Read) -> float:
    """How much a history sentence tells per word: findings and details, not talk."""
    findings = sum(1 for f in r.findings if f.category != "SOCIAL")
    details = len(_HISTORY_DETAIL.findall(r.text))
    return float((2 * findings + details) / max(len(r.text.split()), 4) ** 0.5)


def render_hpi(reading: Reading, budget: int | None = None) -> list[NoteSentence]:
    """The dictated summary and the patient's history, densest first when there is too much.

    ``budget`` is the template's ``max_words`` for ``hpi``; None keeps every informative sentence.
    """
    picked: list[Read] = []
    for r in reading.reads:
        hpi = r.role == HPI and len(_content_words(r.text)) >= _MIN_CONTENT_WORDS + 1 and _informative(r)
        if r.role == DICTATION or hpi:
            picked.append(r)
    keep = _within_budget(picked, budget, must=lambda r: r.role == DICTATION)
    return [_sentence(r, reading.pronouns) for r in picked if id(r) in keep]


def _within_budget(reads: Sequence[Read], budget: int | None, must: Callable[[Read], bool]) -> set[int]:
    """Ids of the reads to keep: those that must stay, then the densest until the word budget is spent.

    A note a clinician reads in a minute beats a transcript: when the visit said more than the
    section should hold, the sentences with the most findings and details per word win. Budgets
    come from the template (``max_words``); sentences the note cannot drop (the dictated summary,
    orders) are kept regardless.
    """
    if budget is None:
        return {id(r) for r in reads}
    keep: set[int] = set()
    for r in sorted(reads, key=lambda r: (not must(r), -_detail_score(r))):
        words = len(r.text.split())
        if words <= budget or must(r):
            keep.add(id(r))
            budget -= words
    return keep


def render_ros(reading: Reading) -> list[NoteSentence]:
    """Symptoms by system: what the patient endorsed or denied, each with its evidence."""
    by_system: dict[str, list[tuple[str, bool, tuple[EvidenceSpan, ...]]]] = {}
    for r in reading.reads:
        if r.role not in (HPI, SKIP) or r.sentence.speaker != "patient":
            continue
        for f in r.findings:
            if f.category == "SYMPTOM" and f.system and not (f.family or f.hypothetical):
                by_system.setdefault(f.system, []).append((f.name, not f.negated, r.sentence.evidence))
    out: list[NoteSentence] = []
    for system, items in by_system.items():
        endorsed = list(dict.fromkeys(n for n, yes, _ in items if yes))
        denied = [n for n in dict.fromkeys(n for n, yes, _ in items if not yes) if n not in endorsed]
        parts = []
        if endorsed:
            parts.append(f"Endorses {_series(endorsed).replace(' or ', ' and ')}.")
        if denied:
            parts.append(f"Denies {_series(denied)}.")
        evidence = _join(*(e for _, _, e in items))
        out.append(NoteSentence(f"{system}: {' '.join(parts)}", evidence, "patient"))
    return out + reading.ros


def render_medications(reading: Reading) -> list[NoteSentence]:
    """What the patient takes, with dose, route and frequency.

    A drug the visit names as an allergy is left out: "Any other allergies?" "Nope, just
    penicillin." finds penicillin as a medication in the answer, and an allergen in the
    medication list reads as a drug the patient takes.
    """
    allergens = {f.name.lower() for r in reading.reads for f in r.findings if f.category == "ALLERGY"}
    seen: dict[str, NoteSentence] = {}
    for r in reading.reads:
        if r.role == PLAN:
            continue  # what the clinician prescribes today belongs to the plan, not the med list
        for f in r.findings:
            if f.category != "MEDICATION" or f.negated or f.hypothetical or f.family:
                continue
            if f.name.lower() in allergens:
                continue
            details = " ".join(v for k, v in f.attributes if k in ("dose", "route", "frequency"))
            text = f"{f.name} {details}".strip() + "."
            if f.name not in seen or len(text) > len(seen[f.name].text):
                seen[f.name] = NoteSentence(text, r.sentence.evidence, r.sentence.speaker)
    return list(seen.values())


def render_allergies(reading: Reading, labelled: bool = False) -> list[NoteSentence]:
    """One line per allergy, with its reaction when the same sentence names it.

    ``labelled``: the section holds other content too (SOAP's Subjective, a cardiology note's
    "Medications and allergies"), so each line says it is an allergy. A bare "Penicillins." next
    to "Aspirin 81 mg once a day." reads as a drug the patient takes: the one misreading an
    allergy line must never allow.
    """
    out: list[NoteSentence] = []
    for r in reading.reads:
        for f in r.findings:
            if f.category != "ALLERGY":
                continue
            if f.negated:
                out.append(NoteSentence("No known drug allergies.", r.sentence.evidence, r.sentence.speaker))
            else:
                reaction = f.attribute("reaction")
                name = f"{f.name[0].upper()}{f.name[1:]}"
                text = (f"Allergy: {name}" if labelled else name) + (f" ({reaction})." if reaction else ".")
                out.append(NoteSentence(text, r.sentence.evidence, r.sentence.speaker))
    return list({s.text: s for s in out}.values())


def _history(reading: Reading, *, family: bool) -> list[NoteSentence]:
    out: list[NoteSentence] = []
    for r in reading.reads:
        if r.role == SKIP and r.sentence.speaker != "patient":
            continue
        hits = [f for f in r.findings if f.category in {"PROBLEM", "PROCEDURE"} and f.family == family]
        if not family:
            hits = [f for f in hits if f.historical and not f.negated]
        if hits:
            out.append(_sentence(r, reading.pronouns))
    return out


def render_social(reading: Reading) -> list[NoteSentence]:
    return [
        _sentence(r, reading.pronouns)
        for r in reading.reads
        if r.sentence.speaker == "patient" and _has(r, "SOCIAL") and r.role != SKIP
    ]


def render_vitals(reading: Reading) -> list[NoteSentence]:
    seen: dict[str, NoteSentence] = {}
    for r in reading.reads:
        for f in r.findings:
            if f.category == "VITAL" and f.name not in seen:
                unit = f.attribute("unit") or ""
                seen[f.name] = NoteSentence(
                    f"{f.name} {f.attribute('value')} {unit}".strip() + ".",
                    r.sentence.evidence,
                    r.sentence.speaker,
                )
    return list(seen.values())


# Vital names that hold an exam cue's word ("heart" in "heart rate"): taken out before looking for one.
_VITAL_NAMES = re.compile(
    r"\b(?:heart rate|pulse rate|blood pressure|respiratory rate|oxygen saturation)\b", re.I
)


def _only_vitals(r: Read) -> bool:
    """The sentence's findings are all vitals and it names no exam finding besides them.

    "Your temperature is 38.5 and your lungs are clear" finds only the temperature (a clear lung
    is no finding), but its exam cue keeps it; "Your heart rate is 88" has none once the vital's
    own name is set aside.
    """
    if not r.findings or any(f.category != "VITAL" for f in r.findings):
        return False
    return not _EXAM_CUES.search(_VITAL_NAMES.sub(" ", r.text))


def _by_role(reading: Reading, role: str, vitals_listed: bool = False) -> list[NoteSentence]:
    """The clinician's sentences of one role, in the clinician's register.

    ``vitals_listed``: the section lists the vitals already ("Blood pressure 150/90 mmHg."), so an
    exam sentence that says nothing but vitals ("Your blood pressure is 150 over 90.") would say
    it twice; one that also reports a finding stays.
    """
    out: list[NoteSentence] = []
    for r in reading.reads:
        if r.role != role:
            continue
        if role == EXAM and not (_EXAM_CUES.search(r.text) or r.findings):
            continue  # "I'm just going to listen to your heart" says what will happen, not what was found
        if vitals_listed and _only_vitals(r):
            continue
        out.append(_sentence(r, reading.pronouns))
    return out


def render_assessment_plan(reading: Reading, budget: int | None = None) -> list[NoteSentence]:
    """Plan sentences grouped under the problem they address, the problem named first."""
    out: list[NoteSentence] = []
    current: str | None = None
    candidates = [
        r for r in reading.reads if r.role == PLAN and (r.findings or _HISTORY_DETAIL.search(r.text))
    ]  # "let me know if you need anything": courtesy, not plan
    keep = _within_budget(candidates, budget, must=lambda r: any(f.category == "ORDER" for f in r.findings))
    for r in candidates:
        if id(r) not in keep:
            continue
        problems = [f for f in r.findings if f.category in {"PROBLEM", "SYMPTOM"} and f.asserted]
        if problems and problems[0].name != current:
            current = problems[0].name
            # "It could be angina" heads its plan "Possible angina.", not "Angina.": the heading
            # must not state as a diagnosis what the clinician only suspected (ConText: uncertain).
            named = f"{current[0].upper()}{current[1:]}."
            heading = f"Possible {current}." if problems[0].uncertain else named
            out.append(NoteSentence(heading, r.sentence.evidence, r.sentence.speaker))
        out.append(_sentence(r, reading.pronouns))
    return out


def _is_assessment(text: str) -> bool:
    """A problem heading ("Angina.") or a diagnostic statement, not an order or instruction."""
    heading = len(text.split()) <= 5 and not _ORDER_CUES.search(text) and not _IMPERATIVE.search(text)
    return heading or bool(_ASSESSMENT_CUES.search(text) and not _ORDER_CUES.search(text))


def render_icd10(reading: Reading) -> list[NoteSentence]:
    """ICD-10-CM suggestions for problems the clinician assessed, for the clinician to confirm."""
    out: dict[str, NoteSentence] = {}
    for r in reading.reads:
        if r.role not in (PLAN, DICTATION):
            continue
        for f in r.findings:
            if not f.asserted or f.uncertain:
                continue
            suggestion = icd10_suggestion(f)
            if suggestion and suggestion[0] not in out:
                code, title = suggestion
                text = f'{code} – {title} (suggested for "{f.name}").'
                out[code] = NoteSentence(text, r.sentence.evidence, r.sentence.speaker)
    return list(out.values())


def render_instructions(reading: Reading) -> list[NoteSentence]:
    """Plain-language instructions: the clinician's plan in their own words to the patient."""
    return [
        NoteSentence(r.text, r.sentence.evidence, r.sentence.speaker)
        for r in reading.reads
        if r.role == PLAN and re.search(r"\b(?:you|your)\b", r.text, re.I)
    ]


def _render(
    kind: str, reading: Reading, budget: int | None = None, section: tuple[str, ...] = ()
) -> list[NoteSentence]:
    """The sentences of one content kind; ``section``: every kind its section holds."""
    shared = len(section) > 1
    if kind == "chief_complaint":
        return [reading.chief_complaint] if reading.chief_complaint else []
    if kind == "hpi":
        return render_hpi(reading, budget)
    if kind == "ros":
        return render_ros(reading)
    if kind == "medications":
        return render_medications(reading)
    if kind == "allergies":
        return render_allergies(reading, labelled=shared)
    if kind == "history":
        return _history(reading, family=False)
    if kind == "family_history":
        return _history(reading, family=True)
    if kind == "social_history":
        return render_social(reading)
    if kind == "vitals":
        return render_vitals(reading)
    if kind == "exam":
        return _by_role(reading, EXAM, vitals_listed="vitals" in section)
    if kind == "results":
        return _by_role(reading, RESULTS)
    if kind == "assessment_plan":
        return render_assessment_plan(reading, budget)
    if kind == "plan":
        return [s for s in render_assessment_plan(reading, budget) if not _is_assessment(s.text)]
    if kind == "assessment":
        return [s for s in render_assessment_plan(reading, budget) if _is_assessment(s.text)]
    if kind == "icd10":
        return render_icd10(reading)
    if kind == "instructions":
        return render_instructions(reading)
    raise ValueError(f"unknown content kind {kind!r}")


def draft_clinical_note(
    transcript: Transcript,
    template: Template,
    transcript_sha256: str,
    created_at: datetime | None = None,
) -> NoteDraft:
    """Draft a note whose sections the template names by content kind."""
    notices: list[str] = []
    reading = read_visit(transcript) if transcript.has_speech else Reading([], pronouns_for(None))
    if not transcript.has_speech:
        notices.append(NO_SPEECH_NOTICE)
    sections: list[NoteSection] = []
    for spec in template.sections:
        sentences: list[NoteSentence] = []
        for kind in spec.content:
            for s in _render(kind, reading, spec.word_budget(kind), tuple(spec.content)):
                if s.text not in {x.text for x in sentences}:
                    sentences.append(s)
        sections.append(NoteSection(spec.key, spec.title, tuple(sentences)))
    if transcript.has_speech and not any(s.sentences for s in sections):
        notices.append("Speech was detected but none of it matched a note section.")
    nlp = clinical_nlp()
    versions = "+".join(f"{k}-{v}" for k, v in nlp.versions.items() if k != "nlp")
    drafter = f"{DRAFTER_ID} ({nlp.versions['nlp']}; rules {versions})"
    return assemble_note(transcript, template, sections, notices, drafter, transcript_sha256, created_at)
