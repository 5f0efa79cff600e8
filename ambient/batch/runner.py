"""Batch re-processing of a folder of recorded encounters: resumable, crash-safe, parallel.

Each encounter is keyed by the sha256 of its audio. A worker writes each of the encounter's
files whole into its own folder and then, last, a ``done`` marker under
``OUT/.ambient/done/<sha256>.json``. A re-run skips every input whose marker exists, so
Ctrl-C, a crash or a power cut loses at most the encounters in flight, never a finished one.
One bad file becomes one line of ``OUT/failures.jsonl``; the rest go on. ``OUT`` is a folder or
an fsspec URL: :mod:`ambient.batch.store` says how each kind keeps those promises.

Workers are processes, each holding one loaded model (a Whisper model per process is the only way
to use several cores without the GIL in the way); the CPU is split evenly between them.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ambient.audio.decode import AUDIO_SUFFIXES, file_sha256
from ambient.batch.outputs import read_transcript, write_encounter
from ambient.batch.store import FAILURES_FILE as FAILURES_FILE  # re-exported: where it always was
from ambient.batch.store import STATE_DIR, OutputStore, open_store
from ambient.config import Paths, Settings
from ambient.ehr.inbox import safe_name
from ambient.errors import AmbientError, InputError, UsageError
from ambient.notes.render import note_sha256
from ambient.pipeline import Pipeline
from ambient.protect.outputs import remember_batch_dir
from ambient.protect.sealed import Protector
from ambient.transcript.serialise import transcript_sha256


@dataclass(frozen=True)
class BatchItem:
    path: Path
    sha256: str
    out_root: str  # the run's output location: a folder, or an fsspec URL (batch/store.py)
    folder: str  # this encounter's folder under ``out_root`` ("" for an input never read)
    size_bytes: int
    # Replay without the audio: re-draft from the transcript stored in this earlier encounter folder
    # (its location: a path or a URL).
    transcript_from: str | None = None
    url: str | None = None  # an fsspec URL (batch/remote.py); ``path`` is then only its name

    @property
    def source(self) -> str:
        """Where the input lives, as the user named it: for messages, markers and failures."""
        return self.url or str(self.path)

    @property
    def store(self) -> OutputStore:
        """The run's output store; items travel to workers and Ray actors as plain strings."""
        return open_store(self.out_root)

    @property
    def out_location(self) -> str:
        """This encounter's folder, as a path or a URL."""
        return self.store.join(self.folder)


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


def out_root(location: str | os.PathLike[str]) -> str:
    """A run's output location as items carry it: a URL as given, a folder as its path."""
    return os.fspath(location)


def encounter_folder(stem: str, sha256: str) -> str:
    """The folder name of an encounter: readable stem, then the key (the same in every run)."""
    return f"{safe_name(stem)}.{sha256[:12]}"


def plan(in_dir: Path, out_dir: str | os.PathLike[str]) -> tuple[list[BatchItem], list[ItemResult], int]:
    """Hash every input; return the items to run, inputs that cannot be read, and the done count."""
    root = out_root(out_dir)
    done = open_store(root).done_shas()  # one listing of the done markers, not one look-up per file
    todo: list[BatchItem] = []
    unreadable: list[ItemResult] = []
    seen: set[str] = set()
    skipped = 0
    for path in list_inputs(in_dir):
        try:
            sha = file_sha256(path)
            size = path.stat().st_size
        except (AmbientError, OSError) as exc:
            item = BatchItem(path, "", root, "", 0)
            unreadable.append(
                ItemResult(item, False, error_code=getattr(exc, "code", "AMB-E200"), reason=str(exc))
            )
            continue
        if sha in seen or sha in done:
            skipped += 1  # finished in an earlier run, or the same recording twice in this one
            continue
        seen.add(sha)
        todo.append(BatchItem(path, sha, root, encounter_folder(path.stem, sha), size))
    return todo, unreadable, skipped


