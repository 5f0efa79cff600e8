"""The agent's Prometheus endpoint, scraped during a replayed encounter through a real agent.

The agent runs as its own process with the real tiny.en model; its delivery targets are a second
inbox (delivered) and an MLLP port nobody listens on (a peer that is down: the note waits in the
outbox). Counters must move with the encounter, the outbox figures must show the waiting note,
and no label may carry the encounter id, a patient reference, a target address or transcript text.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ambient.agent.metrics import AgentMetrics, CommitClock, MetricsPortError, OutboxCollector, sink_kind
from ambient.ehr.outbox import Outbox
from tests.ehr_peers import context_for, make_note
from tests.test_agent import AgentProc, free_port, pcm_frames, send_paced, start_agent, stop_agent, until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> tuple[str, Samples]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_commit_latency_counts_from_the_arrival_of_the_word_audio() -> None:
    clock = CommitClock()
    for i in range(1, 11):  # ten 0.1 s chunks, arriving at t = 100.1 … 101.0
        clock.arrived(i * 0.1, 100.0 + i * 0.1)
    assert clock.latency_s(0.25, 101.5) == pytest.approx(1.2)  # its audio came with the chunk ending 0.3
    assert clock.latency_s(1.0, 101.5) == pytest.approx(0.5)
    assert clock.latency_s(1.5, 102.0) is None  # audio not received yet: not measured
    assert len(clock._arrivals) <= 2  # chunks before the last committed word are let go


def test_sink_labels_never_carry_the_address() -> None:
    assert sink_kind("fhir:https://ehr.example/fhir") == "fhir"
    assert sink_kind("mllp://10.0.0.5:2575") == "mllp"
    assert sink_kind("inbox:/home/dr/notes") == "inbox"
    assert sink_kind("secret-system:x") == "other"


def test_outbox_collector_reads_depth_age_and_dead_letters(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    first = next(iter(OutboxCollector(path).collect()))
    assert first.samples[0].value == 0  # no outbox yet: zero, no error
    outbox = Outbox(path)
    note = make_note(tmp_path, "enc-metrics")
    outbox.enqueue(note, context_for("enc-metrics"), f"mllp://127.0.0.1:{free_port()}")
    outbox.enqueue(note, context_for("enc-metrics"), f"inbox:{tmp_path / 'in'}")
    outbox.close()
    later = time.time() + 30
    families = {f.name: f for f in OutboxCollector(path, clock=lambda: later).collect()}
    depth = {s.labels["sink"]: s.value for s in families["ambient_outbox_depth"].samples}
    age = {s.labels["sink"]: s.value for s in families["ambient_outbox_oldest_age_seconds"].samples}
    assert depth == {"inbox": 1, "mllp": 1}
    assert 29 <= age["mllp"] <= 35


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(MetricsPortError, match=r"metrics_port"):
            AgentMetrics().serve(taken.getsockname()[1])


@pytest.fixture(scope="module")
def agent_with_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AgentProc, int]]:
    home = tmp_path_factory.mktemp("agent-metrics-home")
    metrics_port = free_port()
    env = {
        "AMBIENT_AGENT_METRICS_PORT": str(metrics_port),
        # one target that works, one peer that is down
        "AMBIENT_DELIVERY_TARGETS": f"inbox:{home / 'ehr-inbox'},mllp://127.0.0.1:{free_port()}",
    }
    running = start_agent(home, free_port(), env)
    yield running, metrics_port
    stop_agent(running)


def test_metrics_move_during_a_replayed_encounter(
    agent_with_metrics: tuple[AgentProc, int], speech_wav: Path
) -> None:
    agent, port = agent_with_metrics
    assert f"metrics on http://127.0.0.1:{port}/metrics" in agent.log.read_text()
    _, before = scrape(port)
    assert value(before, "ambient_encounters_started_total") == 0
    [info] = [dict(k[1]) for k in before if k[0] == "ambient_build_info"]
    assert info["model"] == "tiny.en" and info["template"] == "ambient.soap_note" and info["pipeline"]

    frames = pcm_frames(speech_wav)
    half = len(frames) // 2
    with agent.client() as device:
        start = {"type": "start", "encounter_id": "visit-m1", "patient_reference": "Patient/7"}
        start |= {"patient_identifier": "MRN777", "patient_identifier_system": "HOSP"}  # HL7 PID-3
        device.send(json.dumps(start))
        until(device, "started", 10)
        send_paced(device, frames[:half], speed=4.0)
        _, during = scrape(port)  # mid-encounter
        send_paced(device, frames[half:], speed=4.0)
        device.send(json.dumps({"type": "stop"}))
        ready, seen = until(device, "note_ready", 90)
    text, after = scrape(port)

    assert value(during, "ambient_encounters_started_total") == 1
    assert 0 < value(during, "ambient_audio_seconds_total") <= half * 0.1 + 0.01
    assert value(during, "ambient_encounters_finished_total", how="stopped") == 0

    words = sum(len(m["words"]) for m in seen if m.get("kind") == "committed")
    assert words > 0
    assert value(after, "ambient_audio_seconds_total") == pytest.approx(ready["audio_s"], abs=0.05)
    assert value(after, "ambient_encounters_finished_total", how="stopped") == 1
    assert value(after, "ambient_commit_latency_seconds_count") == words
    assert 0 < value(after, "ambient_commit_latency_seconds_sum") / words < 30
    assert value(after, "ambient_note_drafting_seconds_count") == 1
    assert 0 < value(after, "ambient_asr_real_time_factor") < 5
    assert value(after, "ambient_asr_decoded_audio_seconds_total") > 0
    assert value(after, "ambient_deliveries_total", sink="inbox", state="delivered") == 1
    assert value(after, "ambient_delivery_failures_total", sink="mllp") == 1
    assert value(after, "ambient_outbox_depth", sink="mllp") == 1
    assert value(after, "ambient_outbox_oldest_age_seconds", sink="mllp") >= 0
    assert value(after, "ambient_outbox_dead_letters", sink="mllp") == 0  # down, not refused: retried later

    # nothing that identifies the encounter, the patient or a peer, and no transcript words
    committed = [w["word"] for m in seen if m.get("kind") == "committed" for w in m["words"]]
    heard = {w.strip(".,?!").lower() for w in committed}
    labels = {v.lower() for key in after for k, v in key[1] if k != "le"}
    assert not labels & heard, labels & heard
    for secret in ("visit-m1", "Patient/7", "MRN777", "127.0.0.1", str(agent.home)):
        assert secret not in text


def test_metrics_listen_on_loopback_only(agent_with_metrics: tuple[AgentProc, int]) -> None:
    _, port = agent_with_metrics
    with pytest.raises(OSError), socket.create_connection(("127.0.0.2", port), timeout=2):
        pass  # bound to 127.0.0.1 exactly: another address of this machine is refused
