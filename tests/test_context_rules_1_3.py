"""ConText rules 1.3.0: the general patterns behind held-out set 2's errors, one test per rule.

Set 2 (mts_dialog_context_labels_heldout2.json) became revision data once its 13 history, 3
negation and 4 family errors were read; the sentences here are paraphrases of the kinds that
failed, not dataset text. Held-out set 3 was labelled before these rules and is guarded in
tests/test_context_revisions.py.
"""

from __future__ import annotations

import pytest

from ambient.nlp.findings import ClinicalNLP
from tests.nlp_helpers import finding


@pytest.mark.parametrize(
    ("sentence", "term"),
    [
        ("My grandfather died of a heart attack.", "heart attack"),
        ("He passed away from a stroke at sixty.", "stroke"),
        ("She died when she was eighty, she had emphysema.", "emphysema"),
    ],
)
def test_a_death_is_a_family_members_not_the_patients_history(
    nlp: ClinicalNLP, sentence: str, term: str
) -> None:
    hit = finding(nlp, sentence, term)
    assert hit.family and not hit.historical


def test_in_my_family_after_the_condition_is_family(nlp: ClinicalNLP) -> None:
    hit = finding(nlp, "Nobody had diabetes in my family.", "diabetes")
    assert hit.family
    assert not finding(nlp, "I have had diabetes for ten years.", "diabetes").family


@pytest.mark.parametrize(
    ("sentence", "term"),
    [
        ("She was treated for psoriasis at some point.", "psoriasis"),
        ("You came in for afib last month.", "afib"),
        ("Last year my doctor found a kidney stone.", "kidney stone"),
        ("They found a kidney stone about a year ago.", "kidney stone"),
        ("He had surgery on his left knee for a fracture.", "fracture"),
    ],
)
def test_past_time_and_past_operations_are_historical(nlp: ClinicalNLP, sentence: str, term: str) -> None:
    assert finding(nlp, sentence, term).historical


@pytest.mark.parametrize(
    ("sentence", "term"),
    [
        ("I've had this cough for the last month.", "cough"),
        ("The headaches have been there since last year.", "headaches"),
        ("More recently I had some nausea after meals.", "nausea"),
        ("Then on Sunday I had this sharp pain in my chest.", "pain"),
    ],
)
def test_ongoing_and_recent_complaints_are_not_historical(nlp: ClinicalNLP, sentence: str, term: str) -> None:
    assert not finding(nlp, sentence, term).historical


@pytest.mark.parametrize(
    ("sentence", "term"),
    [
        ("No I have a terrible headache.", "headache"),
        ("No it's the back pain that bothers me.", "back pain"),
        ("I have not been able to sleep, and I have had this pain in my hip.", "pain"),
        ("I can't walk to the car without a lot of pain.", "pain"),
    ],
)
def test_spoken_look_alikes_of_negation_leave_the_finding_asserted(
    nlp: ClinicalNLP, sentence: str, term: str
) -> None:
    assert not finding(nlp, sentence, term).negated


@pytest.mark.parametrize(
    ("sentence", "term"),
    [
        ("No I haven't had any fever.", "fever"),
        ("No, I have no headache.", "headache"),
        ("I can walk without pain now.", "pain"),
        ("No it's not the back pain.", "back pain"),
    ],
)
def test_negations_near_the_new_rules_still_negate(nlp: ClinicalNLP, sentence: str, term: str) -> None:
    assert finding(nlp, sentence, term).negated
