"""``ambient audit verify``: check that the audit trail is whole and unedited."""

from __future__ import annotations

import argparse
from pathlib import Path

from ambient.config import resolve_paths
from ambient.ehr.audit import AuditLog


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("audit", help="verify the hash-chained audit trail")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = actions.add_parser("verify", help="detect edited, removed or reordered entries")
    verify.add_argument("--dir", type=Path, help="audit folder (default: <data dir>/audit)")
    verify.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    log = AuditLog(args.dir) if args.dir else AuditLog.for_paths(resolve_paths())
    result = log.verify()
    for warning in result.warnings:
        print(f"warning: {warning}")
    print(f"audit trail OK: {result.entries} entries, chain and head intact ({log.path})")
    return 0
