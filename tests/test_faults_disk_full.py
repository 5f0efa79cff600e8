"""Disk full while journaling: a clear error to the clinician, no corrupt journal, recovery after.

A small tmpfs (``mount -t tmpfs``, as root) is mounted as AMBIENT_HOME's data dir; the test
fills it with a filler file. Skipped, with the reason, where mounting is not permitted.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ambient.agent.diskguard import RESERVE_BYTES
from ambient.errors import OutputError
from ambient.streaming.journal import EncounterJournal, read_journal
from tests.reliability import record
from tests.test_agent import free_port, pcm_frames, send_paced, start_agent, stop_agent, until

pytestmark = pytest.mark.reliability


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """``<tmp>/home/data`` on an 8 MiB tmpfs."""
    data = tmp_path / "home" / "data"
    data.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(data)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield data
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False)


def fill(folder: Path, leave_bytes: int) -> Path:
    """A filler file that leaves about ``leave_bytes`` free."""
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    filler = folder / "filler.bin"
    with filler.open("wb") as out:
        out.write(b"\0" * max(0, free - leave_bytes))
    return filler


def test_journal_write_on_a_full_disk_fails_whole_and_resumes(small_disk: Path) -> None:
    journal = EncounterJournal.create(small_disk / "encounters", "full-1")
    journal.append_audio(np.zeros(16000, dtype=np.float32))
    filler = fill(small_disk, 0)
    fd = os.open(filler, os.O_WRONLY | os.O_APPEND)
    try:  # take the last blocks too, until the file system says no
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    before = (journal.folder / "audio.pcm").stat().st_size
    with pytest.raises(OutputError, match="free disk space"):
        journal.append_audio(np.full(48000, 0.1, dtype=np.float32))  # 96 kB: does not fit
    assert (journal.folder / "audio.pcm").stat().st_size == before  # nothing half-written
    filler.unlink()
    journal.append_audio(np.full(16000, 0.1, dtype=np.float32))
    journal.close()
    recovered = read_journal(journal.folder)
    assert recovered.audio_s == 2.0 and not recovered.torn_tail


def _drain_messages(ws: Any, timeout_s: float = 0.5) -> list[dict[str, Any]]:
    seen = []
    while True:
        try:
            seen.append(json.loads(ws.recv(timeout=timeout_s)))
        except TimeoutError:
            return seen


def test_agent_tells_the_clinician_and_recovers_when_space_returns(
    small_disk: Path, tmp_path: Path, speech_wav: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = small_disk.parent
    monkeypatch.setenv("AMBIENT_HOME", str(home))  # this process reads the agent's (sealed) journal
    frames = pcm_frames(speech_wav)
    agent = start_agent(home, free_port())
    try:
        with agent.client() as ws:
            ws.send(json.dumps({"type": "start", "encounter_id": "full-2"}))
            until(ws, "started", 20)
            send_paced(ws, frames[:30], speed=8.0)  # 3 s journaled while there is room
            filler = fill(small_disk, RESERVE_BYTES + 64 * 1024)  # ~2 s more, then full
            send_paced(ws, frames[30:90], speed=8.0)
            error, _ = until(ws, "error", 20)
            assert error["code"] == "disk_full" and "free some space" in error["message"]
            ws.send(json.dumps({"type": "status"}))
            status, _ = until(ws, "status", 10)
            assert status["encounter"]["state"] == "disk_full" and status["encounter"]["dropped_s"] > 1.0
            journal = home / "data" / "encounters" / "full-2"
            assert not read_journal(journal).torn_tail  # whole samples, whole lines, while full
            filler.unlink()  # space returns
            send_paced(ws, frames[90:], speed=8.0)
            resumed, _ = until(ws, "resumed", 20)
            assert resumed["reason"] == "disk_space_returned"
            ws.send(json.dumps({"type": "stop"}))
            ready, _ = until(ws, "note_ready", 120)
    finally:
        stop_agent(agent)
    recovered = read_journal(journal)
    sent_s = len(frames) * 0.1
    assert not recovered.torn_tail and recovered.closed
    assert recovered.audio_s == pytest.approx(sent_s - status["encounter"]["dropped_s"], abs=6.0)
    assert recovered.audio_s < sent_s - 1.0  # what the full disk refused is not in the journal
    assert Path(ready["inbox"][0]).is_file()
    assert "disk full" in agent.log.read_text()
    record(
        "faults",
        "disk full while journaling (tmpfs)",
        injected=1,
        survived=1,
        detail="8 MiB tmpfs as data dir",
    )
