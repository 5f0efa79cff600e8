"""``ambient keys status | rotate``: the data keys that seal journals, outbox rows and batch outputs."""

from __future__ import annotations

import argparse
import json

from ambient.config import load_settings, resolve_paths
from ambient.protect.keys import key_store, real_keyring
from ambient.protect.rotate import rotate


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("keys", help="data keys for encryption at rest: status, rotate")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = actions.add_parser("status", help="key ids, states and where they are kept (never the keys)")
    status.add_argument("--json", action="store_true")
    again = actions.add_parser(
        "rotate",
        help="new key; re-seal journals, outbox rows and batch outputs; retire the old key",
        description="Safe to interrupt: run it again to finish. Encounters in progress keep the old "
        "key until they end; run it again afterwards.",
    )
    again.add_argument("--json", action="store_true")
    for action in (status, again):
        action.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    paths = resolve_paths()
    settings = load_settings(paths)
    if args.action == "rotate":
        report = rotate(paths, settings)
        info = {
            "active_key": report.active_key,
            "started_new_key": report.started_new,
            "retired_keys": list(report.retired),
            "journal_records_resealed": report.journal_records,
            "outbox_fields_resealed": report.outbox_fields,
            "files_resealed": report.batch_files,
            "open_journals": list(report.open_journals),
            "complete": report.complete,
        }
        if args.json:
            print(json.dumps(info, indent=2))
        else:
            print(
                f"active key {report.active_key}"
                f"{' (new)' if report.started_new else ' (finishing an earlier rotation)'}: re-sealed "
                f"{report.journal_records} journal records, {report.outbox_fields} outbox fields, "
                f"{report.batch_files} files"
            )
            if report.complete:
                print(f"retired {', '.join(report.retired) or 'no old keys'}")
            else:
                print(
                    f"{len(report.open_journals)} encounter(s) in progress still use the old key, which is "
                    "kept; run `ambient keys rotate` again once they have ended"
                )
        return 0 if report.complete else 1
    store = key_store(paths.config_dir, settings.protect.key_store)
    keys = store.load()
    backend = real_keyring()
    info = {
        "encrypt": settings.protect.encrypt,
        "key_store_setting": settings.protect.key_store,
        "os_keyring": None if backend is None else type(backend).__name__,
        "key_file": str(store.path),
        "active_key": keys.active.key_id if keys.active else None,
        "keys": [
            {"id": k.key_id, "state": k.state, "store": k.store, "created_at": k.created_at}
            for k in keys.keys.values()
        ],
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"encryption at rest: {'on' if settings.protect.encrypt else 'off ([protect] encrypt = false)'}")
    print(f"OS keyring: {info['os_keyring'] or 'none usable (keys are kept in the key file)'}")
    print(f"key file: {store.path}")
    if not keys.keys:
        print("no data key yet: the first sealed write makes one")
    for k in keys.keys.values():
        print(f"  {k.key_id}  {k.state:<8}  in {k.store:<7}  created {k.created_at}")
    return 0
