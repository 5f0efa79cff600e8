"""The outbox against real peers: idempotency, backoff, dead letters, restarts, and the CLI."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ambient.cli.main import main
from ambient.config import resolve_paths
from ambient.ehr.audit import AuditLog
from ambient.ehr.context import context_to_dict
from ambient.ehr.options import DeliveryOptions
from ambient.ehr.outbox import LEASE_S, Outbox
from ambient.notes.render import note_to_json
from ambient.types import EncounterContext
from tests.ehr_peers import MllpListener, SekmetServer, context_for, free_port, make_note

FAST = DeliveryOptions(backoff_base_s=0.05, backoff_max_s=0.2, max_attempts=50, fhir_timeout_s=5)


@pytest.fixture(scope="module")
def fhir_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SekmetServer]:
    server = SekmetServer(tmp_path_factory.mktemp("sekmet-outbox"))
    server.start()
    yield server
    server.stop()


def test_same_note_and_target_is_one_item(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    note = make_note(tmp_path, "enc-idem")
    first, created = outbox.enqueue(note, context_for("enc-idem"), f"inbox:{tmp_path / 'in'}")
    again, created_again = outbox.enqueue(note, context_for("enc-idem"), f"inbox:{tmp_path / 'in'}/")
    other, _ = outbox.enqueue(note, context_for("enc-idem"), f"inbox:{tmp_path / 'other'}")
    assert created and not created_again and first.id == again.id != other.id
    assert len(outbox.items()) == 2


def test_backoff_is_exponential_capped_and_jittered(tmp_path: Path) -> None:
    options = DeliveryOptions(backoff_base_s=2, backoff_max_s=60)
    low = Outbox(tmp_path / "a.sqlite3", options, rng=lambda: 0.0)
    high = Outbox(tmp_path / "b.sqlite3", options, rng=lambda: 1.0)
    assert [low.backoff_s(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert [high.backoff_s(n) for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert high.backoff_s(20) == 60 and low.backoff_s(20) == 30


def test_retryable_waits_then_dead_letters_and_retry_revives(tmp_path: Path) -> None:
    now = [1000.0]
    options = DeliveryOptions(backoff_base_s=10, max_attempts=3)
    outbox = Outbox(tmp_path / "o.sqlite3", options, clock=lambda: now[0], rng=lambda: 0.0)
    port = free_port()
    note = make_note(tmp_path, "enc-wait")
    _item, _ = outbox.enqueue(note, context_for("enc-wait"), f"mllp://127.0.0.1:{port}")
    [tried] = outbox.drain()
    assert (tried.state, tried.attempts, tried.next_attempt_at) == ("pending", 1, 1005.0)
    assert "cannot connect" in (tried.last_error or "")
    assert outbox.drain() == []  # not due yet
    now[0] = 1005.0
    assert outbox.drain()[0].state == "pending"
    now[0] = 2000.0
    [dead] = outbox.drain()
    assert dead.state == "dead" and dead.last_error and dead.last_error.startswith("gave up after 3 attempts")
    assert outbox.retry(all_dead=True) == 1
    listener = MllpListener(port=port)
    listener.start()
    try:
        [done] = outbox.drain()
    finally:
        listener.stop()
    assert done.state == "delivered" and done.receipt is not None and len(listener.received) == 1
    assert outbox.purge() == 1 and outbox.items() == []


def test_permanent_rejection_dead_letters_with_the_reason(tmp_path: Path) -> None:
    listener = MllpListener(mode="AE")
    listener.start()
    audit = AuditLog(tmp_path / "audit")
    try:
        outbox = Outbox(tmp_path / "o.sqlite3", audit=audit)
        _item, _ = outbox.enqueue(
            make_note(tmp_path, "enc-ae"), context_for("enc-ae"), f"mllp://127.0.0.1:{listener.port}"
        )
        [dead] = outbox.drain()
    finally:
        listener.stop()
    assert dead.state == "dead" and dead.attempts == 1
    assert "rejected the note with AE: Unknown patient" in (dead.last_error or "")
    events = [e["event"] for e in audit.entries()]
    assert events == ["note.queued", "note.dead_lettered"]
    audit.verify()
    # The peer's own text names the patient (MRN12345): kept sealed at rest, shown only through the outbox.
    again = outbox.get(dead.id)
    assert again is not None and "MRN12345" in (again.last_error or "")
    assert "MRN12345" in (dead.last_error or "")
    db = sqlite3.connect(tmp_path / "o.sqlite3")
    try:
        [(stored,)] = db.execute("SELECT last_error FROM items").fetchall()
    finally:
        db.close()
    assert stored and "MRN12345" not in stored and "Unknown patient" not in stored


def test_a_crashed_sender_is_picked_up_after_its_lease(tmp_path: Path, fhir_server: SekmetServer) -> None:
    now = [5000.0]
    path = tmp_path / "o.sqlite3"
    first = Outbox(path, clock=lambda: now[0])
    item, _ = first.enqueue(
        make_note(tmp_path, "enc-lease"), context_for("enc-lease"), f"fhir:{fhir_server.base_url}"
    )
    with first._connect() as db:  # a sender claims the row, then its process dies
        assert first._claim(db, item.id, now[0]) is not None
    restarted = Outbox(path, clock=lambda: now[0])
    assert restarted.drain() == []
    now[0] += LEASE_S + 1
    [done] = restarted.drain()
    assert done.state == "delivered"
    assert len(fhir_server.search("DocumentReference", encounter="Encounter/enc-lease")) == 1


def test_server_stopped_mid_way_nothing_lost_nothing_duplicated(tmp_path: Path) -> None:
    server = SekmetServer(tmp_path / "sekmet")
    server.start()
    path = tmp_path / "outbox.sqlite3"
    target = f"fhir:{server.base_url}"
    notes = [make_note(tmp_path, f"enc-sr-{i}") for i in range(8)]
    try:
        outbox = Outbox(path, FAST)
        for note in notes[:4]:
            outbox.enqueue(note, context_for(note.encounter_id), target)
        assert {i.state for i in outbox.drain()} == {"delivered"}
        server.stop()
        for note in notes[4:]:
            outbox.enqueue(note, context_for(note.encounter_id), target)
        waiting = outbox.drain()
        assert len(waiting) == 4 and {i.state for i in waiting} == {"pending"}
        # A restart of our side too: a new Outbox on the same file sees the queue.
        outbox = Outbox(path, FAST)
        assert len(outbox.items(("pending",))) == 4
        server.start()
        settled = outbox.drain_until_settled(timeout_s=30)
        assert {i.state for i in settled} == {"delivered"} and len(settled) == 8
        for note in notes:  # enqueue everything again: all already delivered, nothing resent
            outbox.enqueue(note, context_for(note.encounter_id), target)
        assert outbox.drain() == []
        docs = [d for d in server.search("DocumentReference") if d["subject"]["reference"] == "Patient/pat-1"]
        encounters = sorted(d["context"]["encounter"][0]["reference"] for d in docs)
        assert encounters == sorted(f"Encounter/{n.encounter_id}" for n in notes)
    finally:
        server.stop()


def _write_inputs(tmp_path: Path, encounter_id: str) -> tuple[Path, Path, str]:
    note = make_note(tmp_path, encounter_id)
    note_path = tmp_path / f"{encounter_id}.note.json"
    note_path.write_text(json.dumps(note_to_json(note)))
    meta = tmp_path / f"{encounter_id}.meta.json"
    meta.write_text(json.dumps(context_to_dict(context_for(encounter_id))))
    return note_path, meta, note.sections[0].sentences[0].text


def test_cli_deliver_waits_for_a_down_server_then_drains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    note_path, meta, _ = _write_inputs(tmp_path, "enc-cli")
    server = SekmetServer(tmp_path / "sekmet")
    code = main(["deliver", str(note_path), "--to", f"fhir:{server.base_url}", "--context", str(meta)])
    _, err = capsys.readouterr()
    assert code == 7 and "NOT delivered yet enc-cli" in err and "stays queued" in err
    assert main(["outbox", "list"]) == 0
    assert "pending" in capsys.readouterr().out
    server.start()
    try:
        assert main(["outbox", "retry", "--all-dead"]) == 0
        assert main(["outbox", "drain", "--wait", "60"]) == 0
        assert "1 delivered, 0 waiting" in capsys.readouterr().out
        assert len(server.search("DocumentReference", encounter="Encounter/enc-cli")) == 1
        code = main(["deliver", str(note_path), "--to", f"fhir:{server.base_url}", "--context", str(meta)])
        assert code == 0 and "delivered enc-cli" in capsys.readouterr().out
        assert len(server.search("DocumentReference", encounter="Encounter/enc-cli")) == 1
    finally:
        server.stop()
    assert main(["audit", "verify"]) == 0


def test_cli_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    note_path, _meta, _ = _write_inputs(tmp_path, "enc-err")
    assert main(["deliver", str(note_path), "--to", "ftp://x"]) == 2
    assert "unknown delivery target" in capsys.readouterr().err
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"encounter_id": "enc-other"}))
    assert main(["deliver", str(note_path), "--to", f"inbox:{tmp_path}", "--context", str(other)]) == 2
    assert "same encounter" in capsys.readouterr().err
    other.write_text(json.dumps({"patient_refrence": "Patient/1"}))
    assert main(["deliver", str(note_path), "--to", f"inbox:{tmp_path}", "--context", str(other)]) == 3
    assert "unknown field(s) patient_refrence" in capsys.readouterr().err
    code = main(["deliver", str(note_path), "--to", "fhir:http://127.0.0.1:9/fhir"])
    err = capsys.readouterr().err
    assert code == 7 and "dead-lettered" in err and "has no patient_reference" in err


def test_no_phi_in_audit_or_outbox_logs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Deliver everywhere (and fail once), then grep every log for the note's text and the names."""
    note_path, meta, _ = _write_inputs(tmp_path, "enc-phi")
    note = json.loads(note_path.read_text())
    sentences = [s["text"] for sec in note["sections"] for s in sec["sentences"]]
    context = EncounterContext(**json.loads(meta.read_text()))
    secrets = [s for s in sentences if len(s) > 12] + [
        context.patient_display,
        context.author_display,
        "MRN12345",
    ]
    assert len(secrets) > 4
    ok = MllpListener()
    bad = MllpListener(mode="AE")
    ok.start()
    bad.start()
    try:
        for target in (
            f"inbox:{tmp_path / 'inbox'}",
            f"mllp://127.0.0.1:{ok.port}",
            f"mllp://127.0.0.1:{bad.port}",
        ):
            main(["deliver", str(note_path), "--to", target, "--context", str(meta)])
        main(["outbox", "list"])
    finally:
        ok.stop()
        bad.stop()
    out, err = capsys.readouterr()
    paths = resolve_paths()
    logs = [paths.data_dir / "audit" / "audit.jsonl", paths.log_dir / "outbox.log"]
    texts = {p.name: p.read_text() for p in logs}
    assert (
        all(texts.values())
        and "note.delivered" in texts["audit.jsonl"]
        and "dead_lettered" in texts["outbox.log"]
    )
    for name, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"{name} contains PHI"
    # The terminal shows the peer's own reason (here it names the MRN, as engines do), never note text.
    for name, text in (("outbox list", out), ("stderr", err)):
        assert "MRN12345" in text or name == "stderr"
        for sentence in secrets[:-3]:
            assert sentence not in text, f"{name} contains note text"
