"""Note drafting benchmark on ACI-Bench (valid and test1), next to the published baselines.

    python scripts/bench_notes.py               # writes its section of docs/benchmarks.md
    python scripts/bench_notes.py --show 3      # also print the draft for test1 row 3

For every dialogue the default clinical drafter writes a note with the `progress` template (the
layout of ACI-Bench's reference notes) through the same code as `ambient note DIALOGUE.txt`, and
the faithfulness check runs on it. Reported, per split:

- ROUGE-1/2/Lsum with `rouge_score`, no stemming, Lsum on newline-split sentences: the scorer
  behind ACI-Bench's published table (copying the dialogue reproduces its "transcript" row).
- Concept recall and precision: medications (drug dictionary) and problems (our NLP) in the
  reference note vs the draft; numbers (doses, vitals) that the reference and the dialogue share.
- Unsupported statements found by the faithfulness check before it acts, and left after it
  (must be 0), by kind.
- Drafting time per note (NLP + drafting + check; the one-off pipeline load reported apart).

Data: ../shared/data/aci-bench, read where it lies; the script stops with a reason without it.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchdoc import machine, write_section

if TYPE_CHECKING:
    from ambient.evaluation.notes import NoteScore

REPO = Path(__file__).resolve().parents[1]
ACI = REPO.parent / "shared" / "data" / "aci-bench"
SPLITS = {"valid": "valid.csv", "test1": "clinicalnlp_taskB_test1.csv"}
GROUP_NAMES = ("subjective", "objective_exam", "objective_results", "assessment_and_plan")


def run(split: str, show: int | None) -> list[NoteScore]:
    """Draft and score every dialogue of one split through the product's `ambient eval notes` code."""
    from ambient.evaluation.notes import NoteScorer, read_examples
    from ambient.notes.render import note_to_text
    from ambient.notes.templates import load_template

    scorer = NoteScorer(load_template("progress"))
    examples = read_examples(ACI / SPLITS[split])
    if show is not None:
        print(note_to_text(scorer.draft(examples[show])[0]))
    return list(scorer.score_all(examples))


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def context_lines() -> list[str]:
    """Negation/history/family accuracy on the hand-labelled MTS-Dialog mentions."""
    from ambient.evaluation.context import score_context
    from ambient.notes.clinical import clinical_nlp

    mts = REPO.parent / "shared" / "data" / "mts-dialog"
    if not mts.is_dir():
        return ["", "(MTS-Dialog not present: ConText accuracy not measured.)"]
    data = REPO / "tests" / "data"
    heldout3 = data / "mts_dialog_context_labels_heldout3.json"
    heldout4 = data / "mts_dialog_context_labels_heldout4.json"
    sets: list[tuple[str, Path, str | None]] = [
        ("revision set (valid + test-1; rules revised on its errors)",
         data / "mts_dialog_context_labels.json", None),
        ("first held-out set (training dialogues; revision data since rules 1.2.0)",
         data / "mts_dialog_context_labels_heldout.json", None),
        ("set 2 (training dialogues; held out for rules 1.2.0, revision data since rules 1.3.0)",
         data / "mts_dialog_context_labels_heldout2.json", None),
        ("set 3, all (held out for rules 1.3.0, revision data since rules 1.4.0)", heldout3, None),
        ("set 3, random stratum (one random mention per dialogue, as set 2)", heldout3, "random"),
        ("set 3, past-cue stratum (mentions in sentences with a past-time cue)", heldout3, "past-cue"),
        ("held-out set 4, all (other training dialogues; labelled before rules 1.4.0, never used to revise)",
         heldout4, None),
        ("held-out set 4, random stratum", heldout4, "random"),
    ]  # fmt: skip
    lines = [
        "",
        "### ConText modifiers on hand-labelled MTS-Dialog mentions",
        "",
        "Finding mentions in MTS-Dialog statements, labelled by hand "
        "(`tests/data/mts_dialog_context_labels*.json`, references only, no dataset text). "
        "Target: ≥ 95 % for negation and history.",
        "",
        "| set | mentions | negated | historical | family |",
        "|---|---|---|---|---|",
    ]
    for name, path, stratum in sets:
        score = score_context(clinical_nlp(), path, mts, stratum)
        lines.append(
            f"| {name} | {score.items} | {100 * score.accuracy('negation'):.1f} % | "
            f"{100 * score.accuracy('history'):.1f} % | {100 * score.accuracy('family'):.1f} % |"
        )
    lines += [
        "",
        "Set 2 (155 mentions) scored 98.1 / 91.6 / 97.4 % (negated / historical / family) under rules 1.2.0 "
        "while held out; its errors were then read and rules 1.3.0 written for their general patterns. Set 3 "
        "(156 mentions; `scripts/sample_context_mentions.py --seed 3`: 100 drawn as set 2 and 56 from "
        "sentences with a past-time cue, to enrich it for history) scored 98.1 / 91.0 / 94.2 % under rules "
        "1.3.0 while held out (random stratum 99.0 / 96.0 / 96.0 %; past-cue stratum 96.4 % negated, "
        "82.1 % historical); "
        "its errors were then read and rules 1.4.0 written for their general patterns, so its rows above "
        "are revision data. Of its 26 wrong flags, 7 were fixed by general rules; the rest need what "
        "phrase rules cannot see: a relative named only as 'he' or 'they' in an earlier turn (7 family), "
        "'I had X' said of the present illness or a date in an earlier turn (7 history), a spoken year "
        "that number normalisation turns into a wrong number (3), and one ambiguous label. Held-out set 4 "
        "(`--seed 4`; 94 mentions kept of 118 drawn: 90 random, and only 4 past-cue, as the training set "
        "had 8 unused dialogues with a past-cue mention left) was labelled before rules 1.4.0 were written, "
        "by the person who then wrote them: 100 / 97.9 / 96.8 % under both rules 1.3.0 and 1.4.0.",
    ]
    return lines


