"""Resuming an interrupted encounter: a real agent is killed (-9) mid-encounter, restarted with a
resume window, and the same client id continues the same encounter into the same journal.

What must hold: recovery (transcribing the journal's tail) happens before the socket opens; the
restarted agent holds the encounter instead of finalising it; ``start`` with the same id resumes
it; the new audio is appended to the same ``audio.pcm`` and the new words continue the time line
after every word committed before the crash; ``stop`` drafts one note from the whole journal and
closes it normally. The journal repair and the hold's clock are tested on their own too.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from ambient.agent.resume import ResumeHold, reopen_journal
from ambient.config import resolve_paths
from ambient.protect.sealed import Protector
from ambient.streaming.journal import EncounterJournal, read_journal, read_pcm, rebuild_transcript
from ambient.transcript.serialise import transcript_sha256
from tests.test_agent import free_port, pcm_frames, send_paced, start_agent, stop_agent, until

pytestmark = [pytest.mark.model, pytest.mark.espeak]


def test_a_killed_encounter_is_resumed_into_the_same_journal(tmp_path: Path, speech_wav: Path) -> None:
    frames = pcm_frames(speech_wav)
    half = len(frames) // 2
    port = free_port()
    env = {"AMBIENT_AGENT_RESUME_WINDOW_S": "300"}
    first = start_agent(tmp_path, port, env)
    try:
        with first.client() as ws:
            start = {"type": "start", "encounter_id": "visit-9", "patient_reference": "Patient/9"}
            ws.send(json.dumps(start))
            until(ws, "started", 10)
            send_paced(ws, frames[:half], speed=4.0)
            heard: list[dict[str, Any]] = []
            while not any(m.get("kind") == "committed" for m in heard):
                heard.append(until(ws, "transcript", 60)[0])
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(10)
    finally:
        first.proc.kill()
    folder = tmp_path / "data" / "encounters" / "visit-9"
    keys = Protector.for_paths(resolve_paths({"AMBIENT_HOME": str(tmp_path)}))  # the agent's sealed journal
    before_crash = read_journal(folder, keys)
    assert not before_crash.closed and before_crash.audio_s > 0

    second = start_agent(tmp_path, port, env)  # returns once the socket listens
    try:
        held = read_journal(folder, keys)
        # recovery ran before the socket opened: the tail is transcribed, the journal still open
        assert not held.closed and held.untranscribed_s < 2.0
        assert held.words[: len(before_crash.words)] == before_crash.words
        with second.client() as ws:
            ws.send(json.dumps({"type": "status"}))
            status, _ = until(ws, "status", 10)
            assert status["held_for_resume"] == ["visit-9"] and status["recovered"] == []
            ws.send(json.dumps({"type": "start", "encounter_id": "visit-9"}))
            started, _ = until(ws, "started", 10)
            assert started["resumed_from_s"] == pytest.approx(held.audio_s, abs=0.01)
            send_paced(ws, frames[half:], speed=4.0)
            ws.send(json.dumps({"type": "stop"}))
            ready, seen = until(ws, "note_ready", 120)
        new_words = [w for m in seen if m.get("kind") == "committed" for w in m["words"]]
    finally:
        stop_agent(second)
    final = read_journal(folder, keys)
    # one journal: the audio after the resume was appended to the audio before it
    assert final.audio_s == pytest.approx(held.audio_s + (len(frames) - half) * 0.1, abs=0.05)
    assert final.words[: len(held.words)] == held.words
    resumed = final.words[len(held.words) :]
    assert resumed and [w.word for w in resumed] == [w["word"] for w in new_words]
    assert resumed[0].start_s >= held.audio_s - 0.3  # continues the time line, never restarts at 0
    assert all(a.end_s <= b.start_s + 1e-6 for a, b in zip(final.words, final.words[1:], strict=False))
    # one note from the whole encounter, and a normal close (not a recovery)
    assert ready["encounter_id"] == "visit-9"
    note = json.loads((tmp_path / "data" / "inbox" / "visit-9.note.json").read_text())
    assert note["provenance"]["transcript_sha256"] == transcript_sha256(rebuild_transcript(final, keys))
    assert "recovered" not in json.loads((folder / "closed.json").read_text())
    assert "Patient/9" in (tmp_path / "data" / "inbox" / "visit-9.fhir.json").read_text()


@pytest.mark.parametrize("encrypt", ["true", "false"], ids=["sealed", "plain"])
def test_reopening_repairs_a_torn_tail_before_appending(
    tmp_path: Path, encrypt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from ambient.streaming.events import CommittedWords
    from ambient.types import Word

    monkeypatch.setenv("AMBIENT_PROTECT_ENCRYPT", encrypt)
    journal = EncounterJournal.create(tmp_path, "torn")
    journal.append_audio(np.full(1600, 0.25, dtype=np.float32))
    journal.append_events([CommittedWords((Word("chest", 0.0, 0.1, 0.9),))])
    journal.sync()
    folder = tmp_path / "torn"
    with (folder / "audio.pcm").open("ab") as f:
        f.write(b"\x01")  # the kill landed inside a write: half a sample, or a sealed record's first byte
    with (folder / "words.jsonl").open("ab") as f:
        f.write(b'{"words": [["pa')  # half a line (or a torn record)
    reopened, found = reopen_journal(folder)
    assert found.audio_s == pytest.approx(0.1) and [w.word for w in found.words] == ["chest"]
    reopened.append_audio(np.full(1600, -0.5, dtype=np.float32))
    reopened.append_events([CommittedWords((Word("pain", 0.15, 0.2, 0.9),))])
    reopened.close()
    after = read_journal(folder)
    assert [w.word for w in after.words] == ["chest", "pain"]
    pcm = np.frombuffer(read_pcm(folder), dtype="<i2")
    # samples stay aligned: the appended second half reads back as what was written
    assert len(pcm) == 3200 and (pcm[:1600] == 8192).all() and (pcm[1600:] == -16384).all()


def test_the_hold_lets_go_when_the_window_closes(tmp_path: Path) -> None:
    EncounterJournal.create(tmp_path, "a")
    found = read_journal(tmp_path / "a")
    hold = ResumeHold(60.0)
    hold.hold(found, now=100.0)
    assert "a" in hold and hold.next_deadline() == 160.0
    assert hold.expired(now=159.9) == [] and "a" in hold
    assert [r.encounter_id for r in hold.expired(now=160.0)] == ["a"]
    assert "a" not in hold and hold.next_deadline() is None
    assert not ResumeHold(0).enabled
