"""The encounter journal: what is appended is what is read back, torn tails, and a real kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ambient.audio.decode import read_all
from ambient.config import resolve_paths
from ambient.errors import InputError
from ambient.protect.outputs import read_output
from ambient.streaming.events import CommittedWords, PartialText
from ambient.streaming.journal import (
    AUDIO,
    WORDS,
    EncounterJournal,
    encounters_dir,
    find_interrupted,
    read_audio,
    read_journal,
    rebuild_transcript,
)
from ambient.types import ModelRef, Word

REPO = Path(__file__).resolve().parents[1]
MODEL = ModelRef("tiny.en", "1", "ab" * 32, "test")


def words(*spec: tuple[str, float, float]) -> CommittedWords:
    return CommittedWords(tuple(Word(t, a, b, 0.9) for t, a, b in spec))


def test_what_is_appended_is_read_back(tmp_path: Path) -> None:
    journal = EncounterJournal.create(tmp_path, "enc-1", MODEL, {"patient": "ref-1"})
    tone = (0.3 * np.sin(np.arange(24000) / 10)).astype(np.float32)
    journal.append_audio(tone[:16000])
    journal.append_events([words(("Chest", 0.1, 0.4), ("pain.", 0.4, 0.8)), PartialText("and", 0.8, 1.0)])
    journal.append_audio(tone[16000:])
    journal.append_events([words(("Since", 1.0, 1.2), ("Monday.", 1.2, 1.4))])
    found = read_journal(tmp_path / "enc-1")
    assert not found.closed and not found.torn_tail
    assert found.audio_s == pytest.approx(1.5)
    assert [w.word for w in found.words] == ["Chest", "pain.", "Since", "Monday."]
    assert np.allclose(read_audio(tmp_path / "enc-1"), tone, atol=1 / 32767)
    transcript = rebuild_transcript(found)
    assert [s.text for s in transcript.segments] == ["Chest pain.", "Since Monday."]
    assert transcript.header.model == MODEL and transcript.header.duration_s == 1.5
    assert len(transcript.header.source_sha256) == 64
    journal.close()
    assert read_journal(tmp_path / "enc-1").closed


def test_fsync_follows_the_audio_not_a_clock(tmp_path: Path) -> None:
    journal = EncounterJournal.create(tmp_path, "enc-2", sync_every_s=1.0)
    for _ in range(9):
        journal.append_audio(np.zeros(1600, dtype=np.float32))
    assert journal.syncs == 0  # 0.9 s: not yet
    journal.append_audio(np.zeros(1600, dtype=np.float32))
    assert journal.syncs == 1
    for _ in range(25):
        journal.append_audio(np.zeros(1600, dtype=np.float32))
    assert journal.syncs == 3


def test_a_torn_tail_is_dropped_not_fatal(tmp_path: Path) -> None:
    journal = EncounterJournal.create(tmp_path, "enc-3")
    journal.append_audio(np.zeros(16000, dtype=np.float32))
    journal.append_events([words(("Okay.", 0.1, 0.3))])
    folder = tmp_path / "enc-3"
    with (folder / WORDS).open("ab") as handle:
        handle.write(b'{"words": [["half", 0.4')  # the writer died inside this line
    with (folder / AUDIO).open("ab") as handle:
        handle.write(b"\x01")  # and inside a sample
    found = read_journal(folder)
    assert found.torn_tail
    assert [w.word for w in found.words] == ["Okay."]
    assert found.audio_s == 1.0


def test_ids_are_checked(tmp_path: Path) -> None:
    EncounterJournal.create(tmp_path, "enc-4")
    with pytest.raises(InputError, match="already has a journal"):
        EncounterJournal.create(tmp_path, "enc-4")
    for bad in ("", "../x", ".hidden"):
        with pytest.raises(InputError, match="cannot name a folder"):
            EncounterJournal.create(tmp_path, bad)


@pytest.mark.model
def test_kill_9_mid_encounter_loses_nothing_that_was_shown(speech_wav: Path, ambient_home: Path) -> None:
    """A real `ambient listen --journal` killed with SIGKILL, then `ambient listen --recover`."""
    env = {**os.environ, "AMBIENT_HOME": str(ambient_home)}
    cmd = [sys.executable, "-m", "ambient", "listen", "--replay", str(speech_wav), "--speed", "1",
           "--journal", "--encounter-id", "enc-kill", "--events", "jsonl", "--threads", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    shown = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, f"ambient listen ended early: {proc.stderr.read() if proc.stderr else ''}"
        event = json.loads(line)
        shown.append(event)
        if sum(e["kind"] == "committed" for e in shown) >= 3:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    paths = resolve_paths(env)
    [found] = find_interrupted(paths)
    assert found.encounter_id == "enc-kill" and not found.closed
    shown_words = [w["word"] for e in shown if e["kind"] == "committed" for w in e["words"]]
    assert [w.word for w in found.words][: len(shown_words)] == shown_words
    # audio is journaled as it arrives: at least up to the last event shown (100 ms chunks)
    assert found.audio_s >= shown[-1]["emitted_at_s"] - 0.2
    source = read_all(speech_wav)
    journaled = read_audio(found.folder)
    assert np.allclose(journaled, source[: len(journaled)], atol=2 / 32767)

    recover = subprocess.run(
        [sys.executable, "-m", "ambient", "listen", "--recover"],
        env=env, cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert recover.returncode == 0, recover.stderr
    assert "enc-kill" in recover.stdout
    transcript = json.loads(read_output(encounters_dir(paths) / "enc-kill" / "transcript.json"))
    rebuilt = [w["word"] for s in transcript["segments"] for w in s["words"]]
    assert rebuilt[: len(shown_words)] == shown_words
    assert find_interrupted(paths) == []
