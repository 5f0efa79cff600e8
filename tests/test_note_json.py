"""note_from_json is the exact inverse of note_to_json, and a bad file gets a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ambient.errors import InputError
from ambient.notes.render import load_note_file, note_from_json, note_sha256, note_to_json
from tests.ehr_peers import make_note


def test_round_trip_keeps_the_note_and_its_hash(tmp_path: Path) -> None:
    note = make_note(tmp_path, "enc-rt")
    again = note_from_json(json.loads(json.dumps(note_to_json(note))))
    assert again == note and note_sha256(again) == note_sha256(note)
    path = tmp_path / "n.json"
    path.write_text(json.dumps(note_to_json(note)))
    assert load_note_file(path) == note


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("provenance"), "missing field 'provenance'"),
        (lambda d: d.update(format="other"), "format is 'other'"),
        (lambda d: d["sections"][0].update(title=3), r"field 'sections\[0\]\.title' must be str"),
        (lambda d: d["provenance"]["template"].pop("sha256"), "provenance.template.sha256"),
    ],
)
def test_bad_notes_name_the_field(tmp_path: Path, mutate: object, message: str) -> None:
    data = note_to_json(make_note(tmp_path, "enc-bad"))
    data = json.loads(json.dumps(data))
    mutate(data)  # type: ignore[operator]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=message) as info:
        load_note_file(path)
    assert str(path) in str(info.value)


def test_unreadable_or_non_json_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_note_file(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_note_file(tmp_path / "x.json")
