"""`ambient eval notes`: known answers on small fixtures, and clear errors on bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ambient.cli.main import main
from ambient.evaluation.notes import NoteScorer, read_examples, reference_groups
from ambient.notes.render import note_to_text
from ambient.notes.templates import load_template

DIALOGUE = (
    "[doctor] what brings you in today ?\n"
    "[patient] i have had a cough for two weeks and i take lisinopril 10 mg daily .\n"
    "[doctor] your lungs are clear on exam .\n"
    "[doctor] i think this is bronchitis . i'll order a chest x-ray .\n"
)


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["encounter_id", "dialogue", "note"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_reference_equal_to_the_draft_scores_100(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scorer = NoteScorer(load_template("progress"))
    (example,) = read_examples(
        write_csv(tmp_path / "d.csv", [{"encounter_id": "e1", "dialogue": DIALOGUE, "note": "x"}])
    )
    draft = note_to_text(scorer.draft(example)[0])
    data = write_csv(tmp_path / "same.csv", [{"encounter_id": "e1", "dialogue": DIALOGUE, "note": draft}])
    assert main(["eval", "notes", str(data), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["summary"]["rouge"] == {"rouge1": 100.0, "rouge2": 100.0, "rougeLsum": 100.0}
    assert result["summary"]["concepts"]["medications"] == {"recall": 1.0, "precision": 1.0}
    assert result["summary"]["unsupported_left"] == 0


def test_a_reference_without_the_drug_halves_precision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = "HISTORY OF PRESENT ILLNESS\n\nCough for 2 weeks. Takes metformin.\n"
    data = write_csv(tmp_path / "d.csv", [{"encounter_id": "e1", "dialogue": DIALOGUE, "note": reference}])
    assert main(["eval", "notes", str(data), "--json"]) == 0
    meds = json.loads(capsys.readouterr().out)["summary"]["concepts"]["medications"]
    assert meds == {"recall": 0.0, "precision": 0.0}  # we say lisinopril (true), the reference metformin


def test_reference_notes_split_into_section_groups() -> None:
    note = (
        "CHIEF COMPLAINT\n\nCough.\n\nPHYSICAL EXAMINATION\n\nLungs clear.\n\n"
        "ASSESSMENT AND PLAN\n\nBronchitis."
    )
    assert reference_groups(note) == {
        "subjective": "Cough.",
        "objective_exam": "Lungs clear.",
        "assessment_and_plan": "Bronchitis.",
    }


def test_bad_data_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "notes", str(tmp_path / "missing.csv")]) == 3
    assert "does not exist" in capsys.readouterr().err
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b\n1,2\n")
    assert main(["eval", "notes", str(wrong)]) == 3
    assert "lacks column(s) dialogue, note" in capsys.readouterr().err
