"""Replay an earlier batch under a new template or model, and diff the two runs.

Real runs end to end: espeak-ng speech, the packaged tiny.en and base models, the clinical
drafter and our clinical NLP. Only the pure word-error core is also checked on fixed strings.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ambient.batch.diff import word_errors
from ambient.cli.main import main
from ambient.config import resolve_paths
from ambient.protect.outputs import read_output
from tests.audio_helpers import encode

pytestmark = pytest.mark.model


def test_word_errors_core() -> None:
    errors = word_errors("The pain, is bad today.", "the pain was bad")
    assert (errors.edits, errors.reference_words) == (2, 5)  # "is"→"was", "today" deleted
    assert word_errors("", "anything").wer is None
    assert word_errors("same words", "Same, words!").edits == 0


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = main(argv)
    out = capsys.readouterr().out
    return code, json.loads(out)


def _markers(out: Path) -> list[dict[str, object]]:
    done = out / ".ambient" / "done"
    return [json.loads(p.read_text()) for p in sorted(done.glob("*.json"))]


@pytest.fixture
def first_run(tmp_path: Path, speech_wav: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(speech_wav, folder / "visit-a.wav")
    samples = np.frombuffer(speech_wav.read_bytes()[44:], dtype=np.int16).astype(np.float32) / 32768
    encode(folder / "visit-b.flac", samples[: 16000 * 8], 16000)
    out = tmp_path / "soap-tiny"
    code, summary = _run(["batch", str(folder), "--out", str(out), "--json"], capsys)
    assert code == 0 and summary["succeeded"] == 2
    return folder, out


def test_replay_new_template_then_diff(
    first_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, old = first_run
    new = tmp_path / "hp-tiny"
    code, summary = _run(["replay", str(old), "--template", "hp", "--out", str(new), "--json"], capsys)
    assert code == 0 and summary["succeeded"] == 2
    old_markers, new_markers = _markers(old), _markers(new)
    assert [m["folder"] for m in new_markers] == [m["folder"] for m in old_markers]
    for before, after in zip(old_markers, new_markers, strict=True):
        assert after["transcribed"] is False  # same model: re-drafted from the stored transcript
        assert after["transcript_sha256"] == before["transcript_sha256"]
        assert "history_and_physical" in after["template"] and "soap" in before["template"]

    # Re-running the same replay resumes: nothing left to do.
    code, again = _run(["replay", str(old), "--template", "hp", "--out", str(new), "--json"], capsys)
    assert code == 0 and again["skipped_already_done"] == 2 and again["succeeded"] == 0

    # A clinician-visible change in one new note: a medication and a problem the old note lacked.
    folder = new / str(new_markers[0]["folder"])
    note = json.loads(read_output(folder / "note.json"))  # sealed at rest
    section = next(s for s in note["sections"] if s["sentences"])
    section["sentences"].append(
        {"text": "Started lisinopril 10 mg daily for hypertension.", "evidence": [], "speaker": None}
    )
    (folder / "note.json").write_text(json.dumps(note))

    code, report = _run(["diff", str(old), str(new), "--json"], capsys)
    assert code == 0
    total = report["total"]
    assert isinstance(total, dict)
    assert total["encounters_compared"] == 2 and total["wer"] == 0.0 and total["transcripts_changed"] == 0
    assert total["medications_gained"] == {"lisinopril": 1}
    assert "hypertension" in total["problems_gained"]
    assert total["sections_added"] and total["sections_removed"]  # SOAP and H&P sections differ
    assert any("soap" in v for v in total["old_versions"])
    assert any("history_and_physical" in v for v in total["new_versions"])
    encounters = report["encounters"]
    assert isinstance(encounters, list)
    first = next(e for e in encounters if e["folder"] == folder.name)
    assert first["medications_gained"] == ["lisinopril"] and first["changed"] is True
    assert first["old"]["transcript_sha256"] == first["new"]["transcript_sha256"]
    assert first["old"]["note_sha256"] != first["new"]["note_sha256"]
    assert main(["diff", str(old), str(new)]) == 0
    text = capsys.readouterr().out
    assert "+lisinopril" in text and "total" in text

    # Lineage from the audit trail: every side drafted here is recorded there, audio → transcript →
    # note; the note edited after drafting is named as differing from the trail.
    trail = report["audit_trail"]
    assert isinstance(trail, dict) and trail["verified"] is True and trail["entries"] >= 8
    assert total["lineage_linked"] == 3 and total["lineage_problems"] == 1
    edited_marker = next(m for m in new_markers if m["folder"] == folder.name)
    lineage = first["lineage"]
    assert lineage["old"]["linked"] is True and lineage["old"]["problem"] is None
    assert lineage["old"]["audio_sha256"] == first["sha256"]
    assert lineage["old"]["transcript"]["versions"]["asr_model"] == "tiny.en"
    assert "soap" in lineage["old"]["note"]["versions"]["template"]
    assert lineage["old"]["note"]["from_transcript"] == lineage["old"]["transcript"]["sha256"]
    assert lineage["new"]["transcript"]["trail"] == "recorded"
    assert lineage["new"]["note"]["trail"] == "differs" and lineage["new"]["linked"] is False
    assert lineage["new"]["note"]["sha256"] == first["new"]["note_sha256"]  # what is on disk
    assert edited_marker["note_sha256"] in lineage["new"]["note"]["trail_sha256"]  # what was drafted
    assert lineage["new"]["problem"] == "note on disk differs from the trail"
    assert "lisinopril" not in json.dumps(report["audit_trail"]) + json.dumps(lineage)  # ids and hashes
    other = next(e for e in encounters if e["folder"] != folder.name)
    assert other["lineage"]["old"]["linked"] and other["lineage"]["new"]["linked"]
    said = " ".join(text.split())  # as read, whatever the terminal's width
    assert f"lineage {folder.name}: new: note on disk differs from the trail" in said
    assert "chain verified" in said

    # Another machine's (here: an empty) trail has no entry for these encounters: said so.
    empty = tmp_path / "no-trail"
    code, report = _run(["diff", str(old), str(new), "--json", "--audit-dir", str(empty)], capsys)
    assert code == 0
    problems = [e["lineage"][side]["problem"] for e in report["encounters"] for side in ("old", "new")]
    assert problems == ["no audit trail entry for this audio"] * 4

    # A trail that fails verification is reported as such, with the lineage it still holds.
    copied = tmp_path / "edited-trail"
    shutil.copytree(resolve_paths().data_dir / "audit", copied)
    lines = (copied / "audit.jsonl").read_text().splitlines()
    entry = json.loads(lines[0])
    entry["ids"]["encounter_id"] = "enc-forged"
    lines[0] = json.dumps(entry, sort_keys=True)
    (copied / "audit.jsonl").write_text("\n".join(lines) + "\n")
    code, report = _run(["diff", str(old), str(new), "--json", "--audit-dir", str(copied)], capsys)
    assert code == 0 and report["audit_trail"]["verified"] is False
    assert "was edited" in report["audit_trail"]["error"]
    assert report["total"]["lineage_linked"] == 3


def test_replay_new_model_needs_the_audio(
    first_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    in_dir, old = first_run
    new = tmp_path / "soap-base"
    code, summary = _run(["replay", str(old), "--model", "base", "--out", str(new), "--json"], capsys)
    assert code == 0 and summary["succeeded"] == 2
    assert all(m["transcribed"] is True and m["model"] == "base" for m in _markers(new))
    code, report = _run(["diff", str(old), str(new), "--json"], capsys)
    total = report["total"]
    assert isinstance(total, dict)
    assert total["reference_words"] > 20 and total["wer"] is not None and total["wer"] < 0.5
    assert any("model tiny.en" in v for v in total["old_versions"])
    assert any("model base" in v for v in total["new_versions"])

    # The audio is gone: a new model cannot be replayed (listed as failed, with the reason);
    # a new template still can, from the stored transcripts.
    for path in in_dir.iterdir():
        path.unlink()
    code, summary = _run(
        ["replay", str(old), "--model", "base", "--out", str(tmp_path / "x"), "--json"], capsys
    )
    assert code == 1 and summary["failed"] == 2 and summary["succeeded"] == 0
    failures = [json.loads(x) for x in (tmp_path / "x" / "failures.jsonl").read_text().splitlines()]
    assert all("gone or changed" in f["reason"] for f in failures)
    code, summary = _run(
        ["replay", str(old), "--template", "progress", "--out", str(tmp_path / "y"), "--json"], capsys
    )
    assert code == 0 and summary["succeeded"] == 2


def test_replay_and_diff_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(tmp_path), "--out", str(tmp_path / "new")]) == 2
    assert main(["diff", str(tmp_path), str(tmp_path)]) == 2
    assert "holds no finished encounters" in capsys.readouterr().err
