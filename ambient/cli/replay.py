"""``ambient replay OLD_OUT --out NEW_OUT [--model M] [--template T]``: re-draft an earlier run.

What is replayed and from which source (stored transcript or recorded audio) is decided in
:mod:`ambient.batch.replay`; the run itself — workers, ``--ray``, resume, failures.jsonl, the bar —
is the batch command's. Replayed notes are never delivered: a site compares them first
(``ambient diff OLD_OUT NEW_OUT``).
"""

from __future__ import annotations

import argparse

from ambient.batch.replay import plan_replay
from ambient.cli.batch import add_ray_flag, output_location, run_with_progress
from ambient.cli.common import add_asr_flags, add_template_flag, settings_from_args


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "replay",
        help="re-draft the encounters of an earlier batch under a new model or template",
        description="Re-process every finished encounter of OLD_OUT (an `ambient batch` or `ambient "
        "replay` output) into NEW_OUT with the given --model/--template. With the recorded model, "
        "notes are re-drafted from the stored transcripts; with a new model, the recorded audio is "
        "transcribed again (it must still be at its recorded path with the same sha256). Compare "
        "with `ambient diff OLD_OUT NEW_OUT`. Exit 0: all replayed; 1: some failed (NEW_OUT/"
        "failures.jsonl); 2: usage error.",
    )
    parser.add_argument("old_out", type=output_location, metavar="OLD_OUT", help="a folder or an fsspec URL")
    parser.add_argument(
        "--out", type=output_location, required=True, metavar="NEW_OUT", help="a folder or an fsspec URL"
    )
    parser.add_argument("--workers", type=int, help="parallel worker processes or Ray actors (default 1)")
    parser.add_argument(
        "--retranscribe",
        action="store_true",
        help="transcribe the recorded audio again even when the model is unchanged",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_ray_flag(parser)
    add_template_flag(parser)
    add_asr_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings, paths = settings_from_args(args)
    return run_with_progress(
        args,
        settings,
        paths,
        lambda: plan_replay(args.old_out, args.out, settings, paths, args.retranscribe),
        deliver=False,
    )