def process_item(pipeline: Pipeline, item: BatchItem) -> ItemResult:
    """Transcribe and draft one encounter; write its files, then its done marker."""
    started = datetime.now(UTC)
    try:
        if item.transcript_from is not None:
            transcript = read_transcript(item.transcript_from)
        elif item.url is not None:
            from ambient.batch.remote import transcribe_url

            transcript = transcribe_url(pipeline, item.url)
        else:
            transcript = pipeline.transcribe_audio(item.path)
        if transcript.header.source_sha256 != item.sha256:
            raise InputError(f"{item.source} changed while the batch was running; run it again")
        note = pipeline.draft(transcript)
        # sealed unless the user asked for plain files (--plain, [protect] plain_batch_outputs)
        protector = Protector.for_paths(pipeline.paths, pipeline.settings)
        plain = pipeline.settings.protect.plain_batch_outputs
        store = item.store
        write_encounter(store, item.folder, transcript, note, protector=protector, plain=plain)
        elapsed = (datetime.now(UTC) - started).total_seconds()
        marker = {
            "input": item.source,
            "sha256": item.sha256,
            "encounter_id": transcript.header.encounter_id,
            "folder": item.folder,
            "audio_s": transcript.header.duration_s,
            "elapsed_s": round(elapsed, 3),
            "transcript_sha256": transcript_sha256(transcript),
            "note_sha256": note_sha256(note),
            "model": transcript.header.model.name if transcript.header.model else None,
            "template": f"{note.provenance.template.id} {note.provenance.template.version}",
            "transcribed": item.transcript_from is None,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        store.write_marker(item.sha256, marker)  # last: a resume check that sees it sees whole files
        return ItemResult(item, True, transcript.header.duration_s, elapsed)
    except AmbientError as exc:
        elapsed = (datetime.now(UTC) - started).total_seconds()
        return ItemResult(item, False, 0.0, elapsed, exc.code, str(exc))
    except Exception as exc:  # one file's bug must not stop a batch of thousands
        elapsed = (datetime.now(UTC) - started).total_seconds()
        return ItemResult(
            item, False, 0.0, elapsed, "AMB-E999", f"{item.source}: unexpected {type(exc).__name__}: {exc}"
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


def record_failure(store: OutputStore, result: ItemResult) -> None:
    line = {
        "input": result.item.source,
        "sha256": result.item.sha256 or None,
        "code": result.error_code,
        "reason": result.reason,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    store.add_failure(line)


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
                            reason=f"{item.source}: the worker process died while processing it",
                        )
        except BrokenProcessPool:
            for item in running.values():
                yield ItemResult(
                    item,
                    False,
                    error_code="AMB-E998",
                    reason=f"{item.source}: the worker process died while processing it",
                )
            running.clear()
        finally:
            pool.shutdown(wait=not pending, cancel_futures=True)


Plan = tuple[list[BatchItem], list[ItemResult], int]  # to run, unreadable, already done
# Where results come from: this process, a local process pool, or a Ray cluster (batch/cluster.py).
ResultSource = Callable[[Settings, Paths, list[BatchItem], int], Iterator[ItemResult]]


def run_batch(
    in_dir: Path,
    out_dir: str | os.PathLike[str],
    settings: Settings,
    paths: Paths,
    workers: int = 1,
    on_planned: Callable[[list[BatchItem], int], None] | None = None,
    on_result: Callable[[ItemResult], None] | None = None,
    source: ResultSource | None = None,
) -> BatchSummary:
    """Process every unfinished encounter in ``in_dir``; see the module docstring for guarantees."""
    return run_planned(
        lambda: plan(in_dir, out_dir), out_dir, settings, paths, workers, on_planned, on_result, source
    )


def run_planned(
    make_plan: Callable[[], Plan],
    out_dir: str | os.PathLike[str],
    settings: Settings,
    paths: Paths,
    workers: int = 1,
    on_planned: Callable[[list[BatchItem], int], None] | None = None,
    on_result: Callable[[ItemResult], None] | None = None,
    source: ResultSource | None = None,
) -> BatchSummary:
    """The batch run after listing: shared by ``batch`` (a folder) and ``replay`` (an earlier run)."""
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    # Fail fast on a wrong --model or --template: that is a usage error, not N failed files.
    Pipeline(settings, paths).check()
    store = open_store(out_dir)
    store.prepare()  # the root and its done folder; what a killed run left mid-write is tidied
    if settings.protect.encrypt and not settings.protect.plain_batch_outputs:
        remember_batch_dir(paths, out_dir)  # so `ambient keys rotate` and `purge` find it
    store.reset_failures()  # this run's failures only
    try:
        return _run_store(store, make_plan, settings, paths, workers, on_planned, on_result, source)
    finally:
        store.close_failures()  # a URL store rewrites failures.jsonl whole, even after Ctrl-C


def _run_store(
    store: OutputStore,
    make_plan: Callable[[], Plan],
    settings: Settings,
    paths: Paths,
    workers: int,
    on_planned: Callable[[list[BatchItem], int], None] | None,
    on_result: Callable[[ItemResult], None] | None,
    source: ResultSource | None,
) -> BatchSummary:
    todo, unreadable, skipped = make_plan()
    summary = BatchSummary(total=len(todo) + len(unreadable) + skipped, skipped=skipped)
    if on_planned:
        on_planned(todo, skipped)
    for result in unreadable:
        summary.failed += 1
        summary.failures.append(result)
        record_failure(store, result)
        if on_result:
            on_result(result)
    workers = min(workers, max(1, len(todo)))
    cores = os.cpu_count() or 1
    threads = settings.asr.cpu_threads or max(1, cores // workers)
    settings = replace(settings, asr=replace(settings.asr, cpu_threads=threads))
    if source is not None:
        results = source(settings, paths, todo, workers)
    elif workers == 1:
        results = _results_serial(settings, paths, todo)
    else:
        results = _results_pool(settings, paths, todo, workers)
    try:
        for result in results:
            _account(summary, result, store)
            if on_result:
                on_result(result)
    except KeyboardInterrupt:
        summary.interrupted = True
    return summary


def _account(summary: BatchSummary, result: ItemResult, store: OutputStore) -> None:
    summary.busy_s += result.elapsed_s
    if result.ok:
        summary.succeeded += 1
        summary.audio_s += result.audio_s
    else:
        summary.failed += 1
        summary.failures.append(result)
        record_failure(store, result)


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
