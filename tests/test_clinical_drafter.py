"""The clinical drafter, its register rewrites and the faithfulness check.

Small visits written here pin the behaviour; ACI-Bench dialogues (data nobody here wrote) check
that real visits land in the right sections with their medications and evidence.
"""

from __future__ import annotations

import csv
import re
from dataclasses import replace

import pytest

from ambient.notes.clinical import clinical_nlp, draft_clinical_note, guess_speaker
from ambient.notes.faithfulness import check_note, enforce, evidence_text
from ambient.notes.register import clinician_voice, patient_voice, pronouns_for, tidy
from ambient.notes.templates import available_templates, load_template
from ambient.transcript.dialogue import detokenize, parse_dialogue
from ambient.transcript.serialise import transcript_from_turns
from ambient.types import EvidenceSpan, NoteSentence, Segment, Transcript, Word
from tests.conftest import SHARED_DATA

VISIT = [
    ("doctor", "Hi, what brings you in today?"),
    ("patient", "I've had chest pain for two days and it gets worse when I climb stairs."),
    ("doctor", "Any shortness of breath?"),
    ("patient", "No."),
    ("doctor", "What medicines do you take?"),
    ("patient", "I take lisinopril 10 milligrams once a day."),
    ("doctor", "Any allergies?"),
    ("patient", "I'm allergic to penicillin, it gives me a rash."),
    ("doctor", "Let's do a quick exam. Your blood pressure is 150 over 90. Your lungs are clear."),
    ("doctor", "I think this could be angina."),
    ("doctor", "I'll order an ECG and a troponin, and I want you to take aspirin 81 milligrams daily."),
    ("doctor", "Follow up in one week."),
]


def visit(turns: list[tuple[str, str]] = VISIT) -> Transcript:
    return transcript_from_turns(
        turns, source_path="visit.txt", source_sha256="a" * 64, encounter_id="enc-1", pipeline_version="t"
    )


def sections(note: object) -> dict[str, list[NoteSentence]]:
    return {s.key: list(s.sentences) for s in note.sections}  # type: ignore[attr-defined]


def texts(items: list[NoteSentence]) -> str:
    return " | ".join(s.text for s in items)


def test_soap_from_a_short_visit() -> None:
    note = draft_clinical_note(visit(), load_template("soap"), "b" * 64)
    by = sections(note)
    subjective, objective = texts(by["subjective"]), texts(by["objective"])
    assert by["subjective"][0].text == "Chest pain."  # chief complaint first
    assert "The patient has had chest pain for 2 days" in subjective
    assert "The patient denies shortness of breath." in subjective  # question answered "no"
    assert "Lisinopril 10 mg once a day." in subjective
    assert "Allergy: Penicillins (rash)." in [s.text for s in by["subjective"]]
    assert "Blood pressure 150/90 mmHg." in objective and "lungs are clear" in objective
    assert "150 over 90" not in objective  # listed once, as a vital, not again as an exam sentence
    assert "angina" in texts(by["assessment"]).lower()
    # "I think this could be angina": suspected, so the problem heading must not assert it.
    assert by["assessment"][0].text == "Possible angina.", texts(by["assessment"])
    plan = texts(by["plan"])
    assert "ECG" in plan and "aspirin 81 mg" in plan and "Follow up in one week." in plan
    # Prescribed today: in the plan, not in the list of medications the patient takes.
    assert "Aspirin" not in subjective
    assert note.provenance.drafter.startswith("ambient.clinical.v1")


@pytest.mark.parametrize(
    ("said", "kept"),
    [
        ("Your heart rate is 88.", False),  # "heart" is the vital's own name, not an exam finding
        ("Your temperature is 38.5 degrees and your lungs are clear.", True),  # an exam finding too
        ("Your heart rate is 88 and I hear a murmur.", True),
    ],
)
def test_an_exam_sentence_of_vitals_alone_is_not_said_twice(said: str, kept: bool) -> None:
    turns = [("doctor", "What brings you in?"), ("patient", "A cough."), ("doctor", said)]
    objective = sections(draft_clinical_note(visit(turns), load_template("soap"), "b" * 64))["objective"]
    assert any(s.text.startswith(("Heart rate", "Temperature")) for s in objective), texts(objective)
    assert (len(objective) > 1) == kept, texts(objective)


