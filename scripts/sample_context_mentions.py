"""Draw finding mentions from MTS-Dialog for hand-labelling ConText modifiers (negated, historical, family).

Why a script: a held-out set is only honest if how it was drawn can be repeated and checked. This
draws, with a fixed seed, from dialogues in none of the existing label files:

* stratum ``random``: dialogues in a seeded random order, one problem/symptom mention per dialogue
  drawn at random among the pipeline's mentions in its non-question sentences (as the earlier sets);
* stratum ``past-cue`` (optional, ``--past-cue N``): further dialogues (not those of the first
  stratum), one mention per dialogue drawn among mentions in non-question sentences that contain a
  past-time cue (``_PAST_CUE``), to enrich the sample for historical mentions, the weak modifier.

It writes two files, both meant to stay OUTSIDE the repository's label files:

* ``--sheet`` (e.g. under /tmp): the sentences with their term and the turns before them, for the
  person labelling to read. It holds dataset text, so it must never be committed.
* ``--out``: a skeleton label file with references only (file, id, turn, sentence, term, stratum)
  and the three flags set to ``null``; the labeller fills them in by reading the sheet (not the
  model's modifiers, which this script never prints) and drops unclear items.

Example (held-out set 3)::

    python scripts/sample_context_mentions.py --seed 3 --random 110 --past-cue 60 \\
        --exclude tests/data/mts_dialog_context_labels.json \\
        tests/data/mts_dialog_context_labels_heldout.json \\
        tests/data/mts_dialog_context_labels_heldout2.json \\
        --sheet /tmp/heldout3_sheet.txt --out /tmp/heldout3_skeleton.json
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
from pathlib import Path

from ambient.evaluation.context import dialogue_sentences
from ambient.nlp.findings import ClinicalNLP

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "mts-dialog"
TRAINING = "MTS-Dialog-TrainingSet.csv"
# Words that put an event in the past or name a history; chosen before labelling, not tuned on errors.
_PAST_CUE = re.compile(
    r"\b(?:ago|used to|history|had|when i was|years?|last (?:year|month|week|time)|as a (?:kid|child)"
    r"|in the past|previous(?:ly)?|back in|childhood|diagnosed)\b",
    re.IGNORECASE,
)


def _excluded(paths: list[Path]) -> set[tuple[str, str]]:
    """(file, dialogue ID) pairs already used by a label file: never drawn again."""
    used: set[tuple[str, str]] = set()
    for path in paths:
        used |= {(i["file"], str(i["id"])) for i in json.loads(path.read_text(encoding="utf-8"))["items"]}
    return used


def _mentions(nlp: ClinicalNLP, dialogue: str) -> list[tuple[int, int, str, str]]:
    """(turn, sentence, sentence text, term) for every problem/symptom mention in a statement."""
    turns = dialogue_sentences(dialogue)
    places = [(t, s, text) for t, sents in enumerate(turns) for s, text in enumerate(sents)]
    statements = [p for p in places if not p[2].rstrip().endswith("?")]
    found = nlp.analyse([text for _, _, text in statements])
    out: list[tuple[int, int, str, str]] = []
    for (turn, sentence, text), findings in zip(statements, found, strict=True):
        seen: set[str] = set()  # score_context takes the first mention of a term in a sentence
        for f in findings:
            term = f.text.lower()
            if f.category in {"PROBLEM", "SYMPTOM"} and term not in seen:
                seen.add(term)
                out.append((turn, sentence, text, term))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--random", type=int, default=150, help="mentions in the random stratum")
    parser.add_argument("--past-cue", type=int, default=0, help="mentions in the past-cue stratum")
    parser.add_argument("--exclude", type=Path, nargs="*", default=[])
    parser.add_argument("--sheet", type=Path, required=True, help="text to read (dataset text: not for git)")
    parser.add_argument("--out", type=Path, required=True, help="skeleton label file (references only)")
    args = parser.parse_args()

    used = _excluded(args.exclude)
    with (DATA / TRAINING).open(encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if (TRAINING, r["ID"]) not in used]
    rng = random.Random(args.seed)
    rng.shuffle(rows)
    nlp = ClinicalNLP()
    wanted = {"random": args.random, "past-cue": args.past_cue}
    drawn: list[dict[str, object]] = []
    sheet: list[str] = []
    for row in rows:
        stratum = next((k for k, n in wanted.items() if n > 0), None)
        if stratum is None:
            break
        mentions = _mentions(nlp, row["dialogue"])
        if stratum == "past-cue":
            mentions = [m for m in mentions if _PAST_CUE.search(m[2])]
        if not mentions:
            continue
        turn, sentence, text, term = rng.choice(mentions)
        wanted[stratum] -= 1
        drawn.append(
            {"file": TRAINING, "id": row["ID"], "turn": turn, "sentence": sentence, "term": term,
             "stratum": stratum, "negated": None, "historical": None, "family": None}
        )  # fmt: skip
        lines = [t for t in re.split(r"\r?\n", row["dialogue"]) if t.strip()]
        before = "\n      ".join(lines[max(turn - 3, 0) : turn])
        sheet.append(
            f"[{len(drawn) - 1}] {stratum} id={row['ID']} turn={turn} sent={sentence} TERM={term!r}\n"
            f"  ctx: {before}\n  >>> {text}\n"
        )
    args.out.write_text(json.dumps({"items": drawn}, indent=1) + "\n", encoding="utf-8")
    args.sheet.write_text("\n".join(sheet), encoding="utf-8")
    print(f"{len(drawn)} mentions from {len(rows)} candidate dialogues -> {args.out}, {args.sheet}")


if __name__ == "__main__":
    main()
