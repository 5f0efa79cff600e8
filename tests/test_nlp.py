"""Clinical NLP: each rule file on small clinical sentences (negated, historical, family,
hypothetical; doses and units; vitals; allergies; orders) and the packaged vocabularies."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ambient import manifests
from ambient.errors import ModelIntegrityError
from ambient.evaluation.context import score_context
from ambient.nlp.findings import ClinicalNLP, Finding, icd10_suggestion
from ambient.nlp.lexicon import DrugLexicon, rules_json, target_terms
from ambient.nlp.numbers import words_to_digits
from tests.conftest import SHARED_DATA


@pytest.fixture(scope="module")
def nlp() -> ClinicalNLP:
    return ClinicalNLP()


def one(nlp: ClinicalNLP, text: str, category: str) -> Finding:
    (found,) = nlp.analyse([text])
    hits = [f for f in found if f.category == category]
    assert len(hits) == 1, f"{text!r}: expected one {category}, got {found}"
    return hits[0]


@pytest.mark.parametrize(
    ("text", "name", "flag"),
    [
        ("The patient denies chest pain.", "chest pain", "negated"),
        ("No fever or chills.", "fever", "negated"),
        ("I don't have any shortness of breath.", "shortness of breath", "negated"),
        ("My mother has diabetes.", "diabetes", "family"),
        ("Diabetes runs in my family.", "diabetes", "family"),
        ("I had pneumonia years ago.", "pneumonia", "historical"),
        ("If you get a fever, call us.", "fever", "hypothetical"),
        ("It could be angina.", "angina", "uncertain"),
    ],
)
def test_context_modifiers(nlp: ClinicalNLP, text: str, name: str, flag: str) -> None:
    (found,) = nlp.analyse([text])
    finding = next(f for f in found if f.name == name)
    assert getattr(finding, flag), f"{text!r}: {name} should be {flag}: {finding}"
    assert not finding.asserted or flag == "uncertain"


def test_plain_statement_is_asserted(nlp: ClinicalNLP) -> None:
    finding = one(nlp, "I have had a headache for three days.", "SYMPTOM")
    assert finding.name == "headache" and finding.asserted
    assert finding.code == "R51.9" and finding.system == "Neurological"


def test_lay_terms_get_preferred_names_and_codes(nlp: ClinicalNLP) -> None:
    assert one(nlp, "I have high blood pressure.", "PROBLEM").name == "hypertension"
    assert one(nlp, "I feel so tired all the time.", "SYMPTOM").name == "fatigue"
    # An ICD-10-CM title that no hand list has: found through the packaged vocabulary.
    gout = one(nlp, "He was diagnosed with gout.", "PROBLEM")
    assert gout.code is not None and gout.code.startswith("M10")


@pytest.mark.parametrize(
    ("text", "name", "attributes"),
    [
        ("I take lisinopril 20 mg once a day.", "Lisinopril", {"dose": "20 mg", "frequency": "once a day"}),
        ("metformin five hundred milligrams twice a day by mouth", "Metformin",
         {"dose": "500 mg", "frequency": "twice a day", "route": "by mouth"}),
        ("I use my albuterol inhaler as needed.", "Albuterol",
         {"route": "inhaler", "frequency": "as needed"}),
        ("Tylenol 650 mg every 6 hours", "Acetaminophen", {"dose": "650 mg", "frequency": "every 6 hours"}),
    ],
)  # fmt: skip
def test_medications_with_dose_route_frequency(
    nlp: ClinicalNLP, text: str, name: str, attributes: dict[str, str]
) -> None:
    med = one(nlp, text, "MEDICATION")
    assert med.name == name
    for key, value in attributes.items():
        assert med.attribute(key) == value, f"{text!r}: {key}"


def test_stopped_medication_is_negated(nlp: ClinicalNLP) -> None:
    assert one(nlp, "I stopped taking the metformin last month.", "MEDICATION").negated


@pytest.mark.parametrize(
    ("text", "label", "value", "unit"),
    [
        ("Your blood pressure is one forty over ninety.", "Blood pressure", "140/90", "mmHg"),
        ("Heart rate is 88 today.", "Heart rate", "88", "bpm"),
        ("Oxygen saturation is ninety eight percent.", "Oxygen saturation", "98", "%"),
        ("Temperature 38.5 degrees.", "Temperature", "38.5", "°C"),
        ("Temperature is ninety eight point six.", "Temperature", "98.6", "°F"),
        ("You weigh 180 pounds.", "Weight", "180", "pounds"),
        ("Your BMI is 31.2.", "BMI", "31.2", "kg/m2"),
        ("Respiratory rate sixteen.", "Respiratory rate", "16", "breaths/min"),
    ],
)
def test_vitals(nlp: ClinicalNLP, text: str, label: str, value: str, unit: str) -> None:
    (found,) = nlp.analyse([text])
    vital = next(f for f in found if f.category == "VITAL" and f.name == label)
    assert (vital.attribute("value"), vital.attribute("unit")) == (value, unit)


def test_allergies(nlp: ClinicalNLP) -> None:
    allergy = one(nlp, "I'm allergic to penicillin, it gives me hives.", "ALLERGY")
    assert allergy.name == "Penicillins" and allergy.attribute("reaction") == "hives"
    (found,) = nlp.analyse(["I'm allergic to penicillin."])
    assert not [f for f in found if f.category == "MEDICATION"], "an allergen is not a medication taken"
    assert one(nlp, "No known drug allergies.", "ALLERGY").negated


def test_orders_name_what_is_ordered(nlp: ClinicalNLP) -> None:
    (found,) = nlp.analyse(["I'm going to order a chest x-ray and some blood work."])
    assert {f.name for f in found if f.category == "ORDER"} == {"chest x-ray", "blood work"}


def test_laterality_attribute(nlp: ClinicalNLP) -> None:
    assert one(nlp, "I have pain in my left knee.", "SYMPTOM").attribute("laterality") == "left"


def test_icd10_suggestion_uses_official_title(nlp: ClinicalNLP) -> None:
    finding = one(nlp, "Her hypertension is well controlled.", "PROBLEM")
    assert icd10_suggestion(finding) == ("I10", "Essential (primary) hypertension")


@pytest.mark.parametrize(
    ("spoken", "digits"),
    [
        ("twenty milligrams", "20 milligrams"),
        ("one forty over ninety", "140 over 90"),
        ("one hundred and twenty", "120"),
        ("ninety eight point six", "98.6"),
        ("the left one hurts", "the left one hurts"),
        ("one tablet", "1 tablet"),
        ("two kids and one dog", "2 kids and one dog"),
        ("someone", "someone"),
        # two numbers side by side are not added up (the old parser said 114, 10, 30 and 40)
        ("born in nineteen ninety five", "born in 1995"),
        ("five five", "5 5"),
        ("ten and twenty milligrams", "10 and 20 milligrams"),
        ("since twenty twenty one", "since 2021"),
        ("twenty twenty vision", "20 20 vision"),
        ("at eleven thirty", "at 11 30"),
        ("on October twenty sixth", "on October 26th"),
        ("a thirty second test", "a 30 second test"),
        ("two thousand and five", "2005"),
        ("twenty five hundred units", "2500 units"),
        ("one forty five over ninety", "145 over 90"),
        ("ninety nine point nine", "99.9"),
    ],
)
def test_spoken_numbers(spoken: str, digits: str) -> None:
    assert words_to_digits(spoken) == digits


def test_rule_files_are_versioned_and_well_formed() -> None:
    for name in ("targets.json", "context.json", "patterns.json"):
        data = rules_json(name)
        assert data["version"].count(".") == 2
    categories = {t.category for t in target_terms()}
    assert categories == {"PROBLEM", "SYMPTOM", "TEST", "PROCEDURE", "SOCIAL"}
    assert len(target_terms()) > 3000, "ICD-10-CM titles should be part of the vocabulary"


def test_drug_dictionary_is_checked_before_unpickling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "models"
    shutil.copytree(manifests.data_dir("models"), fake)
    manifest = fake / "drug-ner-dictionary.toml"
    manifest.write_text(manifest.read_text().replace('sha256 = "ec10', 'sha256 = "0c10'))
    monkeypatch.setattr(manifests, "data_dir", lambda name: fake)
    DrugLexicon.load.cache_clear()
    try:
        with pytest.raises(ModelIntegrityError, match="drug_ner_dictionary"):
            DrugLexicon.load()
    finally:
        DrugLexicon.load.cache_clear()


def test_drug_lexicon_ignores_research_chemical_abbreviations() -> None:
    drugs = DrugLexicon.load()
    assert drugs.canonical("sits") is None  # "SITS" is a reagent; "sits down" is not a drug
    assert drugs.canonical("lasix") == "Furosemide"


LABELS = Path(__file__).parent / "data" / "mts_dialog_context_labels.json"


@pytest.mark.skipif(not (SHARED_DATA / "mts-dialog").is_dir(), reason="../shared/data/mts-dialog not present")
def test_negation_and_history_accuracy_on_labelled_mts_dialog(nlp: ClinicalNLP) -> None:
    score = score_context(nlp, LABELS, SHARED_DATA / "mts-dialog")
    assert score.items >= 100 and score.missed == 0
    assert score.accuracy("negation") >= 0.95, score
    assert score.accuracy("history") >= 0.95, score
    # The held-out set was never used to revise the rules: a regression guard, not the target.
    held_out = score_context(
        nlp, LABELS.with_name("mts_dialog_context_labels_heldout.json"), SHARED_DATA / "mts-dialog"
    )
    assert held_out.items >= 60 and held_out.missed == 0
    assert held_out.accuracy("negation") >= 0.90 and held_out.accuracy("history") >= 0.90, held_out
