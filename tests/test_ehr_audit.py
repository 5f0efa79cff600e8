"""The audit trail: a hash chain that names the entry someone edited, removed or reordered."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from ambient.cli.main import main
from ambient.config import resolve_paths
from ambient.ehr import lineage
from ambient.ehr.audit import AuditError, AuditLog, entry_hash
from ambient.notes.render import note_sha256
from ambient.transcript.serialise import transcript_sha256
from tests.ehr_peers import make_note


def _trail(folder: Path, count: int = 5) -> AuditLog:
    log = AuditLog(folder)
    for i in range(count):
        lineage.encounter_started(log, f"enc-{i}")
    return log


def _lines(log: AuditLog) -> list[str]:
    return log.path.read_text().splitlines()


def test_a_whole_trail_verifies_and_chains(tmp_path: Path) -> None:
    log = _trail(tmp_path)
    result = log.verify()
    entries = log.entries()
    assert result.entries == 5 and result.head_seq == 5
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert all(b["prev"] == a["hash"] == entry_hash(a) for a, b in itertools.pairwise(entries))


def test_an_edited_entry_is_named(tmp_path: Path) -> None:
    log = _trail(tmp_path)
    lines = _lines(log)
    entry = json.loads(lines[2])
    entry["ids"]["encounter_id"] = "enc-forged"
    lines[2] = json.dumps(entry)
    log.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(AuditError, match=r"line 3 \(seq 3, encounter.started\): .* edited"):
        log.verify()


def test_a_removed_entry_is_named(tmp_path: Path) -> None:
    log = _trail(tmp_path)
    lines = _lines(log)
    del lines[1]
    log.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(AuditError, match=r"line 2 \(seq 3.*removed or reordered"):
        log.verify()


def test_reordered_entries_are_named(tmp_path: Path) -> None:
    log = _trail(tmp_path)
    lines = _lines(log)
    lines[1], lines[2] = lines[2], lines[1]
    log.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(AuditError, match=r"line 2 \(seq 3"):
        log.verify()


def test_removing_the_newest_entries_is_caught_by_the_head(tmp_path: Path) -> None:
    log = _trail(tmp_path)
    log.path.write_text("\n".join(_lines(log)[:3]) + "\n")
    with pytest.raises(AuditError, match=r"entries 4..5 were removed"):
        log.verify()


def test_cli_verify_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = AuditLog.for_paths(resolve_paths())
    for i in range(3):
        lineage.encounter_started(log, f"enc-{i}")
    assert main(["audit", "verify"]) == 0
    assert "3 entries" in capsys.readouterr().out
    lines = _lines(log)
    log.path.write_text(lines[0] + "\n" + lines[2] + "\n")
    assert main(["audit", "verify"]) == 8
    assert "line 2 (seq 3" in capsys.readouterr().err


def test_lineage_follows_a_note_and_refuses_text(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    note = make_note(tmp_path, "enc-lin")
    paths = resolve_paths()
    from ambient.config import load_settings
    from ambient.pipeline import Pipeline

    pipeline = Pipeline(load_settings(paths), paths)
    transcript = pipeline.load_input(tmp_path / "enc-lin.txt", "enc-lin")
    lineage.encounter_started(log, "enc-lin", source="file")
    lineage.transcript_committed(log, transcript, transcript_sha256(transcript))
    drafted = lineage.note_drafted(log, note)
    accepted = lineage.note_accepted_in_editor(log, "enc-lin", note_sha256(note), "tinymce", "ab" * 32)
    assert (
        drafted["inputs"]["transcript"] == note.provenance.transcript_sha256 == transcript_sha256(transcript)
    )
    assert drafted["outputs"]["note"] == accepted["inputs"]["note"] == note_sha256(note)
    assert drafted["versions"]["template"] == "ambient.soap_note"
    log.verify()
    with pytest.raises(AuditError, match="without spaces"):
        log.record("note.drafted", ids={"patient": "Doe, Jane"})
    with pytest.raises(AuditError, match="sha256"):
        log.record("note.drafted", outputs={"note": "chest pain for two days"})
    with pytest.raises(AuditError, match="unknown audit event"):
        log.record("note.printed")
    assert len(log.entries()) == 4