def summarise(results: dict[str, list[NoteScore]], load_s: float) -> str:
    from ambient.evaluation.notes import published_baselines, summary
    from ambient.notes.clinical import DRAFTER_ID, clinical_nlp

    lines = [
        "## Note drafting on ACI-Bench (`scripts/bench_notes.py`)",
        "",
        f"- Run: {datetime.now(UTC).isoformat(timespec='seconds')}; machine: {machine()}",
        f"- Drafter `{DRAFTER_ID}`, rules {clinical_nlp().versions}, template `progress` (ACI layout);",
        "  input: ACI-Bench dialogues (human transcripts, `[doctor]`/`[patient]`), so no ASR errors here.",
        "  Same code as `ambient eval notes DATA.csv`.",
        "- ROUGE: `rouge_score`, no stemming, ROUGE-L as Lsum (the published table's scorer).",
        f"- Pipeline load (vocabularies, matchers, drug dictionary): {load_s:.1f} s once per process.",
        "",
        "| split | notes | ROUGE-1 | ROUGE-2 | ROUGE-Lsum | medication recall / precision | "
        "problem recall / precision | shared numbers recalled | unsupported found → left | "
        "s per note (median / max) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    summaries = {split: summary(scores) for split, scores in results.items() if scores}
    for split, sm in summaries.items():
        r, c = sm["rouge"], sm["concepts"]
        found = sum(sm["unsupported_found"].values())
        kinds = ", ".join(f"{k} {v}" for k, v in sm["unsupported_found"].items()) or "none"
        lines.append(
            f"| {split} | {sm['notes']} | {r['rouge1']:.2f} | {r['rouge2']:.2f} | {r['rougeLsum']:.2f} | "
            f"{_pct(c['medications']['recall'])} / {_pct(c['medications']['precision'])} | "
            f"{_pct(c['problems']['recall'])} / {_pct(c['problems']['precision'])} | "
            f"{_pct(sm['numbers_recalled'])} | {found} ({kinds}) → {sm['unsupported_left']} | "
            f"{sm['seconds_per_note']['median']:.3f} / {sm['seconds_per_note']['max']:.3f} |"
        )
    lines += ["", "Per section group, ROUGE-1 (ACI-Bench's division evaluation):", ""]
    lines += ["| split | " + " | ".join(GROUP_NAMES) + " |", "|---|" + "---|" * len(GROUP_NAMES)]
    for split, sm in summaries.items():
        cells = [f"{sm['groups'][g]['rouge1']:.2f}" if g in sm["groups"] else "–" for g in GROUP_NAMES]
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    test1 = summaries.get("test1")
    if test1:
        r = test1["rouge"]
        lines += [
            "",
            "### test1 next to the published baselines (ACI-Bench paper, full note)",
            "",
            "| system | ROUGE-1 | ROUGE-2 | ROUGE-L |",
            "|---|---|---|---|",
            f"| **ambient {DRAFTER_ID} (this run)** | **{r['rouge1']:.2f}** | **{r['rouge2']:.2f}** | "
            f"**{r['rougeLsum']:.2f}** |",
        ]
        lines += [
            f"| {name} | {a:.2f} | {b:.2f} | {c:.2f} |"
            for name, a, b, c in published_baselines(ACI / "published_results_test1.csv")
        ]
        slow, left = test1["seconds_per_note"]["max"], test1["unsupported_left"]
        lines += [
            "",
            "### Against the targets (default drafter, 2 CPU cores)",
            "",
            "| target | measured | met |",
            "|---|---|---|",
            f"| ROUGE-1 ≥ 45 on test1 | {r['rouge1']:.2f} | {'yes' if r['rouge1'] >= 45 else 'no'} |",
            f"| zero unsupported medications or doses in the delivered note | {left} left | "
            f"{'yes' if left == 0 else 'no'} |",
            f"| ≤ 1 s per note | max {slow:.3f} s | {'yes' if slow <= 1 else 'no'} |",
        ]
    lines += context_lines()
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", choices=[*SPLITS, "all"], default="all")
    parser.add_argument("--show", type=int, help="print the draft of this test1 row")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave the doc alone")
    args = parser.parse_args()
    if not ACI.is_dir():
        print(
            f"bench_notes: {ACI} is missing; this benchmark needs ../shared/data/aci-bench", file=sys.stderr
        )
        return 2
    from ambient.notes.clinical import clinical_nlp, draft_clinical_note
    from ambient.notes.templates import load_template
    from ambient.transcript.serialise import transcript_from_turns

    started = time.perf_counter()
    clinical_nlp().analyse(["warm up"])
    load_s = time.perf_counter() - started
    # One throw-away draft so lazily built pieces (ICD titles, matchers' first pass) are not
    # charged to the first note.
    warm = transcript_from_turns(
        [("clinician", "Your blood pressure is high today.")],
        source_path="warm-up",
        source_sha256="0" * 64,
        encounter_id="warm-up",
        pipeline_version="bench",
    )
    draft_clinical_note(warm, load_template("progress"), "0" * 64)
    results = {
        split: run(split, args.show if split == "test1" else None)
        for split in (SPLITS if args.split == "all" else [args.split])
    }
    table = summarise(results, load_s)
    print(table)
    if not args.no_write:
        print(f"wrote {write_section('notes', table)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
