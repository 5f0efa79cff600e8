"""EHR peers misbehaving: the outbox retries or dead-letters as designed, and the agent stays responsive.

Real peers only: the sekmet FHIR server and the ``hl7`` MLLP listener, with a fault-injecting
loopback proxy in front (tests/fault_proxy.py) that makes them down, slow, 500, 429 with
Retry-After, cut the connection mid-message or mid-ACK, or never answer. After each fault the
peer recovers and the note must end up delivered exactly once on the server (conditional create
on the FHIR side; the same MSH-10 control id on a resend on the HL7 side, so the receiver can
recognise the duplicate), or dead-lettered with the reason when the peer refuses it.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ambient.ehr.fhir_resources import DRAFT_SYSTEM, draft_identifier
from ambient.ehr.hl7v2 import control_id
from ambient.ehr.options import DeliveryOptions
from ambient.ehr.outbox import Outbox, OutboxItem
from ambient.types import NoteDraft
from tests.ehr_peers import MllpListener, SekmetServer, context_for, free_port, make_note
from tests.fault_proxy import HttpFault, HttpFaultProxy, MllpFaultProxy
from tests.reliability import record

pytestmark = pytest.mark.reliability

FAST = DeliveryOptions(
    backoff_base_s=0.05, backoff_max_s=0.2, max_attempts=20, fhir_timeout_s=2, hl7_timeout_s=1
)


@pytest.fixture(scope="module")
def fhir_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SekmetServer]:
    server = SekmetServer(tmp_path_factory.mktemp("sekmet-faults"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def proxy(fhir_server: SekmetServer) -> Iterator[HttpFaultProxy]:
    running = HttpFaultProxy(f"http://127.0.0.1:{fhir_server.port}")
    running.start()
    yield running
    running.stop()


def copies_on_server(server: SekmetServer, note: NoteDraft) -> int:
    return len(server.search("DocumentReference", identifier=f"{DRAFT_SYSTEM}|{draft_identifier(note)}"))


def one_pass(outbox: Outbox) -> OutboxItem:
    [item] = outbox.drain()
    return item


def settle(outbox: Outbox, timeout_s: float = 30) -> OutboxItem:
    [item] = outbox.drain_until_settled(timeout_s=timeout_s)
    return item


# ---- FHIR ----------------------------------------------------------------------------------------


def test_fhir_down_then_back(tmp_path: Path, fhir_server: SekmetServer) -> None:
    port = free_port()
    outbox = Outbox(tmp_path / "o.sqlite3", FAST)
    note = make_note(tmp_path, "enc-down")
    outbox.enqueue(note, context_for("enc-down"), f"fhir:http://127.0.0.1:{port}/fhir")
    failed = one_pass(outbox)
    assert failed.state == "pending" and "unreachable" in (failed.last_error or "")
    proxy = HttpFaultProxy(f"http://127.0.0.1:{fhir_server.port}", port=port)
    proxy.start()
    try:
        done = settle(outbox)
    finally:
        proxy.stop()
    assert done.state == "delivered" and copies_on_server(fhir_server, note) == 1
    record("faults", "FHIR server down", injected=1, survived=1)


def test_fhir_slow_answer_times_out_and_the_retry_finds_the_first_copy(
    tmp_path: Path, fhir_server: SekmetServer, proxy: HttpFaultProxy
) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", FAST)
    note = make_note(tmp_path, "enc-slow")
    outbox.enqueue(note, context_for("enc-slow"), f"fhir:{proxy.base_url}")
    proxy.faults.extend([HttpFault(), HttpFault(delay_s=FAST.fhir_timeout_s + 2)])  # search ok, create slow
    began = time.monotonic()
    failed = one_pass(outbox)
    assert failed.state == "pending" and "Timeout" in (failed.last_error or "")
    assert time.monotonic() - began < FAST.fhir_timeout_s + 1.5  # the timeout bounded the wait
    time.sleep(2.5)  # the server did create it; its answer was merely late
    done = settle(outbox)
    assert done.state == "delivered" and copies_on_server(fhir_server, note) == 1
    record("faults", "FHIR server slow (timeout)", injected=1, survived=1, notes_duplicated=0)


def test_fhir_500_is_retried_until_it_recovers(
    tmp_path: Path, fhir_server: SekmetServer, proxy: HttpFaultProxy
) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", FAST)
    note = make_note(tmp_path, "enc-500")
    outbox.enqueue(note, context_for("enc-500"), f"fhir:{proxy.base_url}")
    boom = HttpFault(
        status=500, body=b"<html>Internal Server Error</html>", headers=(("Content-Type", "text/html"),)
    )
    # the create reaches the server and *then* the proxy answers 500: the retry must not duplicate
    proxy.faults.extend([boom, HttpFault(), HttpFault(status=500, forward_first=True)])
    done = settle(outbox)
    assert done.state == "delivered" and done.attempts == 3
    assert copies_on_server(fhir_server, note) == 1
    record("faults", "FHIR server 500", injected=2, survived=2)


def test_fhir_429_retry_after_is_honoured(
    tmp_path: Path, fhir_server: SekmetServer, proxy: HttpFaultProxy
) -> None:
    # our own backoff is 0.05-0.2 s; Retry-After is honoured up to backoff_max_s (10 s here)
    outbox = Outbox(tmp_path / "o.sqlite3", replace(FAST, backoff_max_s=10))
    note = make_note(tmp_path, "enc-429")
    outbox.enqueue(note, context_for("enc-429"), f"fhir:{proxy.base_url}")
    proxy.faults.append(HttpFault(status=429, headers=(("Retry-After", "2"),)))
    before = time.time()
    waiting = one_pass(outbox)
    assert waiting.state == "pending" and waiting.next_attempt_at - before >= 1.9
    assert "429" in (waiting.last_error or "")
    assert outbox.drain() == []  # not due yet
    time.sleep(max(0.0, waiting.next_attempt_at - time.time()) + 0.05)
    http_date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 4))
    proxy.faults.append(HttpFault(status=503, headers=(("Retry-After", http_date),)))
    before = time.time()
    again = one_pass(outbox)
    assert again.state == "pending" and again.next_attempt_at - before >= 1.5
    done = settle(outbox)
    assert done.state == "delivered" and copies_on_server(fhir_server, note) == 1
    record("faults", "FHIR server 429/503 with Retry-After", injected=2, survived=2)


def test_fhir_500_forever_dead_letters_after_max_attempts(tmp_path: Path, proxy: HttpFaultProxy) -> None:
    options = DeliveryOptions(backoff_base_s=0.02, backoff_max_s=0.05, max_attempts=4, fhir_timeout_s=2)
    outbox = Outbox(tmp_path / "o.sqlite3", options)
    note = make_note(tmp_path, "enc-dead")
    outbox.enqueue(note, context_for("enc-dead"), f"fhir:{proxy.base_url}")
    proxy.always = HttpFault(status=500)
    dead = settle(outbox)
    assert dead.state == "dead" and dead.attempts == 4
    assert (dead.last_error or "").startswith("gave up after 4 attempts") and "500" in (dead.last_error or "")
    record(
        "faults",
        "FHIR server 500 forever (dead letter)",
        injected=4,
        survived=4,
        detail="dead-lettered after 4",
    )


# ---- MLLP ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["AE", "AR"])
def test_mllp_rejection_dead_letters_at_once_with_the_reason(tmp_path: Path, code: str) -> None:
    listener = MllpListener(mode=code)
    listener.start()
    try:
        outbox = Outbox(tmp_path / "o.sqlite3", FAST)
        note = make_note(tmp_path, f"enc-{code}")
        outbox.enqueue(note, context_for(f"enc-{code}"), f"mllp://127.0.0.1:{listener.port}")
        dead = one_pass(outbox)
    finally:
        listener.stop()
    assert dead.state == "dead" and dead.attempts == 1 and code in (dead.last_error or "")
    assert "Unknown patient" in (dead.last_error or "")
    record("faults", f"MLLP peer answers {code}", injected=1, survived=1)


@pytest.mark.parametrize("mode", ["drop_request", "cut_ack", "silent"])
def test_mllp_connection_faults_are_retried_and_then_delivered(tmp_path: Path, mode: str) -> None:
    listener = MllpListener()
    listener.start()
    proxy = MllpFaultProxy(listener.port, mode=mode)
    proxy.start()
    try:
        outbox = Outbox(tmp_path / "o.sqlite3", FAST)
        note = make_note(tmp_path, f"enc-{mode}")
        outbox.enqueue(note, context_for(f"enc-{mode}"), f"mllp://127.0.0.1:{proxy.port}")
        began = time.monotonic()
        failed = one_pass(outbox)
        assert time.monotonic() - began < FAST.hl7_timeout_s + 2
        assert failed.state == "pending" and failed.last_error
        proxy.mode = "pass"
        done = settle(outbox)
    finally:
        proxy.stop()
        listener.stop()
    assert done.state == "delivered"
    # a message the peer did see twice carries the same control id: the receiver can drop the copy
    sent = [m for m in listener.received if control_id(note) in m]
    assert len(sent) == len(listener.received) == (2 if mode == "cut_ack" else 1)
    record("faults", f"MLLP peer {mode.replace('_', ' ')}", injected=1, survived=1)


def test_mllp_silent_forever_dead_letters(tmp_path: Path) -> None:
    listener = MllpListener(mode="silent")
    listener.start()
    try:
        options = DeliveryOptions(backoff_base_s=0.02, backoff_max_s=0.05, max_attempts=2, hl7_timeout_s=0.5)
        outbox = Outbox(tmp_path / "o.sqlite3", options)
        note = make_note(tmp_path, "enc-silent")
        outbox.enqueue(note, context_for("enc-silent"), f"mllp://127.0.0.1:{listener.port}")
        dead = settle(outbox)
    finally:
        listener.stop()
    assert dead.state == "dead" and "gave up after 2 attempts" in (dead.last_error or "")
    assert "no ACK" in (dead.last_error or "")
    record(
        "faults",
        "MLLP peer never answers (dead letter)",
        injected=2,
        survived=2,
        detail="dead-lettered after 2",
    )


# ---- the agent while a peer is slow ----------------------------------------------------------


@pytest.mark.model
@pytest.mark.espeak
def test_agent_stays_responsive_while_the_fhir_peer_hangs(
    tmp_path_factory: pytest.TempPathFactory, proxy: HttpFaultProxy, speech_wav: Path
) -> None:
    from tests.test_agent import pcm_frames, start_agent, stop_agent, until

    home = tmp_path_factory.mktemp("agent-slow-peer")
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "delivery.toml").write_text("[fhir]\ntimeout_s = 8\n", encoding="utf-8")
    # The peer holds every answer past the sink's 8 s timeout. An agent that waited for it on its event
    # loop would leave status unanswered for 8 s or more; drafting in a thread on a loaded 2-core
    # machine delays it by a few seconds at most, hence the 5 s bound below.
    proxy.always = HttpFault(delay_s=10)
    agent = start_agent(home, free_port(), {"AMBIENT_DELIVERY_TARGETS": f"fhir:{proxy.base_url}"})
    waits: list[float] = []
    try:
        with agent.client() as device, agent.client() as watcher:
            device.send(
                json.dumps({"type": "start", "encounter_id": "slow-peer", "patient_reference": "Patient/7"})
            )
            until(device, "started", 20)
            for frame in pcm_frames(speech_wav)[:40]:
                device.send(frame)
            device.send(json.dumps({"type": "stop"}))
            stop_sent = time.monotonic()
            ready = None
            while ready is None and time.monotonic() - stop_sent < 120:
                asked = time.monotonic()
                watcher.send(json.dumps({"type": "status"}))
                until(watcher, "status", 10)
                waits.append(time.monotonic() - asked)
                with contextlib.suppress(TimeoutError):
                    ready = until(device, "note_ready", 0.5)[0]
    finally:
        stop_agent(agent)
    assert ready is not None, agent.log.read_text()[-2000:]
    assert [d["state"] for d in ready["deliveries"]] == ["pending"]  # kept in the outbox for a retry
    assert (home / "data" / "inbox" / "slow-peer.note.md").exists()
    assert len(waits) >= 3 and max(waits) < 5.0, waits
    record(
        "faults",
        "agent while the FHIR peer hangs",
        injected=1,
        survived=1,
        detail=f"status p100 {max(waits):.2f} s",
    )
