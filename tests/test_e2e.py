"""End to end, as a new user runs it: `ambient demo` with espeak-ng speech and the real tiny.en."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ambient.cli.main import main
from tests.conftest import needs_espeak

pytestmark = [pytest.mark.model, needs_espeak]


def test_demo_renders_transcribes_drafts_and_delivers(
    ambient_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    inbox = ambient_home / "data" / "inbox"
    assert str(inbox) in out
    note_md = next(inbox.glob("*.note.md"))
    note = json.loads(next(inbox.glob("*.note.json")).read_text())
    transcript = json.loads(next((ambient_home / "data" / "samples").glob("*.transcript.json")).read_text())
    assert not list(inbox.glob(".*tmp"))

    text = " ".join(s["text"] for s in transcript["segments"]).lower()
    for term in ("chest pain", "blood pressure", "penicillin", "angina", "ecg", "follow up"):
        assert term in text, f"{term!r} missing from the transcript"

    sections = {s["key"]: " ".join(x["text"] for x in s["sentences"]).lower() for s in note["sections"]}
    assert "chest pain" in sections["subjective"]
    assert "penicillin" in sections["subjective"]
    assert "blood pressure 150/90 mmhg" in sections["objective"]
    assert "lungs are clear" in sections["objective"]
    assert "angina" in sections["assessment"]
    assert "ecg" in sections["plan"] and "follow up" in sections["plan"]

    # Every sentence points at real transcript segments, inside their time range.
    segments = {s["id"]: s for s in transcript["segments"]}
    for section in note["sections"]:
        for sentence in section["sentences"]:
            for span in sentence["evidence"]:
                seg = segments[span["segment_id"]]
                assert seg["start_s"] - 0.01 <= span["start_s"] <= span["end_s"] <= seg["end_s"] + 0.01
    prov = note["provenance"]
    assert prov["asr_model"]["sha256"] == transcript["header"]["model"]["sha256"]
    assert prov["input_sha256"] == transcript["header"]["source_sha256"]
    assert note_md.read_text().startswith("# SOAP note")
