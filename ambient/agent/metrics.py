"""Prometheus metrics of the agent, served on loopback only.

Why a metrics endpoint at all: a site that runs the agent on every clinician's machine has to see
that it keeps up (real-time factor, commit latency), that notes get drafted (drafting time,
failures) and that they leave the machine (outbox depth, age of the oldest waiting note,
delivery failures per sink) before a clinician complains.

What a label may carry: fixed words (a stage, a sink *kind* such as ``fhir``), and the versions
of the model, template and pipeline in one info metric. Never an encounter id, a patient
reference, a target URL or any transcript text: ids are PHI-adjacent and unbounded (one series per
encounter would grow the scrape forever). Per-encounter detail stays in the audit trail.

The outbox figures are read from its SQLite file at scrape time (read-only), so notes queued by
``ambient batch`` or retried by ``ambient outbox drain`` in another process count too.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ambient import PIPELINE_VERSION
from ambient.errors import ConfigError
from ambient.logs import event_log

if TYPE_CHECKING:
    from ambient.agent.finalise import NoteReady
    from ambient.agent.server import Agent

# Sink kinds we know (ambient/ehr/sink.py SINKS); any other scheme is reported as "other".
SINK_KINDS = ("inbox", "fhir", "mllp", "editor", "folder")
COMMIT_BUCKETS_S = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
DRAFT_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class MetricsPortError(ConfigError):
    """The configured metrics port cannot be bound (another agent, or another program, holds it)."""


def sink_kind(target: str) -> str:
    """``fhir:https://ehr.example/fhir`` → ``fhir``: the label never carries the URL or a path."""
    scheme = target.split(":", 1)[0].strip().lower()
    return scheme if scheme in SINK_KINDS else "other"


class CommitClock:
    """When did the audio up to a given encounter second arrive? Commit latency is measured from
    there to the moment the word was committed, so it is wall time at any replay speed.

    Arrivals are (audio seconds received so far, monotonic time) pairs, kept only until the words
    that need them are committed: bounded by the uncommitted tail, not by the encounter's length.
    """

    def __init__(self) -> None:
        self._arrivals: deque[tuple[float, float]] = deque()

    def arrived(self, received_s: float, at: float) -> None:
        self._arrivals.append((received_s, at))

    def latency_s(self, word_end_s: float, now: float) -> float | None:
        """Seconds from the arrival of the chunk holding ``word_end_s`` to ``now``."""
        while len(self._arrivals) > 1 and self._arrivals[1][0] < word_end_s:
            self._arrivals.popleft()  # chunks wholly before this word: no later word needs them
        for received_s, at in self._arrivals:
            if received_s >= word_end_s:
                return max(0.0, now - at)
        return None  # a word past the audio received (should not happen): not measured


