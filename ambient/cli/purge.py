"""``ambient purge --older-than 30d [--dry-run]``: remove journals, outbox rows, batch outputs and
inbox drafts past the retention policy, with an audit entry of counts and hashes."""

from __future__ import annotations

import argparse
import json

from ambient.config import load_settings, resolve_paths
from ambient.protect.purge import parse_age, purge


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "purge",
        help="remove encounter data older than the retention policy",
        description="Removes closed journals, finished outbox rows, batch outputs and inbox drafts "
        "older than AGE; never an encounter whose note was not delivered. Records counts and hashes "
        "(never content) in the audit trail.",
    )
    parser.add_argument(
        "--older-than", metavar="AGE", help="e.g. 30d, 12h, 2w (default: [retention] older_than)"
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would go; remove nothing")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    paths = resolve_paths()
    settings = load_settings(paths)
    label = args.older_than or settings.retention.older_than
    report = purge(paths, settings, parse_age(label), dry_run=args.dry_run, label=label.strip())
    counts = report.plan.counts()
    if args.json:
        print(json.dumps({"dry_run": report.dry_run, "older_than": label, **counts,
                          "manifest": str(report.manifest) if report.manifest else None,
                          "manifest_sha256": report.manifest_sha256}, indent=2))  # fmt: skip
        return 0
    verb = "would remove" if report.dry_run else "removed"
    print(
        f"{verb} (older than {label}): {counts['journals']} journals, {counts['outbox_rows']} outbox rows, "
        f"{counts['batch_outputs']} batch outputs, {counts['inbox_files']} inbox files"
    )
    if counts["kept_interrupted"]:
        print(f"kept {counts['kept_interrupted']} interrupted encounter(s): their note was never delivered")
    if report.manifest is not None:
        print(f"list of what was removed (ids and hashes): {report.manifest}")
    return 0
