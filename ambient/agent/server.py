"""The agent: one process, one event loop, one loaded speech model, at most one live encounter.

Clients talk to it over the loopback WebSocket of :mod:`ambient.localsock` (token, Origin
allow-list, size and rate limits). JSON control messages::

    {"type": "start", "encounter_id": "...", "patient_reference": "Patient/1", ...,
     "source": "socket" | "microphone" | "replay", "device": "...", "path": "...", "speed": 1.0}
    {"type": "pause"} {"type": "resume"} {"type": "stop"} {"type": "status"} {"type": "subscribe"}

and, with ``source: socket`` (the default), binary frames of 16-bit little-endian PCM, 16 kHz
mono, from the connection that started the encounter. The agent answers with ``started``,
``paused``, ``resumed``, ``transcript`` (``kind`` partial or committed, as ``ambient listen
--events jsonl`` prints them), ``note_ready``, ``status`` and ``error`` messages. Transcript
events go to the encounter's owner and to every subscriber; ``note_ready`` also to whoever sent
``stop``.

If the sending connection drops (a phone changing networks), the encounter keeps running without
audio; a ``resume`` from a new connection makes that connection the sender.

Why one encounter at a time: the note must come from exactly one encounter's words, and a second
``start`` while one runs is almost always a forgotten ``stop``, so it is refused with a message
that says which encounter is running. Audio and committed words are journaled as they arrive
(:mod:`ambient.streaming.journal`); the journal is closed only after the note is in the inbox, so
a crash at any point leaves an interrupted journal that the next start finalises.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ambient.agent import editor_host
from ambient.agent.diskguard import DiskGuard
from ambient.agent.finalise import CONTEXT_FIELDS, NoteReady, finalise
from ambient.agent.metrics import AgentMetrics
from ambient.agent.once import drafted_before
from ambient.agent.resume import ResumeHold, reopen_journal
from ambient.config import Paths, Settings
from ambient.ehr import lineage
from ambient.ehr.audit import AuditLog
from ambient.ehr.options import load_delivery_options
from ambient.ehr.outbox import Outbox
from ambient.errors import AmbientError
from ambient.localsock import (
    CLOSE_INVALID_MESSAGE,
    CLOSE_POLICY,
    LocalConnection,
    LocalSocketPolicy,
    LocalSocketServer,
)
from ambient.logs import event_log, refused_count
from ambient.pipeline import Pipeline
from ambient.protect.retention import release_delivered_audio
from ambient.quarantine import journal_reason, list_quarantined, quarantine
from ambient.streaming.core import SAMPLE_RATE_HZ, StreamingRecognizer
from ambient.streaming.events import CommittedWords, event_to_dict
from ambient.streaming.journal import (
    EncounterJournal,
    Recovered,
    encounters_dir,
    find_interrupted,
    mark_recovered,
    read_audio,
    read_journal,
)
from ambient.streaming.live import LiveRecognizer
from ambient.streaming.runtime import StreamReport, TimedEvent, run_stream
from ambient.types import Word

Samples = npt.NDArray[np.float32]
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_FRAME_BYTES = 256 * 1024  # 8 s of audio in one frame is already more than any client sends
# Audio received but not yet handed to the model. A device streams in real time and a fast replay
# stays seconds ahead; a client sending faster than the model can follow (500 frames/s of 8 s each
# is allowed by the socket limits) would otherwise queue hours of audio in memory.
MAX_BACKLOG_S = 60.0
MAX_UNSENT = 5000  # messages queued for a client that does not read; then it is disconnected


def agent_policy(origins: tuple[str, ...]) -> LocalSocketPolicy:
    """Audio arrives as many small frames (10 per second in real time, more when replayed fast)."""
    return LocalSocketPolicy(
        allowed_origins=origins, max_message_bytes=MAX_FRAME_BYTES, rate_per_s=500.0, burst=1000
    )


log = event_log("agent")  # ids, hashes and numbers only (ambient/logs.py): never words or names


class _Peer:
    """One connection's outgoing messages, sent in order by one writer task."""

    def __init__(self, conn: LocalConnection) -> None:
        self.conn = conn
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._writer = asyncio.create_task(self._write())
        self._closing: asyncio.Future[None] | None = None

    def post(self, message: dict[str, Any]) -> None:
        if self._queue.qsize() >= MAX_UNSENT:  # a subscriber that stopped reading must not grow memory
            if self._writer.cancel():
                self._closing = asyncio.ensure_future(self.conn.close(CLOSE_POLICY, "not reading; reconnect"))
            return
        self._queue.put_nowait(message)

    async def _write(self) -> None:
        while (message := await self._queue.get()) is not None:
            try:
                await self.conn.send(message)
            except Exception:  # the client went away; its messages are simply dropped
                return

    async def close(self) -> None:
        if self._writer.done():
            return
        self._queue.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer, 5.0)


