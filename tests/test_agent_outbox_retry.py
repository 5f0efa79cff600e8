"""A note the EHR peer could not take at stop goes out by itself once the peer is back.

Real agent process, real tiny.en model, the ``hl7`` package's MLLP server as the peer: it is
down when the encounter stops (the note waits in the outbox), then started on the same port.
The agent's own outbox pass (``[agent] outbox_retry_s``) must deliver the note exactly once,
without anyone running ``ambient outbox drain``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.ehr_peers import MllpListener
from tests.reliability import record
from tests.test_agent import free_port, pcm_frames, send_paced, start_agent, stop_agent, until

pytestmark = [pytest.mark.model, pytest.mark.espeak, pytest.mark.reliability]


def test_a_queued_note_goes_out_when_the_peer_comes_back(tmp_path: Path, speech_wav: Path) -> None:
    peer = MllpListener()  # not started yet: the peer is down
    env = {
        "AMBIENT_DELIVERY_TARGETS": f"mllp://127.0.0.1:{peer.port}",
        "AMBIENT_AGENT_OUTBOX_RETRY_S": "1",
        "AMBIENT_AGENT_METRICS_PORT": "0",
    }
    agent = start_agent(tmp_path, free_port(), env)
    try:
        with agent.client() as ws:
            start = {"type": "start", "encounter_id": "visit-r1", "patient_identifier": "MRN1"}
            ws.send(json.dumps(start))
            until(ws, "started", 10)
            send_paced(ws, pcm_frames(speech_wav), speed=4.0)
            ws.send(json.dumps({"type": "stop"}))
            ready, _ = until(ws, "note_ready", 120)
        assert [d["state"] for d in ready["deliveries"]] == ["pending"]  # the peer was down
        peer.start()
        try:
            deadline = time.monotonic() + 60
            while not peer.received and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(3)  # several more passes: none may send it again
            received = list(peer.received)
        finally:
            peer.stop()
    finally:
        stop_agent(agent)
    record("faults", "agent retries its outbox when the MLLP peer returns", injected=1,
           survived=int(len(received) == 1), notes_lost=int(not received),
           notes_duplicated=max(0, len(received) - 1))  # fmt: skip
    assert len(received) == 1, f"{len(received)} copies delivered"
    assert "MDM^T02" in received[0]