def test_a_drug_named_as_an_allergy_is_not_listed_as_taken() -> None:
    turns = [
        ("doctor", "I have that you're allergic to penicillin. Any other allergies?"),
        ("patient", "Nope, just penicillin."),
        ("doctor", "What medicines do you take?"),
        ("patient", "I take lisinopril 10 milligrams once a day."),
    ]
    hp = sections(draft_clinical_note(visit(turns), load_template("hp"), "b" * 64))
    assert [s.text for s in hp["medications"]] == ["Lisinopril 10 mg once a day."]
    assert [s.text for s in hp["allergies"]] == ["Penicillins."]


def test_an_allergy_sharing_a_section_with_medications_says_it_is_one() -> None:
    """Next to "Lisinopril 10 mg once a day.", a bare "Penicillins." reads as a drug taken."""
    cardiology = sections(draft_clinical_note(visit(), load_template("cardiology"), "b" * 64))
    shared = next(key for key, items in cardiology.items() if "Lisinopril" in texts(items))
    lines = [s.text for s in cardiology[shared]]
    assert "Allergy: Penicillins (rash)." in lines and "Penicillins (rash)." not in lines
    # Under its own heading the line needs no label.
    hp = sections(draft_clinical_note(visit(), load_template("hp"), "b" * 64))
    assert [s.text for s in hp["allergies"]] == ["Penicillins (rash)."]


def test_every_sentence_cites_the_transcript_it_came_from() -> None:
    transcript = visit()
    note = draft_clinical_note(transcript, load_template("history_and_physical"), "b" * 64)
    segment_ids = {s.id for s in transcript.segments}
    for section in note.sections:
        for sentence in section.sentences:
            assert sentence.evidence, sentence.text
            for span in sentence.evidence:
                assert span.segment_id in segment_ids and span.start_s <= span.end_s
    report = check_note(note, transcript, clinical_nlp())
    assert report.issues == (), report.issues


def test_every_builtin_template_drafts() -> None:
    names = {t.name for t in available_templates()}
    assert {"soap", "hp", "progress", "cardiology", "instructions"} <= names
    for template in available_templates():
        note = draft_clinical_note(visit(), template, "b" * 64)
        assert any(s.sentences for s in note.sections), template.name
        assert template.loinc


def test_patient_instructions_speak_to_the_patient() -> None:
    note = draft_clinical_note(visit(), load_template("instructions"), "b" * 64)
    steps = texts(sections(note)["next_steps"])
    assert "I want you to take aspirin 81 mg daily" in steps


def test_register_rewrites_voice_not_facts() -> None:
    he, unknown = pronouns_for("male"), pronouns_for(None)
    assert (
        patient_voice(tidy("um, so I've been, I've been feeling dizzy"), he) == "He has been feeling dizzy."
    )
    assert patient_voice(tidy("I take my metformin twice a day"), unknown) == (
        "The patient takes their metformin twice a day."
    )
    assert patient_voice(tidy("I don't smoke"), he) == "He does not smoke."
    assert clinician_voice(tidy("your left knee is swollen"), he) == "His left knee is swollen."
    assert clinician_voice(tidy("I want you to come back in two weeks"), he) == (
        "I want him to come back in 2 weeks."
    )


def test_speaker_guess_when_transcript_has_none() -> None:
    assert guess_speaker("Do you have any allergies?") == "clinician"
    assert guess_speaker("Your lungs are clear.") == "clinician"
    assert guess_speaker("Take aspirin once a day.") == "clinician"
    assert guess_speaker("I have had a cough for a week.") == "patient"


# -- faithfulness ---------------------------------------------------------------------------


def _tampered(note: object, key: str, index: int, text: str) -> object:
    out = []
    for section in note.sections:  # type: ignore[attr-defined]
        if section.key == key:
            items = list(section.sentences)
            items[index] = replace(items[index], text=text)
            section = replace(section, sentences=tuple(items))
        out.append(section)
    return replace(note, sections=tuple(out))  # type: ignore[type-var]