@dataclass
class _Encounter:
    id: str
    source: str
    journal: EncounterJournal
    owner: _Peer | None
    queue: asyncio.Queue[Samples | None] = field(default_factory=asyncio.Queue)
    state: str = "recording"  # recording | paused | stopping
    committed_words: int = 0
    received_s: float = 0.0
    task: asyncio.Task[StreamReport] | None = None
    core: StreamingRecognizer | None = None  # its audio_s says how much audio the model has taken
    pump: asyncio.Task[None] | None = None
    guard: DiskGuard | None = None  # set at start: refuses audio while the journal's disk is full


class _TailJournal(EncounterJournal):
    """Appends a recovered encounter's tail words, then lets go of the files *without* marking the
    journal closed: that happens only once the note is delivered, so a crash during recovery is
    recovered again (the tail is not transcribed twice: it now ends at the last committed word)."""

    def release(self) -> None:
        self.sync()
        os.close(self._audio_fd)
        os.close(self._words_fd)


class _Refused(AmbientError):
    """A control message that cannot be honoured now; the connection stays open."""


class _Malformed(AmbientError):
    """A message the protocol does not allow; the connection is closed with 1007."""


class Agent:
    def __init__(
        self,
        settings: Settings,
        paths: Paths,
        live: LiveRecognizer,
        pipeline: Pipeline,
        metrics: AgentMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or AgentMetrics(paths.data_dir / "outbox.sqlite3")
        self.paths = paths
        self.live = live
        self.pipeline = pipeline
        self.audit = AuditLog.for_paths(paths)
        self.encounter: _Encounter | None = None
        self.subscribers: set[_Peer] = set()
        self.recovered: list[dict[str, Any]] = []
        self.last_note: dict[str, Any] | None = None
        self.started_at = time.monotonic()
        self.port = 0
        self.hold = ResumeHold(settings.agent.resume_window_s)  # interrupted, waiting for a resume
        self._editor_stops: set[asyncio.Task[None]] = set()

    # ---- recovery ------------------------------------------------------------------------------

    def recover_interrupted(self) -> list[dict[str, Any]]:
        """Every journal a crash left open: transcribe its tail, then finalise it (draft, deliver,
        close) or, with a resume window, hold it for its client (ambient/agent/resume.py). A journal
        that cannot be read moves to quarantine; the other encounters go on."""
        for found in find_interrupted(self.paths, self._quarantine_journal):
            try:
                found = self._transcribe_tail(found)
            except (ValueError, KeyError, TypeError, IndexError) as exc:  # the journal's content is bad
                self._quarantine_journal(found.folder, exc)
                continue
            except AmbientError as exc:
                self._recovery_failed(found, exc)
                continue
            if self.hold.enabled:  # its client may come back: see ambient/agent/resume.py
                self.hold.hold(found)
                log.info(
                    "encounter.held",
                    "interrupted encounter {encounter_id} held for resume",
                    encounter_id=found.encounter_id,
                    window_s=self.hold.window_s,
                )
            else:
                self._finalise_recovered(found)
        return self.recovered

    def _recovery_failed(self, found: Recovered, exc: AmbientError) -> None:
        log.error(
            "encounter.recovery_failed",
            "could not finalise interrupted encounter {encounter_id} ({error_code})",
            encounter_id=found.encounter_id,
            error_code=exc.code,
        )
        self.metrics.encounter_failed("recover")
        self.recovered.append({"encounter_id": found.encounter_id, "error": str(exc)})

    def _finalise_recovered(self, found: Recovered) -> None:
        """Draft, deliver and close an interrupted journal whose tail is transcribed (blocking)."""
        began = time.monotonic()
        try:
            ready = finalise(found, self.pipeline, self.settings, self.paths)
        except (ValueError, KeyError, TypeError, IndexError) as exc:  # the journal's content is bad
            self._quarantine_journal(found.folder, exc)
            return
        except AmbientError as exc:
            self._recovery_failed(found, exc)
            return
        mark_recovered(found)
        release_delivered_audio(self.paths, self.settings, [found.encounter_id])  # [retention]
        self.metrics.note_ready("recovered", ready)
        recover_s = round(time.monotonic() - began, 3)
        entry = ready.to_message() | {"type": "recovered", "recover_s": recover_s}
        self.recovered.append(entry)
        log.info(
            "encounter.recovered",
            "finalised interrupted encounter {encounter_id}",
            encounter_id=found.encounter_id,
            audio_s=found.audio_s,
            words=ready.words,
            note_sha256=ready.note_sha256[:12],
            recover_s=recover_s,
        )

    def _quarantine_journal(self, folder: Path, exc: BaseException) -> None:
        """A journal that cannot be read or finalised moves aside; the other encounters go on."""
        moved = quarantine(self.paths, "journal", [folder], folder.name, journal_reason(exc))
        entry = {"encounter_id": moved.name, "quarantined": moved.folder, "error": moved.reason}
        self.recovered.append(entry)

    async def _retry_outbox(self) -> None:
        """Notes a peer did not take at stop (down, 5xx, timeouts) go out once it is back.

        Every ``[agent] outbox_retry_s`` the agent runs one pass of the outbox in a thread — the
        same pass as ``ambient outbox drain``: only due rows, each claimed under the outbox's lease,
        so a drain in another process never sends a note twice. Without it a queued note waited for
        someone to run ``ambient outbox drain``. Audio of encounters now fully delivered is released
        per ``[retention]``.
        """
        every = self.settings.agent.outbox_retry_s
        if every <= 0:
            return
        while True:
            await asyncio.sleep(every)
            try:
                tried, delivered = await asyncio.to_thread(self._outbox_pass)
            except AmbientError as exc:
                log.warning("outbox.retry_failed", "outbox pass failed ({error_code})", error_code=exc.code)
                continue
            if tried:
                log.info("outbox.retried", "outbox pass", tried=tried, delivered=delivered)

    def _outbox_pass(self) -> tuple[int, int]:
        """One pass over the due outbox rows (blocking); (tried, delivered)."""
        if not (self.paths.data_dir / "outbox.sqlite3").exists():
            return 0, 0
        with Outbox.for_paths(self.paths, load_delivery_options(self.paths, None)) as outbox:
            tried = outbox.drain()
        delivered = sum(1 for item in tried if item.state == "delivered")
        if delivered:
            release_delivered_audio(self.paths, self.settings)  # [retention]
        return len(tried), delivered

    async def _expire_held(self) -> None:
        """Finalise each held encounter whose resume window closed without its client."""
        while (deadline := self.hold.next_deadline()) is not None:
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            for found in self.hold.expired():
                await asyncio.to_thread(self._finalise_recovered, found)

    async def _resume_held(self, peer: _Peer | None, message: dict[str, Any]) -> None:
        """Continue an interrupted encounter: same journal, same time line, one note at stop."""
        encounter_id = str(message["encounter_id"])
        found = self.hold.take(encounter_id)
        assert found is not None
        source = message.get("source", "socket")
        try:
            audio_source = self._open_source(source, message)
        except Exception:
            self.hold.hold(found)  # a missing mic must not cost the clinician the encounter
            raise
        journal, found = reopen_journal(found.folder)
        guard = DiskGuard(journal.folder)
        enc = _Encounter(encounter_id, str(source), journal, peer, received_s=found.audio_s, guard=guard)
        self.encounter = enc
        lineage.encounter_started(self.audit, encounter_id, f"{enc.source}:resumed")
        self.metrics.encounter_started()
        self._begin(enc, audio_source, self.live.new_stream(found.audio_s, found.words))
        log.info(
            "encounter.resumed",
            "encounter {encounter_id} resumed",
            encounter_id=encounter_id,
            resumed_from_s=round(found.audio_s, 3),
            source=enc.source,
        )
        reply = "started" if message.get("type") == "start" else "resumed"
        self._broadcast(
            enc,
            {"type": reply, "encounter_id": encounter_id, "source": enc.source,
             "resumed_from_s": round(found.audio_s, 3)},
        )  # fmt: skip

    def _transcribe_tail(self, found: Recovered) -> Recovered:
        """Audio journaled after the last committed word was never transcribed: do it now."""
        if found.untranscribed_s < 0.2 or drafted_before(found.folder):  # words final once drafted
            return found
        offset = found.words[-1].end_s if found.words else 0.0
        audio = read_audio(found.folder)[int(offset * SAMPLE_RATE_HZ) :]
        core = self.live.new_stream()
        events = []
        step = SAMPLE_RATE_HZ  # one second per feed, as a fast replay would: one decode per feed
        for at in range(0, len(audio), step):
            events += core.feed(audio[at : at + step])
        events += core.flush()
        shifted = [
            CommittedWords(
                tuple(Word(w.word, w.start_s + offset, w.end_s + offset, w.probability) for w in e.words)
            )
            for e in events
            if isinstance(e, CommittedWords)
        ]
        journal = _TailJournal(found.folder)  # reopening cuts (sealed) or ends (plain) a torn tail
        journal.append_events(list(shifted))
        journal.release()
        return read_journal(found.folder)

    # ---- serving -------------------------------------------------------------------------------

    async def handle(self, conn: LocalConnection) -> None:
        peer = _Peer(conn)
        try:
            async for frame in conn.frames():
                try:
                    if isinstance(frame, bytes):
                        self._audio(peer, frame)
                    else:
                        await self._control(peer, frame)
                except _Malformed as exc:
                    await conn.close(CLOSE_INVALID_MESSAGE, _plain(exc))
                    return
                except AmbientError as exc:
                    peer.post({"type": "error", "message": _plain(exc)})
        finally:
            self.subscribers.discard(peer)
            enc = self.encounter
            if enc is not None and enc.owner is peer:  # a device dropped: it may come back with resume
                enc.owner = None
                log.warning(
                    "encounter.sender_gone",
                    "encounter {encounter_id}: the sending connection closed; resume from a new one, or stop",
                    encounter_id=enc.id,
                )
            await peer.close()

    def _audio(self, peer: _Peer, frame: bytes) -> None:
        enc = self.encounter
        if len(frame) % 2:
            raise _Malformed("audio frames must be whole 16-bit samples (an even number of bytes)")
        if enc is None or enc.source != "socket" or enc.owner is not peer:
            raise _Refused("audio frame ignored: this connection has no running encounter; send start first")
        if enc.state != "recording":
            return  # paused (or stopping): the clinician asked for this audio not to be kept
        if enc.core is not None and enc.received_s - enc.core.audio_s > MAX_BACKLOG_S:
            raise _Refused(
                f"audio frame dropped: more than {MAX_BACKLOG_S:g} s of audio is waiting for the model; "
                "send in real time"
            )
        if not self._admit(enc, len(frame)):
            return
        samples = (np.frombuffer(frame, dtype="<i2").astype(np.float32) / 32767.0).astype(np.float32)
        enc.received_s += len(samples) / SAMPLE_RATE_HZ
        self.metrics.audio_received(len(samples) / SAMPLE_RATE_HZ, enc.received_s)
        enc.queue.put_nowait(samples)

    async def _control(self, peer: _Peer, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "start":
            await self._start(peer, message)
        elif kind == "resume" and self.encounter is None and message.get("encounter_id") in self.hold:
            await self._resume_held(peer, message)
        elif kind in ("pause", "resume"):
            enc = self._running()
            if enc.state == "stopping":
                raise _Refused(f"encounter {enc.id} is stopping")
            gone = enc.owner is None or not enc.owner.conn.open
            if kind == "resume" and gone and enc.source == "socket":
                enc.owner = peer  # the device reconnected (or another took over): its frames count now
            enc.state = "paused" if kind == "pause" else "recording"
            self._broadcast(enc, {"type": f"{kind}d", "encounter_id": enc.id}, also=peer)
        elif kind == "stop":
            await self._stop(peer)
        elif kind == "status":
            peer.post(self.status())
        elif kind == "editor_insert":
            await self._editor_insert(peer, message)
        elif kind == "subscribe":
            self.subscribers.add(peer)
            peer.post({"type": "subscribed"})
        else:
            raise _Malformed(
                f"unknown message type {kind!r}; use start, pause, resume, stop, status, subscribe"
            )

    def _running(self) -> _Encounter:
        if self.encounter is None:
            raise _Refused("no encounter is running; start one first")
        return self.encounter

    async def _start(self, peer: _Peer | None, message: dict[str, Any]) -> None:
        if self.encounter is not None:
            raise _Refused(f"encounter {self.encounter.id} is still running; stop it before starting another")
        if message.get("encounter_id") in self.hold:  # the same id after a crash: continue it
            await self._resume_held(peer, message)
            return
        encounter_id = message.get("encounter_id") or "enc-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        if not isinstance(encounter_id, str) or not _ID.fullmatch(encounter_id):
            raise _Malformed("encounter_id must be 1-128 letters, digits, '.', '_' or '-'")
        metadata: dict[str, str] = {}
        for key in CONTEXT_FIELDS:
            value = message.get(key)
            if value is not None:
                if not isinstance(value, str) or len(value) > 256:
                    raise _Malformed(f"{key} must be text (at most 256 characters)")
                metadata[key] = value
        source = message.get("source", "socket")
        audio_source = self._open_source(source, message)  # a missing mic or file fails here
        journal = EncounterJournal.create(
            encounters_dir(self.paths), encounter_id, self.live.producer.model, metadata
        )
        enc = _Encounter(encounter_id, str(source), journal, peer, guard=DiskGuard(journal.folder))
        self.encounter = enc
        lineage.encounter_started(self.audit, encounter_id, enc.source)
        self.metrics.encounter_started()
        self._begin(enc, audio_source, self.live.new_stream())
        log.info(
            "encounter.started",
            "encounter {encounter_id} started",
            encounter_id=encounter_id,
            source=enc.source,
        )
        self._broadcast(enc, {"type": "started", "encounter_id": encounter_id, "source": enc.source})

    def _begin(self, enc: _Encounter, audio_source: Any, core: StreamingRecognizer) -> None:
        """Start the encounter's tasks: its audio source (if not the socket) and its recogniser."""
        if audio_source is not None:
            enc.pump = asyncio.create_task(self._pump(enc, audio_source))
        enc.core = core
        enc.task = asyncio.create_task(
            run_stream(
                _drain(enc.queue),
                core,
                lambda t: self._emit(enc, t),
                journal=enc.journal,
                on_step=self.metrics.decode_step,
            )
        )

    def _open_source(self, source: object, message: dict[str, Any]) -> Any:
        from ambient.streaming.sources import MicrophoneSource, ReplaySource

        if source == "socket":
            return None
        if source == "microphone":
            device = message.get("device")
            return MicrophoneSource(str(device) if device is not None else None)
        if source == "replay":
            path, speed = message.get("path"), message.get("speed", 1.0)
            if not isinstance(path, str) or not isinstance(speed, int | float):
                raise _Malformed("replay needs path (text) and speed (number)")
            return ReplaySource(Path(path), float(speed))
        raise _Malformed(f"unknown source {source!r}; use socket, microphone or replay")

    async def _pump(self, enc: _Encounter, source: Any) -> None:
        """A microphone or replay feeds the encounter until stop; pause drops its audio."""
        try:
            async for chunk in source:
                if enc.state == "recording" and self._admit(enc, 2 * len(chunk)):
                    enc.received_s += len(chunk) / SAMPLE_RATE_HZ
                    self.metrics.audio_received(len(chunk) / SAMPLE_RATE_HZ, enc.received_s)
                    enc.queue.put_nowait(chunk)
        except AmbientError as exc:
            log.error(
                "encounter.source_failed",
                "encounter {encounter_id}: audio source failed",
                encounter_id=enc.id,
                error_code=exc.code,
            )
            self._broadcast(enc, {"type": "error", "message": _plain(exc)})

    def _admit(self, enc: _Encounter, frame_bytes: int) -> bool:
        """Room on disk for this frame? Says so to the clinician when that changes."""
        assert enc.guard is not None
        change = enc.guard.admit(frame_bytes)
        if change is not None:
            log.warning(
                "encounter.disk_" + change,
                "encounter {encounter_id}: disk " + change,
                encounter_id=enc.id,
                free_bytes=enc.guard.free_bytes() if change == "recovered" else None,
                dropped_s=enc.guard.dropped_s,
            )
            self._broadcast(enc, enc.guard.message(enc.id, change))
        if enc.guard.full:
            enc.guard.dropped_s += frame_bytes / 2 / SAMPLE_RATE_HZ
            return False
        return True

    def _emit(self, enc: _Encounter, timed: TimedEvent) -> None:
        if isinstance(timed.event, CommittedWords):
            enc.committed_words += len(timed.event.words)
            self.metrics.words_committed(w.end_s for w in timed.event.words)
        message = {"type": "transcript", "encounter_id": enc.id, "emitted_at_s": timed.emitted_at_s}
        self._broadcast(enc, message | event_to_dict(timed.event))

    def _broadcast(self, enc: _Encounter, message: dict[str, Any], also: _Peer | None = None) -> None:
        peers = set(self.subscribers)
        if enc.owner is not None:
            peers.add(enc.owner)
        if also is not None:
            peers.add(also)
        for peer in peers:
            peer.post(message)

    async def _stop(self, peer: _Peer | None) -> None:
        enc = self._running()
        if enc.state == "stopping":
            raise _Refused(f"encounter {enc.id} is already stopping")
        stop_at = time.monotonic()
        enc.state = "stopping"
        if enc.pump is not None:
            enc.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await enc.pump
        enc.queue.put_nowait(None)
        assert enc.task is not None
        try:
            report = await enc.task
        except Exception as exc:  # the stream broke; what was journaled still becomes a note
            log.error(
                "encounter.stream_failed",
                "encounter {encounter_id}: stream ended with an error",
                encounter_id=enc.id,
                error=exc.__class__.__name__,
            )
            report = StreamReport()
        enc.journal.sync()
        flushed_at = time.monotonic()
        try:
            ready: NoteReady = await asyncio.to_thread(
                finalise, read_journal(enc.journal.folder), self.pipeline, self.settings, self.paths
            )
        except Exception as exc:
            self.encounter = None  # the journal stays open: the next agent start tries again
            why = str(exc) if isinstance(exc, AmbientError) else exc.__class__.__name__
            log.error(
                "encounter.draft_failed",
                "encounter {encounter_id}: drafting failed",
                encounter_id=enc.id,
                error=getattr(exc, "code", exc.__class__.__name__),
            )
            self.metrics.encounter_failed("draft")
            raise _Refused(
                f"encounter {enc.id} stopped but the note could not be drafted ({why}); "
                "its journal is kept and the next agent start finalises it"
            ) from None
        enc.journal.close()  # only now: a crash before this point is recovered at the next start
        # [retention]: the recording goes once the note is delivered (it is read to hash it: off the loop)
        await asyncio.to_thread(release_delivered_audio, self.paths, self.settings, [enc.id])
        self.metrics.note_ready("stopped", ready)
        done = time.monotonic()
        message = ready.to_message() | {
            "stop_to_note_s": round(done - stop_at, 3),
            "flush_s": round(flushed_at - stop_at, 3),
            "max_backlog_s": round(report.max_backlog_s, 3),
        }
        self.last_note = message
        self.encounter = None
        log.info(
            "encounter.stopped",
            "encounter {encounter_id} stopped",
            encounter_id=enc.id,
            audio_s=ready.audio_s,
            words=ready.words,
            note_sha256=ready.note_sha256[:12],
            stop_to_note_s=done - stop_at,
        )
        self._broadcast(enc, message, also=peer)

    # ---- the editor bridge, hosted here (ambient/agent/editor_host.py) -------------------------------

    def _host_editor_bridge(self) -> None:
        from ambient.ehr.editor_bridge.settings import bridge_settings

        callback = editor_host.encounter_callback(asyncio.get_running_loop(), self._editor_command)
        try:
            bridge = editor_host.start_hosted(bridge_settings(), callback)
        except (OSError, AmbientError) as exc:  # the agent still records; inserts then fail clearly
            log.warning(
                "editor.bridge_not_started",
                "editor bridge not started ({error}); `ambient deliver --to editor` binds its port itself",
                error=exc.__class__.__name__,
            )
            return
        log.info("editor.bridge_hosted", "editor bridge on 127.0.0.1:{port}", port=bridge.port)

    async def _editor_command(self, action: str) -> None:
        """Start/stop from the page; stop runs on as a task (the page must stay free to take the note)."""
        if action == "start":
            source = self.settings.agent.editor_source
            message: dict[str, Any] = {"type": "start", "source": source}
            if source.startswith("replay:"):
                message |= {"source": "replay", "path": source.removeprefix("replay:"), "speed": 1.0}
            await self._start(None, message)
            return
        self._running()
        task = asyncio.create_task(self._stop(None))
        self._editor_stops.add(task)
        task.add_done_callback(self._editor_stop_done)

    def _editor_stop_done(self, task: asyncio.Task[None]) -> None:
        self._editor_stops.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "editor.stop_failed",
                "stop from the editor page failed ({error})",
                error=task.exception().__class__.__name__,
            )

    async def _editor_insert(self, peer: _Peer, message: dict[str, Any]) -> None:
        """Insert a note another process delivers (``ambient deliver --to editor``) via our bridge."""
        from ambient.ehr.editor_bridge.errors import PermanentDeliveryError, RetryableDeliveryError
        from ambient.notes.render import note_from_json

        thread = editor_host.hosted()
        if thread is None:
            raise _Refused("this agent does not host the editor bridge (its port was taken when it started)")
        try:
            note = note_from_json(message.get("note"), "editor_insert")
            wait_s, timeout_s = (min(120.0, float(message.get(k, 30.0))) for k in ("wait_s", "timeout_s"))
        except (AmbientError, ValueError, TypeError) as exc:
            raise _Malformed(f"editor_insert needs a note (as `ambient deliver` reads it): {exc}") from None
        sink = editor_host.HostedEditorSink(thread, wait_s=wait_s, timeout_s=timeout_s)
        try:
            receipt = await asyncio.to_thread(sink.deliver, note)
        except (RetryableDeliveryError, PermanentDeliveryError) as exc:
            permanent = isinstance(exc, PermanentDeliveryError)
            peer.post({"type": "editor_inserted", "error": str(exc), "permanent": permanent})
            return
        peer.post({"type": "editor_inserted", "note_sha256": receipt.note_sha256,
                   "locations": list(receipt.locations), "delivered_at": receipt.delivered_at})  # fmt: skip

    def status(self) -> dict[str, Any]:
        enc = self.encounter
        return {
            "type": "status",
            "pid": os.getpid(),
            "port": self.port,
            "model": self.live.producer.model.name,
            "uptime_s": round(time.monotonic() - self.started_at, 1),
            "encounter": None
            if enc is None
            else {
                "encounter_id": enc.id,
                "state": "disk_full" if enc.guard is not None and enc.guard.full else enc.state,
                "dropped_s": 0.0 if enc.guard is None else round(enc.guard.dropped_s, 2),
                "source": enc.source,
                "audio_s": round(enc.received_s, 2),
                "committed_words": enc.committed_words,
            },
            "recovered": self.recovered,
            "held_for_resume": self.hold.ids(),
            "editor_bridge_port": None if (bridge := editor_host.hosted()) is None else bridge.port,
            "last_note": self.last_note,
            "log_refused": refused_count(),
            "quarantined": [q.to_dict() for q in list_quarantined(self.paths)],
        }

    async def serve(self, token: str, port: int, stop: asyncio.Event) -> None:
        server = LocalSocketServer(token, self.handle, agent_policy(self.settings.agent.origins))
        self.port = await server.start(port)
        self._host_editor_bridge()  # before "listening on": whoever waits for that finds both up
        log.info(
            "agent.listening", "listening on 127.0.0.1:{port} (pid {pid})", port=self.port, pid=os.getpid()
        )
        expiry = asyncio.create_task(self._expire_held())
        retry = asyncio.create_task(self._retry_outbox())
        try:
            await stop.wait()
        finally:
            expiry.cancel()
            retry.cancel()
            await asyncio.to_thread(editor_host.stop_hosted)
            await server.close()
            enc = self.encounter
            if enc is not None:  # left open on purpose: the next start finalises it
                enc.journal.sync()
                log.warning(
                    "encounter.left_open",
                    "encounter {encounter_id} left running; the next agent start will finalise it",
                    encounter_id=enc.id,
                )


async def _drain(queue: asyncio.Queue[Samples | None]) -> AsyncIterator[Samples]:
    while (chunk := await queue.get()) is not None:
        yield chunk


def _plain(exc: AmbientError) -> str:
    """The message without the ``[AMB-E…]`` prefix for refusals we raise ourselves."""
    text = str(exc)
    return text.split("] ", 1)[1] if isinstance(exc, _Refused | _Malformed) and "] " in text else text
