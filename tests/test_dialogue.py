from __future__ import annotations

import csv
from pathlib import Path

import pytest

from ambient.errors import TranscriptFormatError
from ambient.transcript.dialogue import DialogueTurn, parse_dialogue, role_for_label

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"datasets not present at {SHARED_DATA}")


def test_aci_bench_brackets_any_case() -> None:
    text = "[doctor] hi , brian . how are you ?\n[PATIENT] hi , good to see you .\n"
    assert parse_dialogue(text) == [
        DialogueTurn("clinician", "hi , brian . how are you ?"),
        DialogueTurn("patient", "hi , good to see you ."),
    ]


def test_osce_letters_with_blank_lines_and_crlf() -> None:
    text = "D: What brings you in here today?\r\n\r\nP: Yeah, I have this pain in my chest.\r\n"
    assert parse_dialogue(text) == [
        DialogueTurn("clinician", "What brings you in here today?"),
        DialogueTurn("patient", "Yeah, I have this pain in my chest."),
    ]


def test_unlabelled_line_continues_the_turn_above() -> None:
    text = "[doctor] lastly , for your blood pressure\nit looks well managed .\n[patient] good ."
    turns = parse_dialogue(text)
    assert turns[0] == DialogueTurn("clinician", "lastly , for your blood pressure it looks well managed .")
    assert len(turns) == 2


def test_semicolon_typo_after_known_label_is_accepted() -> None:
    assert parse_dialogue("D; Any palpitations?\nP: No.") == [
        DialogueTurn("clinician", "Any palpitations?"),
        DialogueTurn("patient", "No."),
    ]


def test_whitespace_collapsed_and_empty_turns_dropped() -> None:
    text = "[doctor]   how   are\tyou ?\n[patient]\n[doctor] okay ."
    assert parse_dialogue(text) == [
        DialogueTurn("clinician", "how are you ?"),
        DialogueTurn("clinician", "okay ."),
    ]


@pytest.mark.parametrize(
    ("label", "role"),
    [
        ("doctor", "clinician"),
        ("D", "clinician"),
        ("Dr.", "clinician"),
        ("clinician", "clinician"),
        ("doctor_2", "clinician"),
        ("patient", "patient"),
        ("p", "patient"),
        ("Pt", "patient"),
        ("patient_guest", "patient"),
        ("nurse", None),
        ("guest_family", None),
        ("", None),
    ],
)
def test_role_for_label(label: str, role: str | None) -> None:
    assert role_for_label(label) == role


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[doctor] hello\n[nurse] hi", 2),
        ("D: hello\n\nP: hi\n\nN: vitals are fine", 5),
        ("hello there\n[doctor] hi", 1),
    ],
)
def test_errors_name_the_line(text: str, line: int) -> None:
    with pytest.raises(TranscriptFormatError, match=rf"example\.txt, line {line}:"):
        parse_dialogue(text, source="example.txt")


def test_no_turns_is_an_error() -> None:
    with pytest.raises(TranscriptFormatError, match="no speaker turns"):
        parse_dialogue("\n  \n")


@needs_shared
def test_real_aci_bench_row() -> None:
    with (SHARED_DATA / "aci-bench" / "valid.csv").open(newline="", encoding="utf-8") as handle:
        row = next(csv.DictReader(handle))
    lines = [line for line in row["dialogue"].splitlines() if line.strip()]
    labelled = [line for line in lines if line.startswith("[")]
    turns = parse_dialogue(row["dialogue"], source=row["encounter_id"])
    assert len(turns) == len(labelled)  # unlabelled lines joined the turn above
    assert {turn.role for turn in turns} == {"clinician", "patient"}
    assert turns[0].role == "clinician"
    assert not any("[" in turn.text for turn in turns)


@needs_shared
def test_real_osce_transcript() -> None:
    path = SHARED_DATA / "realspeech" / "osce_fareez2022" / "CAR0002.txt"
    turns = parse_dialogue(path.read_text(encoding="utf-8"), source=str(path))
    assert len(turns) == 83
    assert turns[0] == DialogueTurn("clinician", "What brings you in here today?")
    assert turns[1].role == "patient"
    assert all(turn.text for turn in turns)


def test_detokenize_changes_spacing_only() -> None:
    from ambient.transcript.dialogue import detokenize

    assert detokenize("i do n't know , it 's   been two days .") == "i don't know, it's been two days."
    assert detokenize("blood pressure 150/90 .") == "blood pressure 150/90."
