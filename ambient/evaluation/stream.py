"""``ambient eval stream``: replay each file through the live path, as the agent streams it.

The recogniser is built with the agent's own options (``ambient.agent.runner.live_options``) and
fed by ``run_stream`` from a ``ReplaySource`` paced at ``speed`` × real time — the runtime the
agent and ``ambient listen --replay`` use, not a simulation. For each committed word the commit
latency is the wall time at which its commit was emitted minus the wall time at which its last
sample arrived (the word's end in the audio ÷ speed); at speed 1 that is the delay a clinician
sees. Faster replay leaves the recogniser less time per second of audio, so latencies at speed
> 1 are pessimistic and say so.

Each file is also transcribed by the batch path, so the cost of streaming in words is the
difference of the two WERs on the same reference.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ambient.config import Paths, Settings
from ambient.evaluation.data import EvalItem
from ambient.evaluation.wer import WerScore, WerScorer
from ambient.pipeline import Pipeline
from ambient.streaming.events import CommittedWords
from ambient.streaming.runtime import TimedEvent, run_stream
from ambient.streaming.sources import ReplaySource, check_speed


@dataclass(frozen=True)
class StreamResult:
    name: str
    audio_s: float
    latencies_s: tuple[float, ...]  # one per committed word, wall seconds
    streaming: WerScore
    batch: WerScore | None
    max_backlog_s: float
    synthetic: bool


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (the figure docs/benchmarks.md has always used)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def latency_summary(latencies: Sequence[float]) -> dict[str, float | int | None]:
    if not latencies:
        return {"words": 0, "median_s": None, "p95_s": None, "max_s": None}
    return {
        "words": len(latencies),
        "median_s": round(statistics.median(latencies), 3),
        "p95_s": round(percentile(latencies, 0.95), 3),
        "max_s": round(max(latencies), 3),
    }


class StreamEvaluator:
    """One loaded live recogniser (and, when asked, one batch pipeline) for every file."""

    def __init__(self, settings: Settings, paths: Paths, speed: float, batch: bool = True) -> None:
        from ambient.agent.runner import live_options
        from ambient.streaming.live import LiveRecognizer

        self.speed = check_speed(speed)
        self.live = LiveRecognizer(live_options(settings), paths.model_cache)
        self.pipeline = Pipeline(settings, paths) if batch else None
        self.model = self.live.producer.model.name

    def replay(self, item: EvalItem) -> tuple[list[tuple[str, float]], float, float]:
        """(word, latency) for each committed word, audio seconds, largest backlog."""
        source = ReplaySource(item.audio, self.speed)
        words: list[tuple[str, float]] = []

        def collect(timed: TimedEvent) -> None:
            if isinstance(timed.event, CommittedWords):
                for w in timed.event.words:
                    words.append((w.word, timed.emitted_at_s - w.end_s / self.speed))

        report = asyncio.run(run_stream(source, self.live.new_stream(), collect, clock=time.monotonic))
        return words, report.audio_s, report.max_backlog_s

    def evaluate(
        self, items: Sequence[EvalItem], scorer: WerScorer, progress: Callable[[str], None] | None = None
    ) -> list[StreamResult]:
        results = []
        for item in items:
            words, audio_s, backlog = self.replay(item)
            streamed = " ".join(w for w, _ in words)
            batch = None
            if self.pipeline is not None:
                batch = scorer.score(item.reference.text, self.pipeline.transcribe_audio(item.audio).text)
            results.append(
                StreamResult(
                    item.name,
                    audio_s,
                    tuple(latency for _, latency in words),
                    scorer.score(item.reference.text, streamed),
                    batch,
                    backlog,
                    item.reference.synthetic,
                )
            )
            if progress:
                progress(item.name)
        return results


def stream_json(results: Sequence[StreamResult], model: str, speed: float) -> dict[str, Any]:
    from functools import reduce

    from ambient.evaluation.asr import speech_label

    def wer_pair(streaming: WerScore, batch: WerScore | None) -> dict[str, Any]:
        s, b = streaming.as_dict(), batch.as_dict() if batch else None
        gap = None
        if b is not None and s["wer"] is not None and b["wer"] is not None:
            gap = round(s["wer"] - b["wer"], 4)
        return {"streaming": s, "batch": b, "streaming_minus_batch": gap}

    all_latencies = [x for r in results for x in r.latencies_s]
    streaming_total = reduce(lambda a, b: a + b, (r.streaming for r in results))
    batches = [r.batch for r in results if r.batch is not None]
    batch_total = reduce(lambda a, b: a + b, batches) if len(batches) == len(results) else None
    return {
        "model": model,
        "speed": speed,
        "speech": speech_label(r.synthetic for r in results),
        "latency": "wall seconds from a word's last sample arriving to its commit being emitted",
        "total": {
            "commit_latency": latency_summary(all_latencies),
            "wer": wer_pair(streaming_total, batch_total),
            "audio_s": round(sum(r.audio_s for r in results), 2),
            "max_backlog_s": round(max(r.max_backlog_s for r in results), 3),
        },
        "files": [
            {
                "name": r.name,
                "commit_latency": latency_summary(r.latencies_s),
                "wer": wer_pair(r.streaming, r.batch),
                "audio_s": round(r.audio_s, 2),
                "max_backlog_s": round(r.max_backlog_s, 3),
                "synthetic": r.synthetic,
            }
            for r in results
        ],
    }
