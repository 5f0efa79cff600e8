"""``ambient deliver NOTE.json --to TARGET``: queue a note in the outbox and deliver it now.

The outbox is always in between, so a failed delivery is not lost: the command exits non-zero
with the reason, and the note stays queued for ``ambient outbox drain`` (or the agent) to retry.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ambient.config import resolve_paths
from ambient.ehr.context import load_context_file, with_overrides
from ambient.ehr.errors import DeliveryError
from ambient.ehr.options import load_delivery_options
from ambient.ehr.outbox import Outbox, OutboxItem
from ambient.ehr.sink import TARGET_HELP
from ambient.errors import UsageError
from ambient.notes.render import load_note_file
from ambient.types import EncounterContext, NoteDraft, to_dict

EXIT_NOT_DELIVERED = DeliveryError.exit_code


def add_delivery_config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--delivery-config",
        type=Path,
        metavar="TOML",
        help="delivery settings (default: <config dir>/delivery.toml)",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "deliver",
        help="deliver a drafted note into the EHR (through the outbox)",
        description="Queue NOTE.json (from `ambient note --format json`) for each --to target and "
        f"deliver it now; what cannot be delivered stays queued. Targets: {TARGET_HELP}.",
    )
    parser.add_argument("note", type=Path, help="note JSON file")
    parser.add_argument("--to", action="append", required=True, metavar="TARGET", help="where (repeatable)")
    parser.add_argument("--context", type=Path, metavar="META", help="encounter metadata (JSON or TOML)")
    group = parser.add_argument_group("encounter metadata (override --context)")
    group.add_argument(
        "--patient", metavar="REF", dest="patient_reference", help="FHIR patient reference, e.g. Patient/123"
    )
    group.add_argument(
        "--patient-id", metavar="ID", dest="patient_identifier", help="patient identifier (MRN), HL7 PID-3"
    )
    group.add_argument(
        "--patient-id-system",
        metavar="SYSTEM",
        dest="patient_identifier_system",
        help="MRN assigning authority",
    )
    group.add_argument("--encounter", metavar="REF", dest="encounter_reference", help="e.g. Encounter/456")
    group.add_argument("--author", metavar="REF", dest="author_reference", help="e.g. Practitioner/789")
    group.add_argument(
        "--author-id", metavar="ID", dest="author_identifier", help="clinician id for HL7 TXA/PV1"
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep retrying for this long (default: one try)",
    )
    parser.add_argument("--json", action="store_true", help="print the outbox items as JSON")
    add_delivery_config_flag(parser)
    parser.set_defaults(func=run)


def item_json(item: OutboxItem) -> dict[str, object]:
    data = to_dict(item)
    return data


def describe(item: OutboxItem, now: float) -> str:
    if item.state == "delivered" and item.receipt is not None:
        return f"delivered {item.encounter_id} to {item.target}: {', '.join(item.receipt.locations)}"
    if item.state == "dead":
        return (
            f"NOT delivered {item.encounter_id} to {item.target} (outbox item {item.id}, dead-lettered): "
            f"{item.last_error}; fix the cause, then `ambient outbox retry {item.id}`"
        )
    wait = max(0, round(item.next_attempt_at - now))
    return (
        f"NOT delivered yet {item.encounter_id} to {item.target} (outbox item {item.id}, attempt "
        f"{item.attempts}, next try in {wait} s): {item.last_error}; the note stays queued: "
        "`ambient outbox drain` retries it"
    )


def run(args: argparse.Namespace) -> int:
    paths = resolve_paths()
    note = load_note_file(args.note)
    context = (
        load_context_file(args.context, note.encounter_id)
        if args.context
        else EncounterContext(encounter_id=note.encounter_id)
    )
    context = with_overrides(
        context,
        patient_reference=args.patient_reference,
        patient_identifier=args.patient_identifier,
        patient_identifier_system=args.patient_identifier_system,
        encounter_reference=args.encounter_reference,
        author_reference=args.author_reference,
        author_identifier=args.author_identifier,
    )
    if context.encounter_id != note.encounter_id:
        raise UsageError(
            f"{args.context} is for encounter {context.encounter_id!r} but {args.note} is "
            f"{note.encounter_id!r}; give the metadata of the same encounter"
        )
    with Outbox.for_paths(paths, load_delivery_options(paths, args.delivery_config)) as outbox:
        return _deliver(args, outbox, note, context)


def _deliver(args: argparse.Namespace, outbox: Outbox, note: NoteDraft, context: EncounterContext) -> int:
    ids = []
    for target in args.to:
        item, _ = outbox.enqueue(note, context, target)
        if item.state == "dead":  # asked again by a person: give it a fresh try
            outbox.retry([item.id])
        ids.append(item.id)
    items = outbox.drain_until_settled(ids, timeout_s=max(0.0, args.wait))
    now = outbox.clock()
    if args.json:
        print(json.dumps([item_json(i) for i in items], indent=2))
    failed = [i for i in items if i.state != "delivered"]
    for item in items:
        line = describe(item, now)
        if item.state == "delivered":
            if not args.json:
                print(line)
        else:
            print(f"ambient: error: {line}", file=sys.stderr)
    return EXIT_NOT_DELIVERED if failed else 0
