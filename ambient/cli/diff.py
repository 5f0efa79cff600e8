"""``ambient diff OLD_OUT NEW_OUT [--json]``: what changed between two batch or replay runs.

The comparison itself lives in :mod:`ambient.batch.diff`; this module prints it. The report
names medications and problems (clinical content): it goes to the terminal or stdout only,
never into logs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ambient.batch.diff import EncounterDiff, diff_runs, diff_to_json
from ambient.batch.trail import TrailIndex
from ambient.cli.batch import output_location
from ambient.config import resolve_paths
from ambient.ehr.audit import AuditLog
from ambient.notes.clinical import clinical_nlp


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "diff",
        help="compare two batch/replay runs: WER, sections, medications, problems, versions",
        description="Pair the encounters of OLD_OUT and NEW_OUT by audio sha256 and report, per "
        "encounter and in total, the WER of the new transcript against the old one, note sections "
        "added or removed, medications and problems gained or lost, the model/template "
        "versions of each side, and the lineage the audit trail recorded for each side (audio → "
        "transcript → note sha256), saying where the trail has no entry or another hash than the "
        "file. Exit 0 (differences are not errors); 2: not a run folder.",
    )
    parser.add_argument("old_out", type=output_location, metavar="OLD_OUT", help="a folder or an fsspec URL")
    parser.add_argument("new_out", type=output_location, metavar="NEW_OUT", help="a folder or an fsspec URL")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--audit-dir",
        type=Path,
        help="the audit trail to read lineage from (default: <data dir>/audit, where the runs "
        "were drafted; on a Ray cluster, the trail of the node that drafted them)",
    )
    parser.set_defaults(func=run)


def _changes(e: EncounterDiff) -> str:
    parts = []
    for label, plus, minus in (
        ("sections", e.sections_added, e.sections_removed),
        ("medications", e.medications_gained, e.medications_lost),
        ("problems", e.problems_gained, e.problems_lost),
    ):
        items = [f"+{x}" for x in plus] + [f"-{x}" for x in minus]
        if items:
            parts.append(f"{label}: {', '.join(items)}")
    return "; ".join(parts) or "—"


def _lineage(e: EncounterDiff) -> str:
    """The table's short word; what is wrong is said in full below the table."""
    if e.old_lineage is None or e.new_lineage is None:
        return "—"
    return "see below" if e.lineage_problems else "recorded"


def run(args: argparse.Namespace) -> int:
    log = AuditLog(args.audit_dir) if args.audit_dir else AuditLog.for_paths(resolve_paths())
    trail = TrailIndex(log)
    diff = diff_runs(args.old_out, args.new_out, clinical_nlp(), trail)
    if args.json:
        print(json.dumps(diff_to_json(diff), indent=2, ensure_ascii=False))
        return 0
    console = Console()
    table = Table(title=f"ambient diff {args.old_out} → {args.new_out}")
    for column in ("encounter", "WER", "changes", "trail"):
        table.add_column(column)
    for e in diff.encounters:
        wer = "n/a" if e.errors.wer is None else f"{100 * e.errors.wer:.1f} %"
        table.add_row(e.folder, wer, _changes(e), _lineage(e))
    console.print(table)
    totals = diff.totals()
    summary = Table(title="total", show_header=False)
    for key, value in totals.items():
        if key == "wer" and value is not None:
            value = f"{100 * value:.1f} %"
        summary.add_row(key.replace("_", " "), str(value))
    console.print(summary)
    for folder, reason in diff.unreadable:
        console.print(f"[red]unreadable[/red] {folder}: {reason}")
    if trail.error:
        console.print(f"[red]audit trail fails verification[/red]: {trail.error}")
    elif trail.entries:
        console.print(f"audit trail: {trail.entries} entries, chain verified ({trail.path})")
    else:
        console.print(f"audit trail: no entries ({trail.path})")
    for e in diff.encounters:
        for problem in e.lineage_problems:
            console.print(f"[yellow]lineage[/yellow] {e.folder}: {problem}", highlight=False)
    return 0