class OutboxCollector(Collector):
    """Depth, oldest waiting age and dead letters per sink kind, read from the outbox file."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "ambient_outbox_depth", "Notes waiting in the outbox (pending or sending)", labels=["sink"]
        )
        age = GaugeMetricFamily(
            "ambient_outbox_oldest_age_seconds",
            "Age of the oldest note still waiting in the outbox (0 when none waits)",
            labels=["sink"],
        )
        dead = GaugeMetricFamily(
            "ambient_outbox_dead_letters",
            "Notes the outbox gave up on (see `ambient outbox list`)",
            labels=["sink"],
        )
        rows = self._rows()
        now = self.clock()
        for kind in sorted({sink_kind(t) for t, _, _ in rows} | {"inbox"}):
            mine = [(s, c) for t, s, c in rows if sink_kind(t) == kind]
            waiting = [c for s, c in mine if s in ("pending", "sending")]
            depth.add_metric([kind], len(waiting))
            age.add_metric([kind], max((now - c for c in waiting), default=0.0))
            dead.add_metric([kind], sum(1 for s, _ in mine if s == "dead"))
        yield from (depth, age, dead)

    def _rows(self) -> list[tuple[str, str, float]]:
        """(target, state, created epoch seconds) of every row not delivered; [] without an outbox."""
        if not self.path.exists():
            return []
        try:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=1.0)
        except sqlite3.Error:
            return []
        try:
            found = db.execute("SELECT target, state, created_at FROM items WHERE state != 'delivered'")
            return [(t, s, _epoch(c)) for t, s, c in found.fetchall()]
        except sqlite3.Error:  # a schema we do not know yet, or a locked file: skip this scrape
            return []
        finally:
            db.close()


def _epoch(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return time.time()


class AgentMetrics:
    """The agent's counters, with one registry per agent (tests run several in one process)."""

    def __init__(self, outbox_path: Path | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.started = Counter("ambient_encounters_started", "Encounters started", registry=r)
        self.finished = Counter(
            "ambient_encounters_finished",
            "Encounters whose note reached the inbox (how: stopped, or recovered after a crash)",
            ["how"],
            registry=r,
        )
        self.failed = Counter(
            "ambient_encounters_failed",
            "Encounters whose note could not be drafted (stage: draft at stop, recover at start)",
            ["stage"],
            registry=r,
        )
        self.audio = Counter("ambient_audio_seconds", "Seconds of encounter audio received", registry=r)
        self.decoded = Counter("ambient_asr_decoded_audio_seconds", "Seconds of audio decoded", registry=r)
        self.busy = Counter(
            "ambient_asr_busy_seconds", "Wall seconds spent decoding (busy / decoded audio = RTF)", registry=r
        )
        self.rtf = Gauge(
            "ambient_asr_real_time_factor",
            "Decoding wall time / audio time of the current (or last) encounter; < 1 keeps up",
            registry=r,
        )
        self.commit_latency = Histogram(
            "ambient_commit_latency_seconds",
            "From the arrival of a word's audio to its commit",
            buckets=COMMIT_BUCKETS_S,
            registry=r,
        )
        self.drafting = Histogram(
            "ambient_note_drafting_seconds",
            "Drafting + inbox + outbox hand-off per note",
            buckets=DRAFT_BUCKETS_S,
            registry=r,
        )
        self.deliveries = Counter(
            "ambient_deliveries", "Delivery attempts made by the agent, by sink kind and outcome",
            ["sink", "state"], registry=r,
        )  # fmt: skip
        self.delivery_failures = Counter(
            "ambient_delivery_failures",
            "Deliveries that did not succeed on the agent's pass (retried later or dead-lettered)",
            ["sink"],
            registry=r,
        )
        self.info = Info("ambient_build", "Model, template and pipeline versions in use", registry=r)
        if outbox_path is not None:
            r.register(OutboxCollector(outbox_path))
        self._clock = CommitClock()
        self._encounter_busy_s = 0.0
        self._encounter_audio_s = 0.0
        self._lock = threading.Lock()  # decode steps report from worker threads
        self._server: Any = None

    # ---- hooks the agent calls ------------------------------------------------------------------

    def set_versions(self, **versions: str) -> None:
        self.info.info({k: str(v) for k, v in versions.items()})

    def encounter_started(self) -> None:
        self.started.inc()
        with self._lock:
            self._clock = CommitClock()
            self._encounter_busy_s = self._encounter_audio_s = 0.0

    def audio_received(self, chunk_s: float, received_s: float) -> None:
        self.audio.inc(chunk_s)
        with self._lock:
            self._clock.arrived(received_s, time.monotonic())

    def decode_step(self, audio_s: float, busy_s: float) -> None:
        self.decoded.inc(audio_s)
        self.busy.inc(busy_s)
        with self._lock:
            self._encounter_busy_s += busy_s
            self._encounter_audio_s += audio_s
            if self._encounter_audio_s > 0:
                self.rtf.set(self._encounter_busy_s / self._encounter_audio_s)

    def words_committed(self, word_ends_s: Iterable[float]) -> None:
        now = time.monotonic()
        with self._lock:
            latencies = [self._clock.latency_s(end, now) for end in word_ends_s]
        for latency in latencies:
            if latency is not None:
                self.commit_latency.observe(latency)

    def note_ready(self, how: str, ready: NoteReady) -> None:
        self.finished.labels(how).inc()
        self.drafting.observe(ready.draft_s)
        for delivery in ready.deliveries:
            kind, state = sink_kind(delivery.target), delivery.state
            self.deliveries.labels(kind, state).inc()
            if state != "delivered":
                self.delivery_failures.labels(kind).inc()

    def encounter_failed(self, stage: str) -> None:
        self.failed.labels(stage).inc()

    # ---- serving --------------------------------------------------------------------------------

    def serve(self, port: int) -> int:
        """Serve ``/metrics`` on 127.0.0.1:``port`` in a daemon thread; return the bound port."""
        try:
            server, _ = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        except OSError as exc:
            raise MetricsPortError(
                f"cannot serve metrics on 127.0.0.1:{port} ({exc.strerror}); set [agent] metrics_port "
                "to a free port, or 0 to turn metrics off"
            ) from None
        self._server = server
        return int(server.server_address[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


log = event_log("metrics")  # ids and numbers only


def serve_agent_metrics(agent: Agent, port: int) -> int | None:
    """Name the versions in use and serve the agent's metrics; ``port`` 0 means metrics are off.

    A port that is taken turns metrics off with a logged reason instead of stopping the agent:
    a clinician's encounter matters more than its monitoring.
    """
    model = agent.live.producer.model
    template = agent.pipeline.template
    agent.metrics.set_versions(
        pipeline=PIPELINE_VERSION,
        model=model.name,
        model_version=model.version,
        model_sha256=model.sha256[:12],
        template=template.id,
        template_version=template.version,
    )
    if not port:
        return None
    try:
        bound = agent.metrics.serve(port)
    except MetricsPortError as exc:
        log.warning(
            "metrics.off", "metrics are off: port {port} ({error})", port=port, error=type(exc).__name__
        )
        return None
    log.info("metrics.serving", "metrics on http://127.0.0.1:{port}/metrics", port=bound)
    return bound
