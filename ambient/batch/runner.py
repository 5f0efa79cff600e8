"""Batch re-processing of a folder of recorded encounters: resumable, crash-safe, parallel.

Each encounter is keyed by the sha256 of its audio. A worker writes the encounter's transcript
and note atomically into its own folder and then, last, a ``done`` marker under
``OUT_DIR/.ambient/done/<sha256>.json``. A re-run skips every input whose marker exists, so
Ctrl-C, a crash or a power cut loses at most the encounters in flight, never a finished one.
One bad file becomes one line of ``OUT_DIR/failures.jsonl``; the rest go on.

Workers are processes, each holding one loaded model (a Whisper model per process is the only way
to use several cores without the GIL in the way); the CPU is split evenly between them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ambient.atomic import atomic_write_text, ensure_dir
from ambient.audio.decode import AUDIO_SUFFIXES, file_sha256
from ambient.config import Paths, Settings
from ambient.ehr.inbox import safe_name
from ambient.errors import AmbientError, InputError, UsageError
from ambient.notes.render import note_sha256, note_to_json, note_to_markdown
from ambient.pipeline import Pipeline
from ambient.protect.outputs import remember_batch_dir, write_output
from ambient.protect.sealed import Protector
from ambient.transcript.serialise import render, transcript_sha256

STATE_DIR = ".ambient"
FAILURES_FILE = "failures.jsonl"


@dataclass(frozen=True)
class BatchItem:
    path: Path
    sha256: str
    out_dir: Path
    size_bytes: int


@dataclass(frozen=True)
class ItemResult:
    item: BatchItem
    ok: bool
    audio_s: float = 0.0
    elapsed_s: float = 0.0
    error_code: str = ""
    reason: str = ""


@dataclass
class BatchSummary:
    total: int = 0
    skipped: int = 0
    succeeded: int = 0
    failed: int = 0
    audio_s: float = 0.0
    busy_s: float = 0.0
    interrupted: bool = False
    failures: list[ItemResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if self.failed else 0


def list_inputs(in_dir: Path) -> list[Path]:
    """Audio files under ``in_dir`` (recursively), in a stable order; hidden files are skipped."""
    if not in_dir.exists():
        raise UsageError(f"input folder {in_dir} does not exist")
    if not in_dir.is_dir():
        raise UsageError(f"{in_dir} is not a folder; for one file use `ambient note` or `ambient transcribe`")
    found = [
        p
        for p in sorted(in_dir.rglob("*"))
        if p.is_file()
        and p.suffix.lower() in AUDIO_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(in_dir).parts)
    ]
    return found


def done_marker(out_dir: Path, sha256: str) -> Path:
    return out_dir / STATE_DIR / "done" / f"{sha256}.json"


def plan(in_dir: Path, out_dir: Path) -> tuple[list[BatchItem], list[ItemResult], int]:
    """Hash every input; return the items to run, inputs that cannot be read, and the done count."""
    todo: list[BatchItem] = []
    unreadable: list[ItemResult] = []
    seen: set[str] = set()
    skipped = 0
    for path in list_inputs(in_dir):
        try:
            sha = file_sha256(path)
            size = path.stat().st_size
        except (AmbientError, OSError) as exc:
            item = BatchItem(path, "", out_dir, 0)
            unreadable.append(
                ItemResult(item, False, error_code=getattr(exc, "code", "AMB-E200"), reason=str(exc))
            )
            continue
        if sha in seen or done_marker(out_dir, sha).is_file():
            skipped += 1  # finished in an earlier run, or the same recording twice in this one
            continue
        seen.add(sha)
        folder = out_dir / f"{safe_name(path.stem)}.{sha[:12]}"
        todo.append(BatchItem(path, sha, folder, size))
    return todo, unreadable, skipped


def process_item(pipeline: Pipeline, item: BatchItem) -> ItemResult:
    """Transcribe and draft one encounter; write its files, then its done marker."""
    started = datetime.now(UTC)
    try:
        transcript = pipeline.transcribe_audio(item.path)
        if transcript.header.source_sha256 != item.sha256:
            raise InputError(f"{item.path} changed while the batch was running; run it again")
        note = pipeline.draft(transcript)
        ensure_dir(item.out_dir)
        # sealed unless the user asked for plain files (--plain, [protect] plain_batch_outputs)
        protector = Protector.for_paths(pipeline.paths, pipeline.settings)
        plain = pipeline.settings.protect.plain_batch_outputs
        outputs = {
            "transcript.json": render(transcript, "json") + "\n",
            "transcript.txt": render(transcript, "text") + "\n",
            "note.json": json.dumps(note_to_json(note), indent=2, ensure_ascii=False) + "\n",
            "note.md": note_to_markdown(note),
        }
        for name, text in outputs.items():
            write_output(protector, item.out_dir / name, text, plain)
        elapsed = (datetime.now(UTC) - started).total_seconds()
        marker = {
            "input": str(item.path),
            "sha256": item.sha256,
            "encounter_id": transcript.header.encounter_id,
            "folder": item.out_dir.name,
            "audio_s": transcript.header.duration_s,
            "elapsed_s": round(elapsed, 3),
            "transcript_sha256": transcript_sha256(transcript),
            "note_sha256": note_sha256(note),
            "model": transcript.header.model.name if transcript.header.model else None,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        atomic_write_text(done_marker(item.out_dir.parent, item.sha256), json.dumps(marker, indent=2) + "\n")
        return ItemResult(item, True, transcript.header.duration_s, elapsed)
    except AmbientError as exc:
        elapsed = (datetime.now(UTC) - started).total_seconds()
        return ItemResult(item, False, 0.0, elapsed, exc.code, str(exc))
    except Exception as exc:  # one file's bug must not stop a batch of thousands
        elapsed = (datetime.now(UTC) - started).total_seconds()
        return ItemResult(
            item, False, 0.0, elapsed, "AMB-E999", f"{item.path}: unexpected {type(exc).__name__}: {exc}"
        )


_WORKER: Pipeline | None = None


def _init_worker(settings: Settings, paths: Paths) -> None:
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    _WORKER = Pipeline(settings, paths)
    _ = _WORKER.transcriber  # load the model once, before the first file


def _run_in_worker(item: BatchItem) -> ItemResult:
    assert _WORKER is not None
    return process_item(_WORKER, item)


def record_failure(out_dir: Path, result: ItemResult) -> None:
    line = {
        "input": str(result.item.path),
        "sha256": result.item.sha256 or None,
        "code": result.error_code,
        "reason": result.reason,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with (out_dir / FAILURES_FILE).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _results_serial(settings: Settings, paths: Paths, items: list[BatchItem]) -> Iterator[ItemResult]:
    pipeline = Pipeline(settings, paths)
    for item in items:
        yield process_item(pipeline, item)


def _results_pool(
    settings: Settings, paths: Paths, items: list[BatchItem], workers: int
) -> Iterator[ItemResult]:
    pending = list(reversed(items))
    while pending:
        pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(settings, paths))
        running: dict[Future[ItemResult], BatchItem] = {}
        try:
            while pending or running:
                while pending and len(running) < workers * 2:
                    item = pending.pop()
                    running[pool.submit(_run_in_worker, item)] = item
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    item = running.pop(future)
                    try:
                        yield future.result()
                    except BrokenProcessPool:
                        yield ItemResult(
                            item,
                            False,
                            error_code="AMB-E998",
                            reason=f"{item.path}: the worker process died while processing it",
                        )
        except BrokenProcessPool:
            for item in running.values():
                yield ItemResult(
                    item,
                    False,
                    error_code="AMB-E998",
                    reason=f"{item.path}: the worker process died while processing it",
                )
            running.clear()
        finally:
            pool.shutdown(wait=not pending, cancel_futures=True)


def run_batch(
    in_dir: Path,
    out_dir: Path,
    settings: Settings,
    paths: Paths,
    workers: int = 1,
    on_planned: Callable[[list[BatchItem], int], None] | None = None,
    on_result: Callable[[ItemResult], None] | None = None,
) -> BatchSummary:
    """Process every unfinished encounter in ``in_dir``; see the module docstring for guarantees."""
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    # Fail fast on a wrong --model or --template: that is a usage error, not N failed files.
    Pipeline(settings, paths).check()
    ensure_dir(out_dir)
    ensure_dir(out_dir / STATE_DIR / "done")
    if settings.protect.encrypt and not settings.protect.plain_batch_outputs:
        remember_batch_dir(paths, out_dir)  # so `ambient keys rotate` and `purge` find it
    _remove_stale_temp_files(out_dir)
    (out_dir / FAILURES_FILE).write_text("", encoding="utf-8")  # this run's failures only
    todo, unreadable, skipped = plan(in_dir, out_dir)
    summary = BatchSummary(total=len(todo) + len(unreadable) + skipped, skipped=skipped)
    if on_planned:
        on_planned(todo, skipped)
    for result in unreadable:
        summary.failed += 1
        summary.failures.append(result)
        record_failure(out_dir, result)
        if on_result:
            on_result(result)
    workers = min(workers, max(1, len(todo)))
    cores = os.cpu_count() or 1
    threads = settings.asr.cpu_threads or max(1, cores // workers)
    settings = replace(settings, asr=replace(settings.asr, cpu_threads=threads))
    results = (
        _results_serial(settings, paths, todo)
        if workers == 1
        else _results_pool(settings, paths, todo, workers)
    )
    try:
        for result in results:
            _account(summary, result, out_dir)
            if on_result:
                on_result(result)
    except KeyboardInterrupt:
        summary.interrupted = True
    return summary


def _remove_stale_temp_files(out_dir: Path) -> None:
    """Temp files a killed run left mid-write (``.NAME.*.tmp``, never read as results): tidy them."""
    for stale in out_dir.rglob(".*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()


def _account(summary: BatchSummary, result: ItemResult, out_dir: Path) -> None:
    summary.busy_s += result.elapsed_s
    if result.ok:
        summary.succeeded += 1
        summary.audio_s += result.audio_s
    else:
        summary.failed += 1
        summary.failures.append(result)
        record_failure(out_dir, result)


def summary_dict(summary: BatchSummary, wall_s: float) -> dict[str, Any]:
    return {
        "total": summary.total,
        "succeeded": summary.succeeded,
        "skipped_already_done": summary.skipped,
        "failed": summary.failed,
        "interrupted": summary.interrupted,
        "audio_hours": round(summary.audio_s / 3600, 4),
        "wall_s": round(wall_s, 2),
        "real_time_factor": round(summary.audio_s / wall_s, 2) if wall_s > 0 else None,
    }
