"""Retention, purge, `ambient keys`, access by another user, and a PHI canary over a whole run."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from ambient.cli.main import main
from ambient.config import resolve_paths
from ambient.ehr.audit import AuditLog
from ambient.ehr.outbox import Outbox
from ambient.protect.outputs import read_output, remember_batch_dir, write_output
from ambient.protect.purge import parse_age
from ambient.protect.sealed import Protector
from ambient.streaming.events import CommittedWords
from ambient.streaming.journal import (
    AUDIO,
    AUDIO_RELEASED,
    EncounterJournal,
    encounters_dir,
    read_journal,
    rebuild_transcript,
)
from ambient.transcript.serialise import transcript_sha256
from ambient.types import Word
from tests.ehr_peers import context_for, free_port, make_note
from tests.reliability import record
from tests.test_cli import run_unprivileged, shared_tmp, unix_root_only

__all__ = ["shared_tmp"]  # the fixture, shared with test_cli

CANARY_NAME = "Zebediah Quarterfield"
CANARY_MRN = "MRN7734219"
CANARY_DOB = "1947-03-29"


def journal(encounter_id: str, closed: bool = True, seconds: float = 1.0) -> Path:
    paths = resolve_paths()
    j = EncounterJournal.create(
        encounters_dir(paths), encounter_id, metadata={"patient_identifier": CANARY_MRN}
    )
    j.append_audio(np.full(int(16000 * seconds), 0.2, dtype=np.float32))
    words = (Word(CANARY_NAME.split()[0], 0.1, 0.3, 0.9), Word("born", 0.3, 0.4, 0.9))
    j.append_events([CommittedWords((*words, Word(CANARY_DOB, 0.4, 0.6, 0.9)))])
    if closed:
        j.close()
    return j.folder


def audit_events() -> list[dict[str, object]]:
    return AuditLog.for_paths(resolve_paths()).entries()


# ---- retention: audio goes once the note is delivered --------------------------------------------


def test_audio_is_deleted_once_every_delivery_succeeded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = resolve_paths()
    delivered = journal("enc-deliver")
    waiting = journal("enc-waiting")
    refused = journal("enc-refused")
    before = rebuild_transcript(read_journal(delivered))
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the inbox folder should be")
    with Outbox.for_paths(paths) as outbox:
        outbox.enqueue(
            make_note(tmp_path, "enc-deliver"), context_for("enc-deliver"), f"inbox:{tmp_path / 'ehr'}"
        )
        outbox.enqueue(
            make_note(tmp_path, "enc-waiting"), context_for("enc-waiting"), f"mllp://127.0.0.1:{free_port()}"
        )
        outbox.enqueue(
            make_note(tmp_path, "enc-refused"), context_for("enc-refused"), f"inbox:{blocker / 'x'}"
        )
    assert main(["outbox", "drain"]) != 0  # not everything went: the exit code says so
    capsys.readouterr()
    assert not (delivered / AUDIO).exists() and (delivered / AUDIO_RELEASED).exists()
    assert (waiting / AUDIO).exists()  # the peer is down: the note may still need redoing
    assert (refused / AUDIO).exists()  # dead-lettered: not accepted
    # the words stay (the note's evidence) and the rebuilt transcript is the same one
    after = read_journal(delivered)
    assert after.audio_s == pytest.approx(1.0) and after.words[0].word == "Zebediah"
    assert transcript_sha256(rebuild_transcript(after)) == transcript_sha256(before)
    [deleted] = [e for e in audit_events() if e["event"] == "audio.deleted"]
    assert deleted["ids"] == {"encounter_id": "enc-deliver", "reason": "delivered"}
    assert deleted["inputs"] == {
        "audio": json.loads((delivered / AUDIO_RELEASED).read_text())["audio_sha256"]
    }


def test_inbox_only_delivery_and_keep_audio(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = journal("enc-keep")
    monkeypatch.setenv("AMBIENT_RETENTION_KEEP_AUDIO", "true")
    assert main(["outbox", "drain"]) == 0
    assert (kept / AUDIO).exists()
    monkeypatch.delenv("AMBIENT_RETENTION_KEEP_AUDIO")
    open_one = journal("enc-open", closed=False)  # still recording: never touched
    assert main(["outbox", "drain"]) == 0  # no outbox rows: the inbox file was the delivery
    capsys.readouterr()
    assert not (kept / AUDIO).exists() and (open_one / AUDIO).exists()


# ---- purge -------------------------------------------------------------------------------------


def _age(folder: Path, days: float) -> None:
    stamp = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="seconds")
    closed = folder / "closed.json"
    if closed.exists():
        closed.write_text(json.dumps({"closed_at": stamp}))
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "started_at": stamp}))


def test_purge_dry_run_then_purge_with_an_audit_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = resolve_paths()
    old, recent, interrupted = journal("enc-old"), journal("enc-recent"), journal("enc-crashed", closed=False)
    _age(old, 40)
    _age(interrupted, 40)
    inbox = paths.default_inbox
    with Outbox.for_paths(paths) as outbox:
        done, _ = outbox.enqueue(make_note(tmp_path, "enc-old"), context_for("enc-old"), f"inbox:{inbox}")
        outbox.drain()
        waiting, _ = outbox.enqueue(
            make_note(tmp_path, "enc-recent"), context_for("enc-recent"), f"mllp://127.0.0.1:{free_port()}"
        )
    long_ago = (datetime.now(UTC) - timedelta(days=40)).isoformat(timespec="seconds")
    with sqlite3.connect(paths.data_dir / "outbox.sqlite3") as db:
        db.execute("UPDATE items SET updated_at = ?", (long_ago,))  # both rows old; one still pending
    old_inbox = sorted(inbox.glob("enc-old.*"))
    assert len(old_inbox) == 3
    for file in old_inbox:
        os.utime(file, (datetime.now().timestamp() - 40 * 86400,) * 2)
    out = tmp_path / "batch-out"
    for name, days in (("visit-old.aaa", 40), ("visit-new.bbb", 1)):
        write_output(Protector.for_paths(), out / name / "note.md", f"# Note\n{CANARY_NAME}\n", plain=False)
        marker = out / ".ambient" / "done" / f"{name}.json"
        marker.parent.mkdir(parents=True, exist_ok=True)
        finished = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="seconds")
        marker.write_text(json.dumps({"folder": name, "finished_at": finished}))
    remember_batch_dir(paths, out)

    assert main(["purge", "--older-than", "30d", "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    expected = {"journals": 1, "outbox_rows": 1, "batch_outputs": 1, "inbox_files": 3, "kept_interrupted": 1}
    assert {k: plan[k] for k in expected} == expected and plan["dry_run"] is True
    assert (
        old.exists()
        and (out / "visit-old.aaa").exists()
        and not any(e["event"] == "data.purged" for e in audit_events())
    )

    assert main(["purge", "--older-than", "30d"]) == 0
    said = capsys.readouterr().out
    assert "removed (older than 30d): 1 journals, 1 outbox rows, 1 batch outputs, 3 inbox files" in said
    assert not old.exists() and recent.exists() and interrupted.exists()
    assert not (out / "visit-old.aaa").exists() and (out / "visit-new.bbb" / "note.md").exists()
    assert (out / ".ambient" / "done" / "visit-old.aaa.json").exists()  # a re-run does not redo it
    assert not any(f.exists() for f in old_inbox)
    with Outbox.for_paths(paths) as outbox:
        assert [i.id for i in outbox.items()] == [waiting.id]  # the undelivered note stays
    [entry] = [e for e in audit_events() if e["event"] == "data.purged"]
    assert entry["ids"] == {
        "older_than": "30d", "journals": "1", "outbox_rows": "1", "batch_outputs": "1",
        "inbox_files": "3", "kept_interrupted": "1",
    }  # fmt: skip
    [manifest] = (paths.data_dir / "protect" / "purges").glob("*.json")
    listed = json.loads(manifest.read_text())["removed"]
    assert {(r["what"], r["id"]) for r in listed} >= {("journal", "enc-old"), ("outbox_row", str(done.id))}
    assert all(len(r["sha256"]) == 64 for r in listed)
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o600
    for text in (manifest.read_text(), (paths.data_dir / "audit" / "audit.jsonl").read_text()):
        for canary in (CANARY_NAME, CANARY_MRN, CANARY_DOB, "Zebediah"):
            assert canary not in text
    assert main(["audit", "verify"]) == 0
    capsys.readouterr()


def test_ages() -> None:
    assert parse_age("30d") == timedelta(days=30) and parse_age(" 12h ") == timedelta(hours=12)
    assert parse_age("2w") == timedelta(weeks=2) and parse_age("90m") == timedelta(minutes=90)
    for bad in ("30", "d", "-3d", "3y"):
        with pytest.raises(Exception, match="is not like 30d"):
            parse_age(bad)


def test_purge_bad_age_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["purge", "--older-than", "a month"]) == 2
    assert "is not like 30d" in capsys.readouterr().err


# ---- keys CLI ----------------------------------------------------------------------------------


def test_keys_status_and_rotate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["keys"] == []
    folder = journal("enc-k")
    assert main(["keys", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    [key] = status["keys"]
    assert key["state"] == "active" and key["store"] == "file" and "material" not in json.dumps(status)
    assert main(["keys", "rotate"]) == 0
    said = capsys.readouterr().out
    assert "(new)" in said and f"retired {key['id']}" in said and "re-sealed 3 journal records" in said
    assert main(["keys", "status"]) == 0
    listing = capsys.readouterr().out
    assert key["id"] not in listing and "active" in listing
    assert read_journal(folder).words[0].word == "Zebediah"


@pytest.mark.reliability
@unix_root_only
def test_another_user_cannot_read_the_keys_or_the_data(shared_tmp: Path) -> None:
    home = shared_tmp / "home"
    env_home = os.environ["AMBIENT_HOME"]
    os.environ["AMBIENT_HOME"] = str(home)
    try:
        assert main(["keys", "rotate"]) == 0  # root makes a key: config dir 0700, key file 0600
        folder = journal("enc-private")
    finally:
        os.environ["AMBIENT_HOME"] = env_home
    assert stat.S_IMODE((home / "config").stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "config" / "keys.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for argv in (["keys", "status"], ["purge", "--older-than", "1s", "--dry-run"], ["outbox", "list"]):
        code, err = run_unprivileged(argv, home)
        assert code in (2, 3, 9), (argv, err)
        assert "ermission denied" in err and "run ambient as the user who owns it" in err, err
    record("access", "another user refused the keys and the data", injected=3, survived=3)


# ---- a canary in an encounter never reaches sealed outputs ----------------------------------------


def _hits(root: Path, needles: tuple[bytes, ...], skip: Path | None = None) -> list[str]:
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if skip is not None and skip in path.parents:
            continue
        data = path.read_bytes().lower()
        found += [f"{path.relative_to(root)}: {n.decode()}" for n in needles if n in data]
    return found


@pytest.mark.reliability
def test_canary_is_in_no_file_except_the_plain_inbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Journal, outbox, rotation and purge with canary PHI; then grep everything ambient wrote."""
    paths = resolve_paths()
    home = Path(os.environ["AMBIENT_HOME"])
    folder = journal("enc-canary")
    extra = f"[patient] My name is {CANARY_NAME}, {CANARY_MRN}, born {CANARY_DOB}.\n"
    note = make_note(tmp_path, "enc-canary", extra=extra)
    with Outbox.for_paths(paths) as outbox:
        outbox.enqueue(note, context_for("enc-canary"), f"mllp://127.0.0.1:{free_port()}")
        outbox.drain()  # a failed try: the log and the row's error are written too
    write_output(Protector.for_paths(), tmp_path / "out" / "v.1" / "note.md", extra, plain=False)
    remember_batch_dir(paths, tmp_path / "out")
    assert main(["keys", "rotate"]) == 0
    assert main(["deliver", str(_note_file(tmp_path, note)), "--to", f"inbox:{paths.default_inbox}"]) == 0
    capsys.readouterr()
    needles = tuple(c.lower().encode() for c in (CANARY_NAME, CANARY_MRN, CANARY_DOB, "Quarterfield"))
    inbox_hits = _hits(paths.default_inbox, needles)
    assert inbox_hits  # the plain hand-off to the EHR does hold it: the grep can find it
    hits = _hits(home, needles, skip=paths.default_inbox) + _hits(tmp_path / "out", needles)
    record("phi", "canary in sealed outputs", canary_hits=len(hits), detail=f"{len(needles)} canary strings")
    assert hits == []
    assert read_output(tmp_path / "out" / "v.1" / "note.md") == extra and folder.exists()


