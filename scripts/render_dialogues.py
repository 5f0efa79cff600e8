"""Render text dialogues as two-voice speech, ready for ``ambient eval asr|speakers``.

    python scripts/render_dialogues.py ../shared/data/aci-bench/valid.csv --limit 3 --out rendered/
    python scripts/render_dialogues.py ../shared/data/mts-dialog/MTS-Dialog-TestSet-1-MEDIQA-Chat-2023.csv \\
        --limit 5 --out rendered/
    python scripts/render_dialogues.py ../shared/data/primock57/transcripts --limit 2 --out rendered/
    ambient eval asr rendered/ && ambient eval speakers rendered/

SOURCE is an ACI-Bench CSV (``encounter_id``, ``dialogue`` with ``[doctor]``/``[patient]`` turns),
an MTS-Dialog CSV (``ID``, ``dialogue`` with ``Doctor:``/``Patient:`` turns), a folder of
PriMock57 TextGrids (``NAME_doctor.TextGrid`` + ``NAME_patient.TextGrid``: utterances merged in
time order, transcriber tags removed), one such TextGrid pair's doctor file, or one dialogue
``.txt``. Each dialogue becomes, in the output folder:

- ``NAME.wav``: 16 kHz mono, the clinician and the patient spoken by two espeak-ng voices
  (``ambient.audio.synth.render_dialogue``);
- ``NAME.reference.json``: what was spoken, by whom, from when to when (exact sample times),
  ``"synthetic": true``: every figure measured on it is about synthetic speech, and
  ``ambient eval`` labels it so;
- ``NAME.txt``: the same turns as ``[doctor]``/``[patient]`` lines (for ``ambient note`` and people).

Dialogues with a third speaker or no turns are skipped with a reason. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from ambient.audio.synth import SynthOptions, render_dialogue
from ambient.errors import AmbientError, TranscriptFormatError
from ambient.evaluation.data import read_textgrid_turns
from ambient.transcript.dialogue import CLINICIAN, DialogueTurn, detokenize, parse_dialogue

_LABEL = {CLINICIAN: "doctor", "patient": "patient"}


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in name).strip("-.") or "dialogue"


def _csv_prefix(name: str) -> str:
    """``aci-valid``, ``aci-test1``, ``mts-test1``, ``mts-valid``: names that say where a file came from."""
    lower = name.lower()
    if "mts" not in lower:
        return f"aci-{_safe(Path(name).stem.split('_')[-1])}"
    split = re.search(r"testset-(\d)|(validation)|(training)", lower)
    if split is None:
        return "mts"
    return "mts-" + (f"test{split.group(1)}" if split.group(1) else "valid" if split.group(2) else "train")


def from_csv(path: Path, prefix: str) -> Iterator[tuple[str, str | list[DialogueTurn]]]:
    csv.field_size_limit(1 << 30)
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if "dialogue" not in (reader.fieldnames or ()):
            raise SystemExit(f"render_dialogues: {path} has no 'dialogue' column (ACI-Bench, MTS-Dialog)")
        for number, row in enumerate(reader, start=1):
            ident = row.get("encounter_id") or row.get("ID") or f"row{number}"
            yield f"{prefix}-{_safe(ident)}", row["dialogue"]


def from_textgrids(folder: Path) -> Iterator[tuple[str, str | list[DialogueTurn]]]:
    for doctor in sorted(folder.glob("*_doctor.TextGrid")):
        stem = doctor.name.removesuffix("_doctor.TextGrid")
        patient = doctor.with_name(f"{stem}_patient.TextGrid")
        if not patient.is_file():
            print(f"skip {stem}: no {patient.name}", file=sys.stderr)
            continue
        turns = read_textgrid_turns(doctor, patient)
        yield f"primock-{_safe(stem)}", [DialogueTurn(t.role or CLINICIAN, t.text) for t in turns]


def dialogues(source: Path) -> Iterator[tuple[str, str | list[DialogueTurn]]]:
    if source.is_dir():
        yield from from_textgrids(source)
    elif source.suffix.lower() == ".csv":
        yield from from_csv(source, _csv_prefix(source.name))
    elif source.name.endswith("_doctor.TextGrid"):
        yield from (d for d in from_textgrids(source.parent) if d[0] == f"primock-{_safe(source.name[:-16])}")
    elif source.is_file():
        yield _safe(source.stem), source.read_text(encoding="utf-8")
    else:
        raise SystemExit(f"render_dialogues: {source} does not exist")


def render(name: str, dialogue: str | list[DialogueTurn], out: Path, options: SynthOptions,
           max_turns: int | None) -> float:  # fmt: skip
    turns = parse_dialogue(dialogue, source=name) if isinstance(dialogue, str) else dialogue
    turns = [DialogueTurn(t.role, detokenize(t.text)) for t in turns if detokenize(t.text)][:max_turns]
    rendered = render_dialogue(turns, out, name, options)
    lines = [f"[{_LABEL[t.role]}] {t.text}" for t in rendered.turns]
    (out / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return rendered.duration_s


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sources", type=Path, nargs="+", metavar="SOURCE")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--limit", type=int, help="at most N dialogues from each source")
    parser.add_argument("--max-turns", type=int, help="only the first N turns of each dialogue")
    parser.add_argument("--clinician-voice", default=SynthOptions.clinician_voice)
    parser.add_argument("--patient-voice", default=SynthOptions.patient_voice)
    args = parser.parse_args()
    options = SynthOptions(clinician_voice=args.clinician_voice, patient_voice=args.patient_voice)
    done = skipped = 0
    total_s = 0.0
    for source in args.sources:
        taken = 0
        for name, dialogue in dialogues(source):
            if args.limit is not None and taken >= args.limit:
                break
            try:
                seconds = render(name, dialogue, args.out, options, args.max_turns)
            except TranscriptFormatError as exc:  # a third speaker, or no turns: not a two-voice visit
                print(f"skip {name}: {exc}", file=sys.stderr)
                skipped += 1
                continue
            except AmbientError as exc:
                print(f"render_dialogues: {exc}", file=sys.stderr)
                return exc.exit_code
            taken += 1
            done += 1
            total_s += seconds
            print(f"{name}: {seconds / 60:.1f} min (synthetic speech)", file=sys.stderr)
    print(f"rendered {done} dialogues ({total_s / 60:.1f} min of synthetic speech) into {args.out}; "
          f"skipped {skipped}")  # fmt: skip
    return 0 if done else 3


if __name__ == "__main__":
    sys.exit(main())
