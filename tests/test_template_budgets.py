"""Word budgets live in the templates (``max_words``): parsed, validated, and obeyed by the drafter."""

from __future__ import annotations

from pathlib import Path

import pytest

from ambient.errors import TemplateError
from ambient.notes.clinical import draft_clinical_note
from ambient.notes.templates import available_templates, load_template, parse_template
from ambient.transcript.serialise import transcript_from_turns
from ambient.types import Transcript

TEMPLATE = """
id = "site.budget"
name = "budget"
version = "1.0.0"
title = "Budget test"

[[sections]]
key = "hpi"
title = "History of present illness"
content = ["hpi"]
{hpi_budget}

[[sections]]
key = "plan"
title = "Assessment and plan"
content = ["assessment_plan"]
{plan_budget}
"""

# A long history: each sentence has details (body part, time course), so the drafter keeps all of
# them unless a budget says otherwise.
HISTORY = [
    "My left knee has been swollen for three weeks since I fell at work.",
    "The pain is worse in the morning and it hurts when I walk up stairs.",
    "I tried ibuprofen for two weeks but my stomach got upset.",
    "At night the knee aches so much that I wake up two or three times.",
    "Last year I had a similar problem with my right ankle after a fall.",
    "My back has been sore since I started limping on the left leg.",
]


def visit() -> Transcript:
    turns = [("doctor", "What brings you in today?")]
    for sentence in HISTORY:
        turns += [("patient", sentence), ("doctor", "Okay, tell me more.")]
    turns += [
        ("doctor", "I think this is a knee sprain, and I'll order an x-ray of your left knee."),
        ("doctor", "For the knee pain, I want you to rest it and use ice twice a day for a week."),
    ]
    return transcript_from_turns(
        turns, source_path="visit.txt", source_sha256="a" * 64, encounter_id="enc-1", pipeline_version="t"
    )


def write(tmp_path: Path, hpi_budget: str = "", plan_budget: str = "") -> Path:
    path = tmp_path / "budget.toml"
    path.write_text(TEMPLATE.format(hpi_budget=hpi_budget, plan_budget=plan_budget), encoding="utf-8")
    return path


def hpi_words(template_path: Path) -> int:
    note = draft_clinical_note(visit(), parse_template(template_path), "b" * 64)
    hpi = next(s for s in note.sections if s.key == "hpi")
    return sum(len(s.text.split()) for s in hpi.sentences)


def test_budget_is_read_from_the_section(tmp_path: Path) -> None:
    template = parse_template(
        write(tmp_path, "max_words = { hpi = 40 }", "max_words = { assessment_plan = 9 }")
    )
    hpi, plan = template.sections
    assert hpi.word_budget("hpi") == 40 and plan.word_budget("assessment_plan") == 9
    assert hpi.word_budget("assessment_plan") is None


def test_drafter_obeys_the_template_budget(tmp_path: Path) -> None:
    unbounded = hpi_words(write(tmp_path))
    capped = hpi_words(write(tmp_path, "max_words = { hpi = 30 }"))
    assert unbounded > 60  # every history sentence kept without a budget
    assert 0 < capped <= 30 + 5  # the clinician register may add a word or two per sentence
    assert capped < unbounded


def test_orders_stay_whatever_the_plan_budget(tmp_path: Path) -> None:
    note = draft_clinical_note(
        visit(), parse_template(write(tmp_path, "", "max_words = { assessment_plan = 1 }")), "b"
    )
    plan = " ".join(s.text for s in note.sections[1].sentences)
    assert "x-ray" in plan  # an order is never dropped for length
    assert "ice" not in plan  # advice without an order is, when the budget is spent


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ("max_words = 200", "must be a table"),
        ("max_words = { ros = 50 }", "may name: hpi"),
        ("max_words = { plan = 50 }", "may name: hpi"),  # plan is not in this section
        ("max_words = { hpi = 0 }", "positive whole number"),
        ("max_words = { hpi = 1.5 }", "positive whole number"),
        ("max_words = { hpi = true }", "positive whole number"),
    ],
)
def test_bad_budgets_name_the_file_and_the_field(tmp_path: Path, budget: str, message: str) -> None:
    path = write(tmp_path, budget)
    with pytest.raises(TemplateError) as caught:
        parse_template(path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_builtin_templates_carry_the_budgets_chosen_on_valid() -> None:
    for template in available_templates():
        for section in template.sections:
            if "hpi" in section.content:
                assert section.word_budget("hpi") == 200, template.name
            for kind in ("assessment_plan", "assessment", "plan"):
                if kind in section.content:
                    assert section.word_budget(kind) == 250, (template.name, kind)
    assert load_template("soap").version == "2.1.0"
