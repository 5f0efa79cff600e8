"""A corrupt or truncated journal or outbox database on start: detected, quarantined, reported.

The agent is the real process with the real model: next to two damaged journals (a torn
``meta.json``, a ``meta.json`` that is not a journal's) lies one sound interrupted encounter, and
the outbox database is a real one cut short. After a start the sound encounter must be a
delivered note, the damaged things must be under ``quarantine/`` with a reason, in the audit
trail, in the log, in ``ambient encounter status`` and in ``ambient outbox list``.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from ambient.audio.decode import iter_blocks
from ambient.cli.main import main
from ambient.config import resolve_paths
from ambient.ehr.audit import AuditLog
from ambient.ehr.outbox import Outbox
from ambient.errors import InputError
from ambient.quarantine import list_quarantined, sqlite_damage
from ambient.streaming.journal import EncounterJournal, encounters_dir, find_interrupted
from tests.ehr_peers import context_for, make_note
from tests.reliability import record
from tests.test_agent import free_port, start_agent, stop_agent

pytestmark = pytest.mark.reliability


def _real_outbox_db(home: Path, tmp: Path) -> Path:
    """A real outbox with one pending note (to a target that is never reached)."""
    note = make_note(tmp, "enc-old")
    with Outbox(home / "data" / "outbox.sqlite3") as outbox:
        outbox.enqueue(note, context_for("enc-old"), f"inbox:{tmp / 'never'}")
    return home / "data" / "outbox.sqlite3"


def test_sqlite_damage_tells_sound_from_garbage_and_truncated(tmp_path: Path, ambient_home: Path) -> None:
    db = _real_outbox_db(ambient_home, tmp_path)
    assert sqlite_damage(db) is None
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not sqlite at all" * 300)
    assert sqlite_damage(garbage) == "not_a_database"
    data = db.read_bytes()
    cut = tmp_path / "cut.sqlite3"
    cut.write_bytes(data[: len(data) // 2])
    assert sqlite_damage(cut) is not None
    assert sqlite_damage(tmp_path / "absent.sqlite3") is None


def test_damaged_journal_raises_without_a_handler_and_is_handed_over_with_one(ambient_home: Path) -> None:
    paths = resolve_paths()
    EncounterJournal.create(encounters_dir(paths), "enc-sound")
    bad = encounters_dir(paths) / "enc-torn"
    bad.mkdir(parents=True)
    (bad / "meta.json").write_text('{"format": "ambient-jour')
    with pytest.raises(InputError, match=r"meta\.json"):
        find_interrupted(paths)
    handed: list[str] = []
    found = find_interrupted(paths, lambda folder, exc: handed.append(folder.name))
    assert [r.encounter_id for r in found] == ["enc-sound"] and handed == ["enc-torn"]


def test_agent_start_quarantines_damage_and_recovers_the_rest(
    tmp_path: Path, speech_wav: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("AMBIENT_HOME", str(home))
    paths = resolve_paths()
    # a real outbox with a pending note, then truncated as a full disk or a bad copy would leave it
    db = _real_outbox_db(home, tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    # one sound interrupted encounter: audio journaled, nothing committed yet, never closed
    journal = EncounterJournal.create(
        encounters_dir(paths), "enc-sound", None, {"patient_reference": "Patient/3"}
    )
    for block in iter_blocks(speech_wav, 1.0):
        journal.append_audio(block.samples)
    journal.sync()
    # two damaged ones
    torn = encounters_dir(paths) / "enc-torn"
    torn.mkdir()
    (torn / "meta.json").write_text('{"format": "ambient-journal-1", "encounter_')
    (torn / "audio.pcm").write_bytes(b"\0" * 3200)
    alien = encounters_dir(paths) / "enc-alien"
    alien.mkdir()
    (alien / "meta.json").write_text("[1, 2, 3]")

    second_inbox = tmp_path / "ehr-inbox"
    port = free_port()
    agent = start_agent(home, port, {"AMBIENT_DELIVERY_TARGETS": f"inbox:{second_inbox}"})
    try:
        monkeypatch.setenv("AMBIENT_AGENT_PORT", str(port))
        assert main(["encounter", "status"]) == 0
        status = capsys.readouterr().out
    finally:
        stop_agent(agent)
    log = agent.log.read_text()

    moved = {q.name: q for q in list_quarantined(paths)}
    assert set(moved) == {"enc-torn", "enc-alien", "outbox.sqlite3"}
    for q in moved.values():
        assert Path(q.folder).is_dir() and (q.kind == "outbox" or not Path(q.original).exists())
        assert f"quarantined {q.kind} {q.name}" in status
        assert f"{q.kind} {q.name} is damaged ({q.reason})" in log
    assert (Path(moved["enc-torn"].folder) / "enc-torn" / "audio.pcm").stat().st_size == 3200  # kept whole
    assert moved["outbox.sqlite3"].reason in {"malformed", "quick_check_failed", "not_a_database"}
    # the sound encounter became a note, in the inbox and through a fresh outbox
    assert "interrupted encounter enc-sound: finalised" in status
    assert (home / "data" / "inbox" / "enc-sound.note.json").is_file()
    assert (second_inbox / "enc-sound.note.json").is_file()
    with Outbox.for_paths(paths) as outbox:
        assert [(i.encounter_id, i.state) for i in outbox.items()] == [("enc-sound", "delivered")]
    audit = [e for e in AuditLog.for_paths(paths).entries() if e["event"] == "storage.quarantined"]
    assert sorted(e["ids"]["name"] for e in audit) == ["enc-alien", "enc-torn", "outbox.sqlite3"]
    AuditLog.for_paths(paths).verify()
    assert main(["outbox", "list"]) == 0
    listed = capsys.readouterr().out
    assert "quarantined outbox database" in listed and moved["outbox.sqlite3"].folder in listed
    # a second start finds nothing new to quarantine: the damage was moved, not left to trip again
    again = start_agent(home, port)
    stop_agent(again)
    assert len(list_quarantined(paths)) == 3
    record("faults", "corrupt journal/outbox on start", injected=3, survived=3, detail="2 journals, 1 outbox")
    assert (
        json.loads((home / "data" / "inbox" / "enc-sound.note.json").read_text())["encounter_id"]
        == "enc-sound"
    )
