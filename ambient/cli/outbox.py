"""``ambient outbox list | retry | purge | drain``: look into and steer the delivery queue."""

from __future__ import annotations

import argparse
import json
import time

from ambient.cli.deliver import EXIT_NOT_DELIVERED, add_delivery_config_flag, describe, item_json
from ambient.config import load_settings, resolve_paths
from ambient.ehr.options import load_delivery_options
from ambient.ehr.outbox import STATES, Outbox
from ambient.errors import UsageError
from ambient.protect.retention import release_delivered_audio
from ambient.quarantine import list_quarantined


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("outbox", help="list, retry, purge or drain queued deliveries")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("list", help="queued, delivered and dead-lettered notes (ids and hashes only)")
    show.add_argument("--state", choices=STATES, action="append", help="only these states (repeatable)")
    show.add_argument("--json", action="store_true")
    retry = actions.add_parser("retry", help="make dead or waiting items due now")
    retry.add_argument("ids", nargs="*", type=int, metavar="ID")
    retry.add_argument("--all-dead", action="store_true", help="every dead-lettered item")
    purge = actions.add_parser("purge", help="forget delivered items (the audit trail keeps their history)")
    purge.add_argument("--dead", action="store_true", help="also forget dead-lettered items")
    drain = actions.add_parser("drain", help="deliver everything that is due")
    drain.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="keep retrying this long")
    for action in (show, retry, purge, drain):
        add_delivery_config_flag(action)
        action.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    paths = resolve_paths()
    with Outbox.for_paths(paths, load_delivery_options(paths, args.delivery_config)) as outbox:
        code = _run(args, outbox)
    if args.action == "drain":  # notes that just landed free their encounter's audio ([retention])
        release_delivered_audio(paths, load_settings(paths))
    return code


def _run(args: argparse.Namespace, outbox: Outbox) -> int:
    if args.action == "list":
        items = outbox.items(args.state or STATES)
        if args.json:
            print(json.dumps([item_json(i) for i in items], indent=2))
            return 0
        for q in list_quarantined(resolve_paths(), "outbox"):  # pending notes there were not sent
            print(f"quarantined outbox database ({q.reason}, {q.at[:19]}): {q.folder}")
        if not items:
            print("outbox is empty")
        for i in items:
            due = (
                "" if i.state != "pending" else f" due in {max(0, round(i.next_attempt_at - time.time()))} s"
            )
            reason = f" — {i.last_error}" if i.last_error and i.state != "delivered" else ""
            print(
                f"{i.id:>5}  {i.state:<9} attempts {i.attempts:<2} {i.encounter_id}  {i.target}  "
                f"note {i.note_sha256[:12]}{due}{reason}"
            )
        return 0
    if args.action == "retry":
        if not args.ids and not args.all_dead:
            raise UsageError("give item ids (see `ambient outbox list`) or --all-dead")
        count = outbox.retry(args.ids, all_dead=args.all_dead)
        print(f"{count} item(s) due now; `ambient outbox drain` delivers them")
        return 0
    if args.action == "purge":
        count = outbox.purge(("delivered", "dead") if args.dead else ("delivered",))
        print(f"purged {count} item(s)")
        return 0
    items = outbox.drain_until_settled(None, timeout_s=max(0.0, args.wait))
    now = outbox.clock()
    open_items = [i for i in items if i.state in {"pending", "sending"}]
    delivered = sum(1 for i in items if i.state == "delivered")
    print(f"{delivered} delivered, {len(open_items)} waiting, {sum(i.state == 'dead' for i in items)} dead")
    for item in open_items:
        print(describe(item, now))
    return EXIT_NOT_DELIVERED if open_items else 0
