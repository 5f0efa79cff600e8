"""The only streaming module that owns asyncio: source → worker thread → timed events.

A source task puts chunks on a queue as they arrive and is never held up by decoding. One
consumer takes *everything* queued so far, hands it to the core in a worker thread
(``asyncio.to_thread``: Whisper holds the CPU for hundreds of milliseconds, and the event loop
must keep pacing the source and serving sockets meanwhile), and emits the events with the wall
time since the stream started. If decoding falls behind, the next feed simply carries more
audio, so the core decodes less often instead of the backlog growing; the ``backlog_s`` figures
say whether that ever happened.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ambient.streaming.core import SAMPLE_RATE_HZ, StreamingRecognizer
from ambient.streaming.events import Event
from ambient.streaming.journal import EncounterJournal

Samples = npt.NDArray[np.float32]
_END = None


@dataclass(frozen=True, slots=True)
class TimedEvent:
    event: Event
    emitted_at_s: float  # wall seconds since the stream started


@dataclass
class StreamReport:
    """How a stream went, for the CLI summary and the benchmark's keeps-up check."""

    audio_s: float = 0.0
    wall_s: float = 0.0
    feeds: int = 0
    busy_s: float = 0.0  # wall time spent inside feed/flush
    backlog_s: list[float] = field(default_factory=list)  # audio waiting when each feed began

    @property
    def max_backlog_s(self) -> float:
        return max(self.backlog_s, default=0.0)


async def run_stream(
    source: AsyncIterable[Samples],
    core: StreamingRecognizer,
    emit: Callable[[TimedEvent], None],
    clock: Callable[[], float] = time.monotonic,
    journal: EncounterJournal | None = None,
    on_step: Callable[[float, float], None] | None = None,
) -> StreamReport:
    """Feed ``source`` through ``core`` until the source ends; ``emit`` each event as it comes.

    With a ``journal``, audio is written the moment it arrives (before it waits for a decode)
    and committed words before they are emitted, so whatever a listener saw is on disk.
    ``on_step(audio_s, busy_s)`` is told after every decode (the agent's metrics).
    """
    queue: asyncio.Queue[Samples | None] = asyncio.Queue()
    report = StreamReport()
    started = clock()

    async def pump() -> None:
        try:
            async for chunk in source:
                if journal is not None:
                    journal.append_audio(chunk)
                queue.put_nowait(chunk)
        finally:
            queue.put_nowait(_END)

    pump_task = asyncio.create_task(pump())
    try:
        done = False
        while not done:
            chunks = [await queue.get()]
            while not queue.empty():
                chunks.append(queue.get_nowait())
            if chunks[-1] is _END:
                chunks.pop()
                done = True
            audio = [c for c in chunks if c is not None]
            if audio:
                samples = np.concatenate(audio)
                report.backlog_s.append(len(samples) / SAMPLE_RATE_HZ)
                busy = report.busy_s
                await _step(functools.partial(core.feed, samples), report, emit, started, clock, journal)
                if on_step is not None:
                    on_step(len(samples) / SAMPLE_RATE_HZ, report.busy_s - busy)
        await _step(core.flush, report, emit, started, clock, journal)
        await pump_task  # re-raises a source error (a file that breaks part-way)
    finally:
        pump_task.cancel()
    report.audio_s = core.audio_s
    report.wall_s = clock() - started
    return report


async def _step(
    call: Callable[[], list[Event]],
    report: StreamReport,
    emit: Callable[[TimedEvent], None],
    started: float,
    clock: Callable[[], float],
    journal: EncounterJournal | None,
) -> None:
    began = clock()
    events = await asyncio.to_thread(call)
    now = clock()
    report.busy_s += now - began
    report.feeds += 1
    if journal is not None:
        journal.append_events(events)
    for event in events:
        emit(TimedEvent(event, round(now - started, 3)))
