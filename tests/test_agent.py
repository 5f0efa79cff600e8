"""The agent end to end: a real ``ambient agent`` process, the real model, a real WebSocket client.

An espeak clip is replayed as 16-bit PCM frames faster than real time; the note must land in the
inbox (and in a second inbox configured as a delivery target, through the outbox), transcript
events must come back to the sender and to a subscriber, and a ``kill -9`` mid-encounter must be
finalised into a note by the next start.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin, Subprotocol

from ambient.audio.decode import iter_blocks
from ambient.cli.main import main
from ambient.config import resolve_paths
from ambient.localsock import browser_subprotocols
from ambient.protect.sealed import Protector
from ambient.streaming.journal import read_journal, rebuild_transcript
from ambient.transcript.serialise import transcript_sha256

REPO = Path(__file__).resolve().parents[1]
CLINICAL_WORDS = ("chest", "pain", "metformin", "twice a day", "blood", "pressure", "ecg", "week")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class AgentProc:
    home: Path
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def token(self) -> str:
        return (self.home / "config" / "agent.token").read_text().strip()

    @property
    def inbox(self) -> Path:
        return self.home / "data" / "inbox"

    def client(self, **headers: str) -> ClientConnection:
        wanted = {"Authorization": f"Bearer {self.token}"} | headers
        return connect(
            f"ws://127.0.0.1:{self.port}", additional_headers=wanted, open_timeout=10, close_timeout=2
        )


def start_agent(
    home: Path, port: int, env: dict[str, str] | None = None, timeout_s: float = 240.0
) -> AgentProc:
    """``ambient agent --foreground`` in its own process, returned once it listens.

    Loading the model and building the drafter takes ~25 s on an idle 2-core machine and minutes
    on a shared one, hence the long deadline; an agent that exits or never listens fails with its log.
    """
    log = home / f"agent-{time.monotonic_ns()}.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
    full_env |= {"AMBIENT_HOME": str(home), "AMBIENT_AGENT_PORT": str(port), **(env or {})}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ambient", "agent", "--foreground"],
            cwd=REPO,
            env=full_env,
            stdout=out,
            stderr=out,
        )
    deadline = time.monotonic() + timeout_s
    while b"listening on" not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"the agent did not start within {timeout_s:.0f} s:\n{log.read_text()}")
        time.sleep(0.1)
    return AgentProc(home, port, proc, log)


def stop_agent(agent: AgentProc) -> None:
    if agent.proc.poll() is None:
        agent.proc.send_signal(signal.SIGTERM)
        try:
            agent.proc.wait(15)
        except subprocess.TimeoutExpired:
            agent.proc.kill()
            agent.proc.wait()


def pcm_frames(wav: Path, chunk_s: float = 0.1) -> list[bytes]:
    return [
        (np.clip(b.samples, -1, 1) * 32767).round().astype("<i2").tobytes() for b in iter_blocks(wav, chunk_s)
    ]


def send_paced(ws: ClientConnection, frames: list[bytes], speed: float, chunk_s: float = 0.1) -> None:
    """At ``speed`` × real time, as a device would stream (but faster)."""
    began = time.monotonic()
    for i, frame in enumerate(frames):
        delay = began + i * chunk_s / speed - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        ws.send(frame)


def until(
    ws: ClientConnection, kind: str, timeout_s: float = 60.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read messages until one of type ``kind``; return it and everything read before it."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while True:
        message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if message.get("type") == kind:
            return message, seen
        seen.append(message)


def committed_text(messages: list[dict[str, Any]]) -> str:
    return " ".join(w["word"] for m in messages if m.get("kind") == "committed" for w in m["words"]).lower()


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProc]:
    home = tmp_path_factory.mktemp("agent-home")
    second_inbox = home / "ehr-inbox"
    env = {
        "AMBIENT_DELIVERY_TARGETS": f"inbox:{second_inbox}",
        "AMBIENT_AGENT_ORIGINS": "https://ehr.example",
    }
    running = start_agent(home, free_port(), env)
    yield running
    stop_agent(running)


def test_encounter_over_the_websocket_becomes_a_note(agent: AgentProc, speech_wav: Path) -> None:
    frames = pcm_frames(speech_wav)
    with agent.client() as owner, agent.client() as watcher:
        watcher.send(json.dumps({"type": "subscribe"}))
        until(watcher, "subscribed", 10)
        owner.send(
            json.dumps({"type": "start", "encounter_id": "visit-1", "patient_reference": "Patient/42"})
        )
        until(owner, "started", 10)
        # a second start (from anyone) while one runs is refused, and says which encounter runs
        watcher.send(json.dumps({"type": "start", "encounter_id": "visit-2"}))
        refusal, _ = until(watcher, "error", 10)
        assert "visit-1 is still running" in refusal["message"]
        send_paced(owner, frames, speed=4.0)
        owner.send(json.dumps({"type": "stop"}))
        ready, before = until(owner, "note_ready", 90)
        watched_ready, watched = until(watcher, "note_ready", 10)

    assert ready == watched_ready and ready["encounter_id"] == "visit-1"
    committed = [m for m in before if m.get("kind") == "committed"]
    assert committed and [m for m in watched if m.get("kind") == "committed"] == committed
    assert all(m["encounter_id"] == "visit-1" for m in committed)
    ends = [w["end_s"] for m in committed for w in m["words"]]
    assert ends == sorted(ends) and ends[-1] <= ready["audio_s"] + 0.5
    heard = committed_text(committed)
    assert sum(word in heard for word in CLINICAL_WORDS) >= 3, heard
    assert 0 < ready["stop_to_note_s"] < 30

    md = agent.inbox / "visit-1.note.md"
    assert str(md) in ready["inbox"]
    note = md.read_text().lower()
    assert any(word in note for word in CLINICAL_WORDS), note
    drafted = json.loads((agent.inbox / "visit-1.note.json").read_text())["provenance"]
    agent_keys = Protector.for_paths(resolve_paths({"AMBIENT_HOME": str(agent.home)}))  # sealed journal
    journal = read_journal(agent.home / "data" / "encounters" / "visit-1", agent_keys)
    assert drafted["transcript_sha256"] == transcript_sha256(rebuild_transcript(journal, agent_keys))
    assert [w.word.lower() for w in journal.words] == heard.split()
    fhir = json.loads((agent.inbox / "visit-1.fhir.json").read_text())
    assert "Patient/42" in json.dumps(fhir)
    # the configured delivery target got it through the outbox
    assert [d["state"] for d in ready["deliveries"]] == ["delivered"]
    assert (agent.home / "ehr-inbox" / "visit-1.note.md").read_text() == md.read_text()
    # the journal is closed: a restart will not finalise this encounter again
    assert (agent.home / "data" / "encounters" / "visit-1" / "closed.json").exists()
    # [retention]: delivered everywhere, so the recording is gone; the words stay until purge
    assert not (agent.home / "data" / "encounters" / "visit-1" / "audio.pcm").exists()
    # audit: the encounter's lineage, with ids and hashes only
    audit = (agent.home / "data" / "audit" / "audit.jsonl").read_text()
    entries = [json.loads(line) for line in audit.splitlines()]
    mine = [e["event"] for e in entries if e["ids"].get("encounter_id") == "visit-1"]
    for event in ("encounter.started", "encounter.stopped", "transcript.committed", "note.drafted"):
        assert mine.count(event) == 1, mine
    assert "warm-up" not in audit  # the drafter's warm-up leaves no trace in the real trail
    assert "metformin" not in audit.lower() and "Patient/42" not in audit


def test_the_next_encounter_does_not_mix_with_the_last(agent: AgentProc, speech_wav: Path) -> None:
    frames = pcm_frames(speech_wav)
    with agent.client() as device:
        device.send(json.dumps({"type": "start", "encounter_id": "visit-3"}))
        until(device, "started", 10)
        device.send(json.dumps({"type": "pause"}))
        until(device, "paused", 10)
        for frame in frames[:40]:  # dropped: the clinician paused
            device.send(frame)
    # the device dropped off; it comes back on a new connection and resumes the same encounter
    with agent.client() as ws:
        ws.send(json.dumps({"type": "resume"}))
        until(ws, "resumed", 10)
        send_paced(ws, frames[-30:], speed=8.0)  # only the last sentence
        ws.send(json.dumps({"type": "stop"}))
        ready, _ = until(ws, "note_ready", 90)
    assert ready["audio_s"] == pytest.approx(len(frames[-30:]) * 0.1, abs=0.15)
    transcript = (agent.inbox / "visit-3.note.json").read_text().lower()
    assert "metformin" not in transcript and "chest" not in transcript


def test_gates_and_bad_frames_close_only_that_connection(agent: AgentProc) -> None:
    with pytest.raises(InvalidStatus) as wrong:
        connect(
            f"ws://127.0.0.1:{agent.port}", additional_headers={"Authorization": "Bearer " + "0" * 64}
        ).close()
    assert wrong.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as page:
        agent.client(Origin="https://evil.example").close()
    assert page.value.response.status_code == 403

    # an EHR page on the [agent] origins list, with the token as a browser sends it (subprotocol)
    page_ws = connect(
        f"ws://127.0.0.1:{agent.port}",
        origin=Origin("https://ehr.example"),
        subprotocols=[Subprotocol(p) for p in browser_subprotocols(agent.token)],
        open_timeout=10,
    )
    with page_ws:
        assert page_ws.subprotocol == "ambient.v1"
        page_ws.send(json.dumps({"type": "status"}))
        until(page_ws, "status", 10)

    with agent.client() as bystander:
        for bad, code in (
            (b"\x01\x02\x03", 1007),  # not whole 16-bit samples
            (b"\x00" * (300 * 1024), 1009),  # over the frame limit
            ("{not json", 1007),
            (json.dumps({"type": "dance"}), 1007),
        ):
            with agent.client() as ws:
                ws.send(bad)
                with pytest.raises(ConnectionClosed):
                    ws.recv(timeout=10)
                assert ws.close_code == code
        with agent.client() as ws:
            ws.send(b"\x00\x00" * 1600)  # audio with no encounter: an error reply, the socket stays
            error, _ = until(ws, "error", 10)
            assert "send start first" in error["message"]
            ws.send(json.dumps({"type": "status"}))
            until(ws, "status", 10)
        bystander.send(json.dumps({"type": "status"}))
        status, _ = until(bystander, "status", 10)
    assert status["pid"] == agent.proc.pid and agent.proc.poll() is None


def test_encounter_command(
    agent: AgentProc, speech_wav: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AMBIENT_HOME", str(agent.home))
    monkeypatch.setenv("AMBIENT_AGENT_PORT", str(agent.port))
    assert main(["encounter", "status"]) == 0
    out = capsys.readouterr().out
    assert f"agent pid {agent.proc.pid}" in out and "no encounter running" in out
    assert main(["encounter", "stop"]) == 1
    assert "no encounter is running" in capsys.readouterr().err
    argv = ["encounter", "start", "--encounter-id", "cli-1", "--replay", str(speech_wav), "--speed", "8"]
    assert main(argv) == 0
    assert main(["encounter", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert status["encounter"]["encounter_id"] == "cli-1"
    time.sleep(2.5)
    assert main(["encounter", "stop", "--json"]) == 0
    ready = json.loads(capsys.readouterr().out)
    assert ready["encounter_id"] == "cli-1" and Path(ready["inbox"][0]).is_file()
    # no agent on that port: a clear message and exit code 7
    monkeypatch.setenv("AMBIENT_AGENT_PORT", str(free_port()))
    assert main(["encounter", "status"]) == 7
    err = capsys.readouterr().err
    assert "no agent is listening" in err and "ambient agent" in err


def test_kill_9_mid_encounter_is_finalised_at_the_next_start(
    tmp_path: Path, speech_wav: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = pcm_frames(speech_wav)
    port = free_port()
    first = start_agent(tmp_path, port)
    try:
        with first.client() as ws:
            ws.send(
                json.dumps({"type": "start", "encounter_id": "crash-1", "patient_reference": "Patient/7"})
            )
            until(ws, "started", 10)
            send_paced(ws, frames[: len(frames) * 2 // 3], speed=4.0)
            heard: list[dict[str, Any]] = []
            while not any(m.get("kind") == "committed" for m in heard):  # something was heard
                heard.append(until(ws, "transcript", 30)[0])
            Path("/tmp/agent_timing").write_text(f"{time.monotonic()}")
            time.sleep(0.5)
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(10)
    finally:
        first.proc.kill()
    folder = tmp_path / "data" / "encounters" / "crash-1"
    assert not (folder / "closed.json").exists()
    journaled_s = (folder / "audio.pcm").stat().st_size / 2 / 16000
    assert journaled_s >= len(frames) * 2 // 3 * 0.1 - 1.0  # at most about a second lost

    second = start_agent(tmp_path, port)
    try:
        monkeypatch.setenv("AMBIENT_HOME", str(tmp_path))
        monkeypatch.setenv("AMBIENT_AGENT_PORT", str(port))
        assert main(["encounter", "status"]) == 0
        out = capsys.readouterr().out
        assert "interrupted encounter crash-1: finalised" in out
    finally:
        stop_agent(second)
    # every word committed before the crash is in the finalised transcript, in order, at its start
    before = [w["word"] for m in heard if m.get("kind") == "committed" for w in m["words"]]
    recovered = read_journal(folder)
    assert [w.word for w in recovered.words[: len(before)]] == before
    assert recovered.untranscribed_s < 2.0  # the tail after the last commit was transcribed too
    # the note was drafted from exactly that transcript (what the drafter makes of tiny.en's
    # words varies; that it is this encounter's words does not)
    note = json.loads((tmp_path / "data" / "inbox" / "crash-1.note.json").read_text())
    assert note["encounter_id"] == "crash-1"
    assert note["provenance"]["transcript_sha256"] == transcript_sha256(rebuild_transcript(recovered))
    assert "Patient/7" in (tmp_path / "data" / "inbox" / "crash-1.fhir.json").read_text()
    assert json.loads((folder / "closed.json").read_text())["recovered"] is True


def test_agent_install_writes_a_user_unit(ambient_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agent", "install"]) == 0
    out = capsys.readouterr().out
    unit = ambient_home / "systemd" / "user" / "ambient-agent.service"
    text = unit.read_text()
    assert "ExecStart=" in text and "agent --foreground" in text and "WantedBy=default.target" in text
    assert f"AMBIENT_HOME={ambient_home}" in text
    assert "systemctl --user enable --now ambient-agent.service" in out
    token = ambient_home / "config" / "agent.token"
    assert str(token) in out and token.stat().st_mode & 0o777 == 0o600


def test_agent_starts_in_the_background(
    ambient_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    assert main(["agent", "--port", str(port)]) == 0  # returns once the detached agent listens
    err = capsys.readouterr().err
    assert "started in the background" in err and "agent.log" in err
    pid = int((ambient_home / "logs" / "agent.log").read_text().split("(pid ")[1].split(")")[0])
    try:
        monkeypatch.setenv("AMBIENT_AGENT_PORT", str(port))
        assert main(["encounter", "status", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["pid"] == pid != os.getpid()
    finally:
        os.kill(pid, signal.SIGTERM)
        assert os.waitpid(pid, 0)[1] == 0  # a clean stop on SIGTERM
    assert "stopped" in (ambient_home / "logs" / "agent.log").read_text()
