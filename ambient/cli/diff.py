"""``ambient diff OLD_OUT NEW_OUT [--json]``: what changed between two batch or replay runs.

The comparison itself lives in :mod:`ambient.batch.diff`; this module prints it. The report
names medications and problems (clinical content): it goes to the terminal or stdout only,
never into logs.
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from ambient.batch.diff import EncounterDiff, diff_runs, diff_to_json
from ambient.cli.batch import output_location
from ambient.notes.clinical import clinical_nlp


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "diff",
        help="compare two batch/replay runs: WER, sections, medications, problems, versions",
        description="Pair the encounters of OLD_OUT and NEW_OUT by audio sha256 and report, per "
        "encounter and in total, the WER of the new transcript against the old one, note sections "
        "added or removed, medications and problems gained or lost, and the model/template "
        "versions of each side. Exit 0 (differences are not errors); 2: not a run folder.",
    )
    parser.add_argument("old_out", type=output_location, metavar="OLD_OUT", help="a folder or an fsspec URL")
    parser.add_argument("new_out", type=output_location, metavar="NEW_OUT", help="a folder or an fsspec URL")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
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


def run(args: argparse.Namespace) -> int:
    diff = diff_runs(args.old_out, args.new_out, clinical_nlp())
    if args.json:
        print(json.dumps(diff_to_json(diff), indent=2, ensure_ascii=False))
        return 0
    console = Console()
    table = Table(title=f"ambient diff {args.old_out} → {args.new_out}")
    for column in ("encounter", "WER", "changes"):
        table.add_column(column)
    for e in diff.encounters:
        wer = "n/a" if e.errors.wer is None else f"{100 * e.errors.wer:.1f} %"
        table.add_row(e.folder, wer, _changes(e))
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
    return 0