@pytest.mark.parametrize(
    ("bad", "kind"),
    [
        ("Lisinopril 40 mg once a day.", "number"),  # invented dose
        ("Metoprolol 10 mg once a day.", "medication"),  # invented drug
        ("Lisinopril 10 mg once a day for the right kidney.", "laterality"),
    ],
)
def test_check_catches_invented_doses_drugs_and_sides(bad: str, kind: str) -> None:
    transcript = visit()
    note = draft_clinical_note(transcript, load_template("hp"), "b" * 64)
    meds = next(s for s in note.sections if s.key == "medications")
    assert meds.sentences[0].text == "Lisinopril 10 mg once a day."
    bad_note = _tampered(note, "medications", 0, bad)
    report = check_note(bad_note, transcript, clinical_nlp())  # type: ignore[arg-type]
    assert [i.kind for i in report.issues] == [kind]
    cleaned = enforce(bad_note, report)  # type: ignore[arg-type]
    assert not next(s for s in cleaned.sections if s.key == "medications").sentences
    assert "1 statement(s) removed" in cleaned.notices[-1]
    marked = enforce(bad_note, report, "mark")  # type: ignore[arg-type]
    assert "[UNVERIFIED" in next(s for s in marked.sections if s.key == "medications").sentences[0].text


def test_check_catches_a_flipped_negation() -> None:
    transcript = visit()
    note = draft_clinical_note(transcript, load_template("soap"), "b" * 64)
    index = next(i for i, s in enumerate(sections(note)["subjective"]) if "denies shortness" in s.text)
    flipped = _tampered(note, "subjective", index, "The patient reports shortness of breath.")
    report = check_note(flipped, transcript, clinical_nlp())  # type: ignore[arg-type]
    assert [(i.kind, i.detail) for i in report.issues] == [("negation", "shortness of breath")]


def test_sentence_without_evidence_is_unsupported() -> None:
    transcript = visit()
    note = draft_clinical_note(transcript, load_template("soap"), "b" * 64)
    orphan = replace(sections(note)["plan"][0], evidence=())
    section = replace(note.sections[-1], sentences=(orphan,))
    report = check_note(replace(note, sections=(section,)), transcript, clinical_nlp())
    assert [i.kind for i in report.issues] == ["no_evidence"]


def test_evidence_text_reads_words_inside_the_span() -> None:
    words = tuple(
        Word(w, i * 0.5, i * 0.5 + 0.4, 0.9) for i, w in enumerate(["I", "take", "lisinopril", "daily"])
    )
    segment = Segment(1, 0.0, 2.0, "I take lisinopril daily", words, "patient")
    transcript = replace(visit(), segments=(segment,))
    assert evidence_text(transcript, [EvidenceSpan(1, 0.5, 0.9)]) == "take"
    assert evidence_text(transcript, [EvidenceSpan(1, 0.0, 1.4)]) == "I take lisinopril"


# -- real visits ----------------------------------------------------------------------------


@pytest.mark.skipif(not (SHARED_DATA / "aci-bench").is_dir(), reason="../shared/data/aci-bench not present")
@pytest.mark.parametrize("row", [0, 3])
def test_aci_bench_visit_lands_in_the_right_sections(row: int) -> None:
    csv.field_size_limit(10**9)
    with (SHARED_DATA / "aci-bench" / "clinicalnlp_taskB_test1.csv").open(encoding="utf-8") as handle:
        data = list(csv.DictReader(handle))[row]
    turns = [(t.role, detokenize(t.text)) for t in parse_dialogue(data["dialogue"])]
    transcript = visit(turns)
    note = draft_clinical_note(transcript, load_template("progress"), "b" * 64)
    by = {k: texts(v).lower() for k, v in sections(note).items()}
    reference = data["note"].lower()
    # The chief complaint is the reference's.
    cc = re.search(r"chief complaint\s+(.+?)\.", reference)
    assert cc and cc.group(1).strip() in by["chief_complaint"]
    # Medications named in the reference's plan appear in our plan, with the clinician's dose.
    if row == 0:
        assert "metformin to 1000 mg" in by["assessment_plan"]
        assert "lisinopril" in by["assessment_plan"]
        assert "hemoglobin a1c" in by["results"]
        assert "edema of his lower extremities" in by["exam"]
    else:
        assert "fosamax 1 tab per week" in by["assessment_plan"]
        assert "lungs are nice and clear" in by["exam"]
        assert "x-ray of his right knee" in by["results"]
    report = check_note(note, transcript, clinical_nlp())
    assert not [i for i in report.issues if i.kind in ("medication", "number")]
