"""ConText rules 1.2.0: spoken phrases that look like negations but are not; the held-out sets' guards.

Each rule here was added for an error found on the revision sets (mts_dialog_context_labels.json and
the first held-out set, which became revision data once its errors had been read). Set 2
(mts_dialog_context_labels_heldout2.json, 155 mentions) was held out for rules 1.2.0 and became
revision data for rules 1.3.0 (tests/test_context_rules_1_3.py). Set 3
(mts_dialog_context_labels_heldout3.json, 156 mentions) was held out for rules 1.3.0, scored once
with them, and became revision data for rules 1.4.0 (tests/test_context_rules_1_4.py). Held-out set 4
(mts_dialog_context_labels_heldout4.json, 94 mentions) was labelled before rules 1.4.0 and never used
to revise them: its accuracy is reported, and guarded against regressions.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ambient.evaluation.context import score_context
from ambient.nlp.findings import ClinicalNLP
from tests.conftest import SHARED_DATA
from tests.nlp_helpers import finding

LABELS = Path(__file__).parent / "data"


@pytest.mark.parametrize(
    ("sentence", "term"),
    [
        ("I can't take this pain anymore.", "pain"),
        ("I can't stand the itching at night.", "itching"),
        ("I don't know if it's related to the headache.", "headache"),
        ("The arthritis couldn't be associated with erythema nodosum.", "erythema nodosum"),
        ("If you do not address the sleep apnea it will get worse.", "sleep apnea"),
    ],
)
def test_pseudo_negations_leave_the_finding_asserted(nlp: ClinicalNLP, sentence: str, term: str) -> None:
    assert not finding(nlp, sentence, term).negated


@pytest.mark.parametrize(
    ("sentence", "term"),
    [
        ("I don't have any headache.", "headache"),
        ("No more diarrhea since Monday.", "diarrhea"),
        ("I can't say I have had any fever.", "fever"),
    ],
)
def test_real_negations_still_negate(nlp: ClinicalNLP, sentence: str, term: str) -> None:
    assert finding(nlp, sentence, term).negated


def test_family_history_of_is_family_not_the_patients_history(nlp: ClinicalNLP) -> None:
    hit = finding(nlp, "There is a family history of breast cancer.", "cancer")
    assert hit.family and not hit.historical


def test_months_ago_is_historical(nlp: ClinicalNLP) -> None:
    assert finding(nlp, "He visited us one month ago for nausea.", "nausea").historical
    assert finding(nlp, "I had kidney stones three months ago.", "kidney stones").historical
    assert not finding(nlp, "I have had nausea since this morning.", "nausea").historical


_NO_MTS = "../shared/data/mts-dialog not present: the labels hold references only, no dataset text"


@pytest.mark.skipif(not (SHARED_DATA / "mts-dialog").is_dir(), reason=_NO_MTS)
def test_set_2_revision_data(nlp: ClinicalNLP) -> None:
    score = score_context(nlp, LABELS / "mts_dialog_context_labels_heldout2.json", SHARED_DATA / "mts-dialog")
    assert score.items == 155 and score.missed == 0
    # 155/155 negation, 151/155 history, 153/155 family under rules 1.3.0, written from its errors.
    assert score.accuracy("negation") >= 0.98, score
    assert score.accuracy("history") >= 0.96, score
    assert score.accuracy("family") >= 0.97, score


@pytest.mark.skipif(not (SHARED_DATA / "mts-dialog").is_dir(), reason=_NO_MTS)
def test_set_3_revision_data(nlp: ClinicalNLP) -> None:
    labels, mts = LABELS / "mts_dialog_context_labels_heldout3.json", SHARED_DATA / "mts-dialog"
    score = score_context(nlp, labels, mts)
    assert score.items == 156 and score.missed == 0
    # Held out for rules 1.3.0 (153/156 negation, 142/156 history, 147/156 family); under rules 1.4.0,
    # written from its errors: 156/156, 144/156, 149/156. Most of the history and family errors left
    # need the turns before the sentence (tests/test_context_rules_1_4.py says which).
    assert score.accuracy("negation") >= 0.98, score
    assert score.accuracy("history") >= 0.91, score
    assert score.accuracy("family") >= 0.94, score
    random = score_context(nlp, labels, mts, stratum="random")
    assert random.items == 100
    assert random.accuracy("history") >= 0.95, random  # 96/100 under 1.3.0 and 1.4.0


@pytest.mark.skipif(not (SHARED_DATA / "mts-dialog").is_dir(), reason=_NO_MTS)
def test_fourth_held_out_set(nlp: ClinicalNLP) -> None:
    labels, mts = LABELS / "mts_dialog_context_labels_heldout4.json", SHARED_DATA / "mts-dialog"
    score = score_context(nlp, labels, mts)
    assert score.items == 94 and score.missed == 0
    # Measured once under rules 1.4.0: 94/94 negation, 92/94 history, 91/94 family (the same under
    # 1.3.0, scored for the before/after since the set was labelled first). Its past-cue stratum has
    # only 4 mentions (the training set ran out of unused dialogues), so it is not guarded on its own.
    # Floors sit a point or two below the measurement: they guard against regressions.
    assert score.accuracy("negation") >= 0.97, score
    assert score.accuracy("history") >= 0.95, score
    assert score.accuracy("family") >= 0.94, score
    random = score_context(nlp, labels, mts, stratum="random")
    assert random.items == 90
    assert random.accuracy("history") >= 0.95, random  # measured 88/90
