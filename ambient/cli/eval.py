"""``ambient eval notes DATA``: score drafted notes against a site's reference notes.

A hospital validates the drafter on its own encounters before go-live: DATA is a CSV in the
ACI-Bench format (``dialogue`` with ``[doctor]``/``[patient]`` turns, ``note``, optional
``encounter_id``). When DATA is ACI-Bench's test1 split and its ``published_results_test1.csv`` lies
beside it, the published baselines are shown in the same table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ambient.cli.common import add_template_flag
from ambient.cli.eval_speech import register_speech
from ambient.errors import InputError, UsageError
from ambient.notes.templates import load_template


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("eval", help="evaluate on your own data", description=__doc__)
    kinds = parser.add_subparsers(dest="eval_kind", required=True, metavar="KIND")
    notes = kinds.add_parser(
        "notes",
        help="ROUGE, concept recall/precision and unsupported statements against reference notes",
        description="Draft a note for every dialogue in DATA and score it against the reference note.",
    )
    notes.add_argument("data", type=Path, metavar="DATA", help="CSV with dialogue and note columns")
    notes.add_argument("--json", action="store_true", help="print per-note scores and the summary as JSON")
    notes.add_argument("--limit", type=int, help="score only the first N rows")
    add_template_flag(notes)
    notes.set_defaults(func=run_notes)
    register_speech(kinds)


def run_notes(args: argparse.Namespace) -> int:
    try:
        from ambient.evaluation.notes import NoteScorer, published_baselines, read_examples, summary
    except ImportError as exc:  # rouge-score lives in the [eval] extra
        raise UsageError(
            f"`ambient eval` needs the eval extra: pip install 'ambient[eval]' ({exc})"
        ) from None
    if not args.data.is_file():
        raise InputError(f"{args.data} does not exist or is not a file")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {args.limit}")
    examples = read_examples(args.data)[: args.limit]
    if not examples:
        raise InputError(f"{args.data} has no rows to score")
    template = load_template(args.template or "progress")
    scorer = NoteScorer(template)
    scores = list(scorer.score_all(examples))
    result = summary(scores)
    baselines_file = args.data.with_name("published_results_test1.csv")
    baselines = (
        published_baselines(baselines_file) if "test1" in args.data.name and baselines_file.is_file() else []
    )
    if args.json:
        per_note = [
            {"encounter_id": s.encounter_id, "rouge": s.rouge, "unsupported_left": s.unsupported_left}
            for s in scores
        ]
        print(json.dumps({"summary": result, "notes": per_note, "template": template.ref.id}, indent=2))
        return 0
    console = Console()
    table = Table(
        title=f"ambient eval notes · {args.data.name} · {len(scores)} notes · template {template.name}"
    )
    for column in ("system", "ROUGE-1", "ROUGE-2", "ROUGE-Lsum"):
        table.add_column(column)
    r = result["rouge"]
    table.add_row("ambient (this run)", f"{r['rouge1']:.2f}", f"{r['rouge2']:.2f}", f"{r['rougeLsum']:.2f}")
    for name, r1, r2, rl in baselines:
        table.add_row(name, f"{r1:.2f}", f"{r2:.2f}", f"{rl:.2f}")
    console.print(table)
    groups = Table(title="per section group (ROUGE-1 / 2 / Lsum)")
    groups.add_column("group")
    groups.add_column("scores")
    for group, values in result["groups"].items():
        groups.add_row(group, " / ".join(f"{values[k]:.2f}" for k in ("rouge1", "rouge2", "rougeLsum")))
    console.print(groups)
    for kind, pr in result["concepts"].items():
        recall = "–" if pr["recall"] is None else f"{100 * pr['recall']:.1f} %"
        precision = "–" if pr["precision"] is None else f"{100 * pr['precision']:.1f} %"
        console.print(f"{kind}: recall {recall}, precision {precision}")
    console.print(
        f"unsupported statements found {result['unsupported_found'] or 'none'}, left in notes "
        f"{result['unsupported_left']}; drafting {result['seconds_per_note']['median']} s per note (median)"
    )
    return 0
