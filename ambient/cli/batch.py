"""``ambient batch IN_DIR --out OUT_DIR``: re-process a folder of recorded encounters.

The progress bar shows files, audio hours done, the real-time factor and an ETA; the work itself,
and its resumability, live in :mod:`ambient.batch.runner`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from ambient.batch.delivery import BatchDelivery
from ambient.batch.outputs import read_note
from ambient.batch.remote import is_url, plan_urls
from ambient.batch.runner import (
    FAILURES_FILE,
    BatchItem,
    ItemResult,
    Plan,
    ResultSource,
    plan,
    run_planned,
    summary_dict,
)
from ambient.batch.store import open_store
from ambient.cli.common import add_asr_flags, add_template_flag, settings_from_args
from ambient.config import Paths, Settings
from ambient.errors import UsageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "batch",
        help="re-process a folder of recorded encounters",
        description="Transcribe and draft every audio file under IN_DIR into OUT_DIR. Re-running "
        "skips encounters already finished (keyed by audio sha256). Exit 0: all succeeded; "
        "1: some failed (see OUT_DIR/failures.jsonl); 2: usage error.",
    )
    parser.add_argument(
        "in_dir", metavar="IN_DIR", help="a folder, a shared mount, or an fsspec URL (s3://…)"
    )
    parser.add_argument(
        "--out",
        type=output_location,
        required=True,
        metavar="OUT_DIR",
        help="a folder, a shared mount, or an fsspec URL (s3://…, file:///…)",
    )
    parser.add_argument("--workers", type=int, help="parallel worker processes (default 1)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--deliver",
        action="append",
        metavar="TARGET",
        help="also deliver each new note through the outbox (repeatable; as `ambient deliver --to`; "
        "default: [delivery] targets in the config)",
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="write transcripts and notes as plain files, not sealed (default: [protect] "
        "plain_batch_outputs); they hold PHI, so keep OUT_DIR private",
    )
    add_ray_flag(parser)
    add_template_flag(parser)
    add_asr_flags(parser)
    parser.set_defaults(func=run)


def output_location(value: str) -> Path | str:
    """``--out`` and run folders: a folder (local or a shared mount) as a Path, an fsspec URL as
    given. Object stores have no rename and no append; :mod:`ambient.batch.store` writes for them."""
    if is_url(value):
        return value.rstrip("/")
    return Path(value)


def add_ray_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run on a Ray cluster (extra 'cluster'): ADDRESS of an existing one, or without a value "
        "the one `ray start --head` started here (else a local one for this run); --workers actors",
    )


def result_source(args: argparse.Namespace) -> ResultSource | None:
    """Ray when ``--ray`` was given, else None (the local pool)."""
    if args.ray is None:
        return None
    from ambient.batch.cluster import RayOptions, ray_source

    return ray_source(RayOptions(address=args.ray or None))


class _ProgressView:
    """Keeps the counters behind the bar.

    The bar advances by input bytes, not by files: one 3-hour recording among short ones would
    otherwise make the ETA meaningless. Bytes are a fair stand-in for audio length within a batch,
    which is usually one recorder's format.
    """

    def __init__(self, progress: Progress, console: Console) -> None:
        self.progress = progress
        self.console = console
        self.task: TaskID | None = None
        self.files_total = 0
        self.files_done = 0
        self.audio_s = 0.0
        self.started = time.monotonic()

    def planned(self, todo: list[BatchItem], skipped: int) -> None:
        if skipped:
            self.console.print(f"{skipped} encounter(s) already done in an earlier run: skipped")
        self.files_total = len(todo)
        self.files_done = 0
        self.task = self.progress.add_task(
            "encounters",
            total=max(1, sum(item.size_bytes for item in todo)),
            hours=0.0,
            rtf=0.0,
            files=f"0/{self.files_total}",
        )

    def result(self, result: ItemResult) -> None:
        if self.task is None:
            return
        if result.ok:
            self.audio_s += result.audio_s
        else:
            self.console.print(f"[red]failed[/red] {result.item.source}: {result.reason}")
        wall = max(time.monotonic() - self.started, 1e-6)
        if result.item.sha256:  # unreadable inputs were never part of the planned total
            self.files_done += 1
            self.progress.advance(self.task, result.item.size_bytes)
        self.progress.update(
            self.task,
            hours=self.audio_s / 3600,
            rtf=self.audio_s / wall,
            files=f"{self.files_done}/{self.files_total}",
        )


def run(args: argparse.Namespace) -> int:
    settings, paths = settings_from_args(args)
    if args.plain:
        settings = replace(settings, protect=replace(settings.protect, plain_batch_outputs=True))
    if is_url(args.in_dir):
        # Delivery reads each encounter's metadata (NAME.context.json) beside its audio, which a URL
        # input does not have: deliver such notes afterwards with `ambient deliver --context`.
        if args.deliver:
            raise UsageError("--deliver needs a folder input (metadata is read beside the audio)")
        return run_with_progress(
            args, settings, paths, lambda: plan_urls(args.in_dir, args.out), deliver=False
        )
    return run_with_progress(args, settings, paths, lambda: plan(Path(args.in_dir), args.out), deliver=True)


def run_with_progress(
    args: argparse.Namespace, settings: Settings, paths: Paths, make_plan: Callable[[], Plan], deliver: bool
) -> int:
    """Bar, summary and exit code around a planned run: ``batch`` plans a folder, ``replay`` a run."""
    workers = args.workers if args.workers is not None else settings.batch.workers
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[files]} files"),
        TextColumn("{task.fields[hours]:.2f} h audio"),
        TextColumn("{task.fields[rtf]:.1f}× real time"),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    view = _ProgressView(progress, console)
    targets = (tuple(args.deliver) if args.deliver else settings.delivery.targets) if deliver else ()
    delivery = BatchDelivery(paths, targets) if targets else None
    started = time.monotonic()

    def on_result(result: ItemResult) -> None:
        view.result(result)
        if delivery is not None and result.ok:
            delivery.note_done(read_note(result.item.store, result.item.folder), result.item.path)

    try:
        with progress:
            summary = run_planned(
                make_plan,
                args.out,
                settings,
                paths,
                workers=workers,
                on_planned=view.planned,
                on_result=on_result,
                source=result_source(args),
            )
    finally:
        if delivery is not None:
            delivery.close()
    info = summary_dict(summary, time.monotonic() - started)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        table = Table(title="ambient batch", show_header=False)
        for key, value in info.items():
            table.add_row(key.replace("_", " "), str(value))
        console.print(table)
    if summary.failed:
        console.print(f"{summary.failed} failed: see {open_store(args.out).join(FAILURES_FILE)}")
    if summary.interrupted:
        console.print("interrupted: finished encounters are kept; run the same command to resume")
    if delivery is not None:
        console.print(delivery.report())
        if (delivery.pending or delivery.dead) and summary.exit_code == 0:
            return 1  # every note drafted, not every note delivered: say so in the exit code
    return summary.exit_code