def _note_file(tmp_path: Path, note: object) -> Path:
    """The note as `ambient note --format json` writes it, sealed like a batch output."""
    from ambient.notes.render import note_to_json

    path = tmp_path / "out" / "v.2" / "note.json"
    write_output(Protector.for_paths(), path, json.dumps(note_to_json(note)), plain=False)  # type: ignore[arg-type]
    return path


@pytest.mark.model
@pytest.mark.reliability
def test_batch_outputs_are_sealed_unless_plain(
    speech_wav: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    shutil.copy(speech_wav, in_dir / "visit.wav")
    assert main(["batch", str(in_dir), "--out", str(tmp_path / "sealed"), "--json"]) == 0
    assert main(["batch", str(in_dir), "--out", str(tmp_path / "plain"), "--plain", "--json"]) == 0
    capsys.readouterr()
    needles = (b"metformin", b"blood pressure", b"chest")
    plain_hits = _hits(tmp_path / "plain", needles)
    assert plain_hits  # what the recording says is there, in the plain run
    hits = _hits(tmp_path / "sealed", needles)
    record(
        "phi",
        "spoken canary in sealed batch outputs",
        canary_hits=len(hits),
        detail=f"{len(needles)} canary strings",
    )
    assert hits == []
    [folder] = [p for p in (tmp_path / "sealed").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())
    assert "blood pressure" in read_output(folder / "transcript.txt").lower()
    assert main(["note", str(folder / "transcript.json"), "--format", "json"]) == 0  # reads it sealed
    assert json.loads(capsys.readouterr().out)["encounter_id"]
