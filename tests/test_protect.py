"""Encryption at rest: the envelope, data keys, sealed journals and outbox rows, rotation, modes."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest
from keyring.backends import fail, null

from ambient.config import Settings, load_settings, resolve_paths
from ambient.ehr.options import DeliveryOptions
from ambient.ehr.outbox import Outbox
from ambient.errors import InputError
from ambient.notes.render import load_note_file, note_to_json
from ambient.protect import journal as sealed_journal
from ambient.protect.keys import KeyStore, KeyStoreError, _acceptable, key_store, real_keyring
from ambient.protect.outputs import read_output, remember_batch_dir, write_output
from ambient.protect.rotate import rotate
from ambient.protect.sealed import (
    FIELD_PREFIX,
    MAGIC,
    Protector,
    SealedDataError,
    field_key_id,
    is_sealed,
    key_id_of,
)
from ambient.streaming.events import CommittedWords
from ambient.streaming.journal import (
    AUDIO,
    WORDS,
    EncounterJournal,
    encounters_dir,
    read_audio,
    read_journal,
)
from ambient.types import Word
from tests.ehr_peers import context_for, free_port, make_note

CANARY = "Zebediah Quarterfield MRN 7734219"


def protector() -> Protector:
    return Protector.for_paths()


def words(*spec: tuple[str, float, float]) -> CommittedWords:
    return CommittedWords(tuple(Word(t, a, b, 0.9) for t, a, b in spec))


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# ---- the envelope ------------------------------------------------------------------------------


def test_round_trip_and_the_blob_names_its_key() -> None:
    p = protector()
    sealed = p.seal(CANARY.encode(), "batch.note", "note.json")
    assert is_sealed(sealed) and sealed.startswith(MAGIC) and CANARY.encode() not in sealed
    assert key_id_of(sealed) == p.store.active().key_id
    assert p.open(sealed, "batch.note", where="x", context="note.json") == CANARY.encode()
    assert p.seal(b"same", "batch.note") != p.seal(b"same", "batch.note")  # fresh nonce each time


def test_wrong_kind_or_context_is_refused() -> None:
    p = protector()
    sealed = p.seal(b'{"note": 1}', "outbox.note", "row-a")
    with pytest.raises(SealedDataError, match=r"not outbox\.context data"):
        p.open(sealed, "outbox.context", where="item 1", context="row-a")
    with pytest.raises(SealedDataError, match="integrity check"):
        p.open(sealed, "outbox.note", where="item 1", context="row-b")  # moved to another row


def test_every_flipped_byte_is_caught_and_the_file_is_named(tmp_path: Path) -> None:
    p = protector()
    path = p.write(tmp_path / "note.json", CANARY.encode() * 3, "batch.note")
    good = path.read_bytes()
    caught = 0
    for at in range(len(good)):
        damaged = bytearray(good)
        damaged[at] ^= 0x01
        path.write_bytes(bytes(damaged))
        if at < len(MAGIC):  # no magic: plain (legacy) data, returned as it is, never the plaintext
            assert p.read(path, "batch.note") == bytes(damaged)
            continue
        with pytest.raises((SealedDataError, KeyStoreError)) as raised:
            p.read(path, "batch.note")
        assert str(path) in str(raised.value)
        caught += 1
    assert caught == len(good) - len(MAGIC)
    path.write_bytes(good[:-1])  # truncated
    with pytest.raises(SealedDataError, match="integrity check"):
        p.read(path, "batch.note")
    path.write_bytes(good[:10])
    with pytest.raises(SealedDataError, match="truncated"):
        p.read(path, "batch.note")


def test_text_fields_and_plain_legacy_values() -> None:
    p = protector()
    value = p.seal_text(CANARY, "outbox.note", "k1")
    assert value.startswith(FIELD_PREFIX) and CANARY not in value
    assert field_key_id(value) == p.store.active().key_id
    assert p.open_text(value, "outbox.note", where="w", context="k1") == CANARY
    assert p.open_text('{"legacy": true}', "outbox.note", where="w") == '{"legacy": true}'
    assert field_key_id('{"legacy": true}') is None


def test_sealing_off_writes_plain_but_still_reads_sealed(tmp_path: Path) -> None:
    sealed = protector().write(tmp_path / "a.md", b"sealed", "batch.note")
    plain = Protector(protector().store, seal_new=False)
    assert plain.write(tmp_path / "b.md", b"plain", "batch.note").read_bytes() == b"plain"
    assert plain.read(sealed, "batch.note") == b"sealed"


# ---- keys ------------------------------------------------------------------------------------


def test_key_file_is_private_and_keys_have_ids(ambient_home: Path) -> None:
    paths = resolve_paths()
    store = KeyStore(paths.config_dir)
    assert store.load().active is None  # nothing made until something is sealed
    key = store.active()
    assert key.store == "file" and len(key.material) == 32 and key.key_id.startswith("k")
    assert mode(store.path) == 0o600 and mode(paths.config_dir) == 0o700
    doc = json.loads(store.path.read_text())
    assert doc["active"] == key.key_id and doc["keys"][0]["state"] == "active"
    assert base64.b64decode(doc["keys"][0]["material"]) == key.material
    assert store.active() == key  # made once


def test_only_a_real_keyring_is_used() -> None:
    assert not _acceptable(fail.Keyring()) and not _acceptable(null.Keyring())

    class PlaintextKeyring:  # what keyrings.alt.file calls its unencrypted backend
        priority = 1

    assert not _acceptable(PlaintextKeyring())
    # this machine has no keyring service: keys go to the file, and asking for the keyring says so
    if real_keyring() is None:
        with pytest.raises(KeyStoreError, match="no OS keyring is available"):
            KeyStore(resolve_paths().config_dir / "other", "keyring").active()


def test_a_key_in_an_unavailable_keyring_is_reported_not_replaced(ambient_home: Path) -> None:
    paths = resolve_paths()
    store = KeyStore(paths.config_dir)
    sealed = Protector(store).seal(b"x", "batch.note")
    doc = json.loads(store.path.read_text())
    doc["keys"][0]["store"] = "keyring"  # as if made on a desktop whose keyring is locked now
    del doc["keys"][0]["material"]
    store.path.write_text(json.dumps(doc))
    if real_keyring() is None:
        with pytest.raises(KeyStoreError, match="OS keyring, which is not available"):
            Protector(KeyStore(paths.config_dir)).open(sealed, "batch.note", where="f")


def test_a_missing_key_is_a_clear_error(tmp_path: Path) -> None:
    sealed = protector().write(tmp_path / "note.md", b"x", "batch.note")
    other = Protector(KeyStore(tmp_path / "elsewhere"))
    with pytest.raises(KeyStoreError, match=r"note\.md is sealed with data key k"):
        other.read(sealed, "batch.note")


# ---- the journal -------------------------------------------------------------------------------


def test_sealed_journal_holds_no_plaintext_and_reads_back(tmp_path: Path) -> None:
    journal = EncounterJournal.create(tmp_path, "enc-s", metadata={"patient_identifier": "MRN7734219"})
    tone = (0.3 * np.sin(np.arange(8000) / 10)).astype(np.float32)
    journal.append_audio(tone)
    journal.append_events([words(("Zebediah", 0.1, 0.4), ("Quarterfield.", 0.4, 0.8))])
    journal.close()
    folder = tmp_path / "enc-s"
    for name in os.listdir(folder):
        data = (folder / name).read_bytes()
        assert b"Zebediah" not in data and b"MRN7734219" not in data, name
        assert mode(folder / name) == 0o600
    assert mode(folder) == 0o700
    pcm = (np.clip(tone, -1, 1) * 32767).round().astype("<i2").tobytes()
    assert pcm not in (folder / AUDIO).read_bytes()
    found = read_journal(folder)
    assert [w.word for w in found.words] == ["Zebediah", "Quarterfield."]
    assert found.meta["metadata"] == {"patient_identifier": "MRN7734219"}
    assert np.allclose(read_audio(folder), tone, atol=1 / 32767)


def test_sealed_journal_torn_tail_is_dropped_and_cut_before_appending(tmp_path: Path) -> None:
    journal = EncounterJournal.create(tmp_path, "enc-t")
    for _ in range(3):
        journal.append_audio(np.full(1600, 0.1, dtype=np.float32))
    journal.append_events([words(("One.", 0.0, 0.1))])
    journal.append_events([words(("Two.", 0.1, 0.2))])
    journal.sync()
    folder = tmp_path / "enc-t"
    for name, cut in ((AUDIO, 7), (WORDS, 3)):  # a kill inside the last record of each file
        size = (folder / name).stat().st_size
        os.truncate(folder / name, size - cut)
    found = read_journal(folder)
    assert found.torn_tail and [w.word for w in found.words] == ["One."]
    assert found.audio_s == pytest.approx(0.2)
    reopened = EncounterJournal(folder)  # the agent appends a recovered tail
    assert reopened.audio_samples == 3200
    reopened.append_audio(np.full(1600, 0.2, dtype=np.float32))
    reopened.append_events([words(("Three.", 0.3, 0.4))])
    reopened.close()
    found = read_journal(folder)
    assert not found.torn_tail and [w.word for w in found.words] == ["One.", "Three."]
    assert found.audio_s == pytest.approx(0.3)


def test_a_record_changed_in_the_middle_is_tampering(tmp_path: Path) -> None:
    journal = EncounterJournal.create(tmp_path, "enc-m")
    for text in ("One.", "Two.", "Three."):
        journal.append_events([words((text, 0.0, 0.1))])
    journal.close()
    path = tmp_path / "enc-m" / WORDS
    envelopes = list(sealed_journal.iter_records(path))
    data = bytearray(path.read_bytes())
    data[4 + len(envelopes[0]) + 4 + 30] ^= 0xFF  # inside record 2 of 3
    path.write_bytes(bytes(data))
    with pytest.raises(SealedDataError, match=r"words\.jsonl record 2"):
        read_journal(tmp_path / "enc-m")
    # records swapped between positions do not open either: each is bound to its number
    first, second = envelopes[0], envelopes[1]
    framed = [len(e).to_bytes(4, "big") + e for e in (second, first, envelopes[2])]
    path.write_bytes(b"".join(framed))
    with pytest.raises(SealedDataError, match="record 1"):
        read_journal(tmp_path / "enc-m")


def test_a_changed_audio_record_is_caught_when_the_audio_is_read(tmp_path: Path) -> None:
    journal = EncounterJournal.create(tmp_path, "enc-a")
    for _ in range(3):
        journal.append_audio(np.full(1600, 0.3, dtype=np.float32))
    journal.close()
    path = tmp_path / "enc-a" / AUDIO
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside record 2 of 3
    path.write_bytes(bytes(data))
    assert read_journal(tmp_path / "enc-a").audio_s == pytest.approx(0.3)  # length from record sizes
    with pytest.raises(SealedDataError, match=r"audio\.pcm record 2"):
        read_audio(tmp_path / "enc-a")


def test_plain_legacy_journal_still_reads(tmp_path: Path) -> None:
    plain = Protector(protector().store, seal_new=False)
    journal = EncounterJournal.create(tmp_path, "enc-old", protector=plain)
    journal.append_audio(np.zeros(1600, dtype=np.float32))
    journal.append_events([words(("Okay.", 0.0, 0.1))])
    journal.close()
    meta = json.loads((tmp_path / "enc-old" / "meta.json").read_text())
    assert meta["format"] == "ambient-journal-1" and b"Okay." in (tmp_path / "enc-old" / WORDS).read_bytes()
    assert [w.word for w in read_journal(tmp_path / "enc-old").words] == ["Okay."]


# ---- outbox and batch outputs ------------------------------------------------------------------


def test_outbox_rows_are_sealed_list_needs_no_key_and_legacy_rows_deliver(tmp_path: Path) -> None:
    db_path = tmp_path / "data" / "outbox.sqlite3"
    outbox = Outbox(db_path)
    note = make_note(tmp_path, "enc-o", extra=f"[patient] My name is {CANARY}.\n")
    inbox = tmp_path / "ehr-inbox"
    outbox.enqueue(note, context_for("enc-o"), f"inbox:{inbox}")
    assert mode(db_path) == 0o600 and mode(db_path.parent) == 0o700
    raw = (
        sqlite3.connect(db_path).execute("SELECT note_json, context_json, note_sha256 FROM items").fetchone()
    )
    assert "Quarterfield" in json.dumps(note_to_json(note))  # the canary is in what is stored
    assert raw[0].startswith(FIELD_PREFIX) and raw[1].startswith(FIELD_PREFIX)
    assert "MRN12345" not in raw[1] and "Quarterfield" not in raw[0]
    outbox.close()
    for file in db_path.parent.glob("outbox.sqlite3*"):
        assert b"Quarterfield" not in file.read_bytes() and b"MRN12345" not in file.read_bytes()
    # a row written before sealing existed (plain JSON) is still delivered
    legacy = Outbox(tmp_path / "legacy.sqlite3", protector=Protector(protector().store, seal_new=False))
    legacy.enqueue(make_note(tmp_path, "enc-l"), context_for("enc-l"), f"inbox:{inbox}")
    legacy.close()
    reopened = Outbox(tmp_path / "legacy.sqlite3")
    [item] = reopened.drain()
    assert item.state == "delivered" and (inbox / "enc-l.note.md").is_file()
    reopened.close()
    with Outbox(db_path) as again:
        assert [i.state for i in again.drain()] == ["delivered"]
        assert again.items()[0].note_sha256 == raw[2]


def test_batch_outputs_sealed_or_plain_and_read_the_same(tmp_path: Path) -> None:
    note = make_note(tmp_path, "enc-b")
    text = json.dumps(note_to_json(note), indent=2)
    p = protector()
    sealed = write_output(p, tmp_path / "a" / "note.json", text, plain=False)
    plain = write_output(p, tmp_path / "b" / "note.json", text, plain=True)
    assert is_sealed(sealed.read_bytes()) and plain.read_text() == text
    assert read_output(sealed) == read_output(plain) == text
    assert load_note_file(sealed) == load_note_file(plain) == note  # what `ambient deliver` reads
    assert mode(sealed) == 0o600 and mode(sealed.parent) == 0o700
    # a note file renamed to pass as a transcript does not open as one
    transcript = tmp_path / "a" / "transcript.json"
    transcript.write_bytes(sealed.read_bytes())
    with pytest.raises(SealedDataError, match=r"not batch\.transcript data"):
        read_output(transcript)
    with pytest.raises(InputError):
        read_output(tmp_path / "a" / "missing.md")


# ---- rotation ----------------------------------------------------------------------------------


def _state(tmp_path: Path) -> tuple[Settings, Path, Path]:
    """A closed journal, an outbox row and a batch output, all sealed under the current key."""
    paths = resolve_paths()
    settings = load_settings(paths)
    journal = EncounterJournal.create(encounters_dir(paths), "enc-r", metadata={"patient_reference": "P/1"})
    journal.append_audio(np.full(16000, 0.25, dtype=np.float32))
    journal.append_events([words(("Rotated.", 0.1, 0.5))])
    journal.close()
    with Outbox.for_paths(paths) as outbox:
        outbox.enqueue(make_note(tmp_path, "enc-r"), context_for("enc-r"), f"inbox:{tmp_path / 'in'}")
    out = tmp_path / "batch-out"
    write_output(protector(), out / "visit.abc" / "note.md", f"# Note\n{CANARY}\n", plain=False)
    remember_batch_dir(paths, out)
    return settings, encounters_dir(paths) / "enc-r", out / "visit.abc" / "note.md"


def _keys_in_use(folder: Path, note_md: Path) -> set[str]:
    db_path = resolve_paths().data_dir / "outbox.sqlite3"
    rows = sqlite3.connect(db_path).execute("SELECT note_json, context_json FROM items").fetchall()
    found = sealed_journal.key_ids(folder) | {field_key_id(v) for row in rows for v in row} - {None}
    return {str(k) for k in found} | {str(key_id_of(note_md.read_bytes()))}


def test_rotation_reseals_everything_and_retires_the_old_key(tmp_path: Path) -> None:
    settings, folder, note_md = _state(tmp_path)
    paths = resolve_paths()
    old = key_store(paths.config_dir).active().key_id
    assert _keys_in_use(folder, note_md) == {old}
    report = rotate(paths, settings)
    assert report.complete and report.started_new and report.retired == (old,)
    assert report.journal_records == 3 and report.outbox_fields == 2 and report.batch_files == 1
    assert _keys_in_use(folder, note_md) == {report.active_key} != {old}
    doc = json.loads((paths.config_dir / "keys.json").read_text())
    assert [e["id"] for e in doc["keys"]] == [report.active_key] and old not in json.dumps(doc)
    found = read_journal(folder)
    assert [w.word for w in found.words] == ["Rotated."]
    assert found.meta["metadata"]["patient_reference"] == "P/1"
    assert CANARY in read_output(note_md)
    with Outbox.for_paths(paths) as outbox:
        assert [i.state for i in outbox.drain()] == ["delivered"]
    events = [
        json.loads(line) for line in (paths.data_dir / "audit" / "audit.jsonl").read_text().splitlines()
    ]
    rotated = [e for e in events if e["event"] == "keys.rotated"]
    assert rotated[-1]["ids"]["retired_keys"] == old


def test_rotation_reseals_a_peers_failure_reason(tmp_path: Path) -> None:
    """The reason a peer gave (it may name the patient) is sealed too, and survives rotation."""
    paths = resolve_paths()
    later = DeliveryOptions(backoff_base_s=3600.0)  # the row stays pending through the test
    with Outbox.for_paths(paths, later) as outbox:
        outbox.enqueue(make_note(tmp_path, "enc-e"), context_for("enc-e"), f"mllp://127.0.0.1:{free_port()}")
        [failed] = outbox.drain()
    assert failed.state == "pending" and failed.last_error and "connect" in failed.last_error
    old = key_store(paths.config_dir).active().key_id
    report = rotate(paths, load_settings(paths))
    assert report.complete and report.retired == (old,) and report.outbox_fields == 3
    with Outbox.for_paths(paths, later) as outbox:
        [again] = outbox.items()
    assert again.last_error == failed.last_error  # opened with the new key; the old one is gone
    db = sqlite3.connect(paths.data_dir / "outbox.sqlite3")
    try:
        [(stored,)] = db.execute("SELECT last_error FROM items").fetchall()
    finally:
        db.close()
    assert field_key_id(stored) == report.active_key


def test_interrupted_rotation_resumes_and_an_open_journal_keeps_the_old_key(tmp_path: Path) -> None:
    settings, folder, note_md = _state(tmp_path)
    paths = resolve_paths()
    store = key_store(paths.config_dir)
    old = store.active().key_id
    live = EncounterJournal.create(encounters_dir(paths), "enc-live")  # an encounter in progress
    live.append_events([words(("Still.", 0.0, 0.2))])
    # killed right after step 1: a new active key exists, nothing re-sealed yet
    new = store.begin_rotation().key_id
    assert read_output(note_md) and _keys_in_use(folder, note_md) == {old}  # old data still opens
    report = rotate(paths, settings)
    assert not report.started_new and report.active_key == new
    assert not report.complete and report.open_journals == ("enc-live",) and report.retired == ()
    assert _keys_in_use(folder, note_md) == {new}
    assert store.load().get(old) is not None  # kept: enc-live still has a record under it
    live.append_events([words(("Done.", 0.2, 0.4))])  # written under the new key
    live.close()
    assert [w.word for w in read_journal(live.folder).words] == ["Still.", "Done."]
    again = rotate(paths, settings)
    assert again.complete and again.retired == (old,) and store.load().get(old) is None
    assert [w.word for w in read_journal(live.folder).words] == ["Still.", "Done."]


# ---- rotation killed with SIGKILL, again and again ----------------------------------------------


@pytest.mark.reliability
def test_rotation_killed_at_random_points_loses_nothing(tmp_path: Path) -> None:
    """`ambient keys rotate` SIGKILLed mid-way several times, then run to the end: all data opens."""
    import random
    import signal
    import subprocess
    import sys
    import time

    from tests.reliability import record

    paths = resolve_paths()
    expected: dict[Path, list[str]] = {}
    for i in range(12):
        j = EncounterJournal.create(encounters_dir(paths), f"enc-{i}")
        for n in range(40):
            j.append_audio(np.full(1600, 0.01 * (i + 1), dtype=np.float32))
            j.append_events([words((f"w{i}-{n}", n / 10, n / 10 + 0.1))])
        j.close()
        expected[j.folder] = [f"w{i}-{n}" for n in range(40)]
    out = tmp_path / "out"
    notes = {out / f"v.{i}" / "note.md": f"note {i} " * 200 for i in range(150)}
    for path, text in notes.items():
        write_output(protector(), path, text, plain=False)
    remember_batch_dir(paths, out)
    store = key_store(paths.config_dir)
    first = store.active().key_id
    rng = random.Random(8)
    kills = mid_rotation = 0
    for _ in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-m", "ambient", "keys", "rotate"],
            env=dict(os.environ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and not store.load().retiring:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.15))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(30)
        mid_rotation += bool(store.load().retiring)
        for folder, text in expected.items():  # after each kill, everything still opens
            assert [w.word for w in read_journal(folder).words] == text
    assert mid_rotation >= 1, "no kill landed inside a rotation"
    final = rotate(paths, load_settings(paths))
    assert final.complete and not store.load().retiring and store.load().get(first) is None
    for folder, text in expected.items():
        assert [w.word for w in read_journal(folder).words] == text
        assert sealed_journal.key_ids(folder) == {final.active_key}
    for path, text in notes.items():
        assert read_output(path) == text and key_id_of(path.read_bytes()) == final.active_key
    lost = sum(1 for p in notes if not p.exists()) + sum(1 for f in expected if not f.exists())
    detail = f"{mid_rotation} kills left a rotation half-done; the next run finished it"
    record(
        "faults",
        "keys rotate killed (SIGKILL)",
        injected=kills,
        survived=kills,
        notes_lost=lost,
        detail=detail,
    )
    assert lost == 0
