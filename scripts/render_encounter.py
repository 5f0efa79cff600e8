"""Render doctor–patient dialogues to synthetic two-voice speech for ASR and diarisation tests.

    python scripts/render_encounter.py DIALOGUE.txt --out DIR [--name NAME]
    python scripts/render_encounter.py --sample --out DIR
    python scripts/render_encounter.py --aci-bench ../shared/data/aci-bench/valid.csv --rows 3 \
        --out DIR

Each dialogue becomes ``NAME.wav`` (16 kHz mono) and ``NAME.reference.json`` (who said what and
when, marked synthetic). Dataset files are read where they lie; nothing is copied into the repo.
Needs the ``ambient`` package importable (installed, or PYTHONPATH set to the repository root).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ambient.audio.synth import RenderedEncounter, render_dialogue, render_sample
from ambient.errors import AmbientError, TranscriptFormatError, UsageError
from ambient.transcript.dialogue import DialogueTurn, parse_dialogue

T = TypeVar("T")
_ACI_COLUMNS = ("encounter_id", "dialogue")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Render dialogues to synthetic two-voice speech (espeak-ng) with a reference."
    )
    parser.add_argument(
        "dialogue",
        nargs="?",
        type=Path,
        help="dialogue text file ([doctor]/[patient] or D:/P: turns)",
    )
    parser.add_argument("--sample", action="store_true", help="render the built-in sample visit")
    parser.add_argument(
        "--aci-bench",
        type=Path,
        metavar="CSV",
        help="ACI-Bench CSV (columns dataset, encounter_id, dialogue, note)",
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=1,
        metavar="N",
        help="with --aci-bench: render the first N dialogues (default 1)",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument("--name", help="output file stem (default: the input's name)")
    return parser


def _aci_rows(path: Path, rows: int) -> list[tuple[str, str]]:
    """(encounter_id, dialogue) for the first ``rows`` rows, checked before any audio is made."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in _ACI_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise TranscriptFormatError(
                f"{path}: missing column(s) {', '.join(missing)}; expected an ACI-Bench CSV "
                "with columns dataset, encounter_id, dialogue, note"
            )
        selected: list[tuple[str, str]] = []
        for row in reader:
            if len(selected) == rows:
                break
            selected.append((row["encounter_id"], row["dialogue"]))
    return selected


def _read(load: Callable[[], T], path: Path) -> T:
    """Unreadable or non-UTF-8 input is the user's to fix, so it exits 2 like a bad argument."""
    try:
        return load()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{path}: cannot read it as UTF-8 text ({error})") from error


def _report(encounter: RenderedEncounter) -> None:
    print(
        f"{encounter.audio_path}  {encounter.duration_s:.1f} s  {len(encounter.turns)} turns  "
        f"(synthetic, {encounter.engine})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    sources = [bool(args.dialogue), args.sample, bool(args.aci_bench)]
    if sum(sources) != 1:
        parser.error("give exactly one of DIALOGUE, --sample or --aci-bench CSV")
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    if args.name and args.aci_bench:
        parser.error("--name cannot be used with --aci-bench: files are named by encounter_id")
    for path in (args.dialogue, args.aci_bench):
        if path is not None and not path.is_file():
            parser.error(f"{path}: no such file")
    try:
        if args.sample:
            _report(render_sample(args.out, args.name or "sample-encounter"))
            return 0
        jobs: list[tuple[str, list[DialogueTurn]]] = []
        if args.dialogue:
            text = _read(lambda: args.dialogue.read_text(encoding="utf-8"), args.dialogue)
            name = args.name or args.dialogue.stem
            jobs.append((name, parse_dialogue(text, source=str(args.dialogue))))
        else:
            selected = _read(lambda: _aci_rows(args.aci_bench, args.rows), args.aci_bench)
            if len(selected) < args.rows:
                raise UsageError(f"{args.aci_bench} has only {len(selected)} rows; lower --rows")
            for encounter_id, dialogue in selected:  # parse all first: fail before any audio
                source = f"{args.aci_bench} ({encounter_id})"
                jobs.append((encounter_id, parse_dialogue(dialogue, source=source)))
        for name, turns in jobs:
            _report(render_dialogue(turns, args.out, name))
    except AmbientError as error:
        print(f"render_encounter: {error}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
