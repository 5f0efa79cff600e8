"""ConText rules 1.4.0: the general patterns behind held-out set 3's errors, one test per rule.

Set 3 (mts_dialog_context_labels_heldout3.json) became revision data once its 3 negation, 14 history
and 9 family errors were read. Eleven came from patterns a rule can say (below); the rest need the
turns before the sentence (a family member named only as "he", "they", "someone", "everyone"; a date
given in the previous turn), the time of a past-tense event ("I had vomiting a few times" said of the
current illness), or were left as they are (a year read wrongly as a number before ConText sees it,
"because" ending every modifier's scope). The sentences here are written for the tests, not dataset
text. Held-out set 4 was labelled before these rules and is guarded in
tests/test_context_revisions.py.
"""

from __future__ import annotations

import pytest

from ambient.nlp.findings import ClinicalNLP
from tests.nlp_helpers import finding


@pytest.mark.parametrize(
    ("sentence", "term"),
    [
        ("I hope it's not cancer.", "cancer"),
        ("I really hope this isn't a stroke.", "stroke"),
        ("I hope that I don't have diabetes.", "diabetes"),
    ],
)
def test_a_hope_that_it_is_not_is_a_fear_not_a_negation(nlp: ClinicalNLP, sentence: str, term: str) -> None:
    hit = finding(nlp, sentence, term)
    assert not hit.negated and hit.uncertain


@pytest.mark.parametrize(
    ("sentence", "term"),
    [
        ("I don't know which type of diabetes she had.", "diabetes"),
        ("We don't know what caused the rash.", "rash"),
        ("I did not know why the headache came back.", "headache"),
    ],
)
def test_not_knowing_which_or_what_is_not_a_negation(nlp: ClinicalNLP, sentence: str, term: str) -> None:
    assert not finding(nlp, sentence, term).negated


@pytest.mark.parametrize(
    ("sentence", "term"),
    [
        ("I have never had this kind of headache before.", "headache"),
        ("I've never felt this chest pain before.", "chest pain"),
    ],
)
def test_never_had_this_describes_the_present_complaint(nlp: ClinicalNLP, sentence: str, term: str) -> None:
    assert not finding(nlp, sentence, term).negated


@pytest.mark.parametrize(
    ("sentence", "term"),
    [
        ("I have never had chest pain like that.", "chest pain"),
        ("I don't know, I don't have any headache.", "headache"),
        ("I hope so, I don't have diabetes.", "diabetes"),
    ],
)
def test_negations_near_the_new_rules_still_negate(nlp: ClinicalNLP, sentence: str, term: str) -> None:
    assert finding(nlp, sentence, term).negated


@pytest.mark.parametrize(
    ("sentence", "term"),
    [
        ("Some of my relatives have had high blood pressure.", "high blood pressure"),
        ("You told me diabetes runs in your family.", "diabetes"),
        ("Is there any heart disease in your family?", "heart disease"),
    ],
)
def test_relatives_and_your_family_are_family(nlp: ClinicalNLP, sentence: str, term: str) -> None:
    hit = finding(nlp, sentence, term)
    assert hit.family and not hit.historical


@pytest.mark.parametrize(
    ("sentence", "term"),
    [
        ("She broke her wrist back in O 8 and the fracture healed well.", "fracture"),
        ("Asthma was a big problem for her back in high school.", "asthma"),
        ("You were seen here in 2011 for chest pain.", "chest pain"),
        ("He had pneumonia in 1998.", "pneumonia"),
    ],
)
def test_a_named_past_year_or_school_time_is_historical(nlp: ClinicalNLP, sentence: str, term: str) -> None:
    assert finding(nlp, sentence, term).historical


@pytest.mark.parametrize(
    ("sentence", "term"),
    [
        ("I've had this back pain since I fell in 2019.", "back pain"),
        ("The headaches started in 2020 and they are still there.", "headaches"),
        ("Come back in 2 weeks if the rash gets worse.", "rash"),
        ("The pain is back in my knee.", "pain"),
    ],
)
def test_ongoing_complaints_and_follow_ups_are_not_historical(
    nlp: ClinicalNLP, sentence: str, term: str
) -> None:
    assert not finding(nlp, sentence, term).historical


def test_and_now_ends_a_past_time_scope(nlp: ClinicalNLP) -> None:
    sentence = "I had my gallbladder out 5 years ago and now I am having some nausea."
    assert not finding(nlp, sentence, "nausea").historical
    assert finding(nlp, "I had a stroke 5 years ago and some weakness after it.", "stroke").historical
