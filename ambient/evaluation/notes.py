"""Scoring drafted notes against reference notes (ACI-Bench CSV format: dialogue + note).

For each dialogue the note is drafted through the same code as ``ambient note`` (clinical drafter,
then the faithfulness check) and compared with the reference:

- ROUGE-1/2/Lsum with ``rouge_score``, no stemming, Lsum over newline-split sentences — the scorer
  behind ACI-Bench's published table — for the whole note and per section group (subjective,
  examination, results, assessment and plan), as in the ACI-Bench "division" evaluation;
- concept precision/recall for medications, problems and allergies, each extracted from the
  reference and from the draft by our own clinical NLP;
- numbers (doses, vitals) that the reference and the dialogue share, recalled by the draft;
- statements the faithfulness check found unsupported (before it acted) and left (after);
- drafting time per note.
"""

from __future__ import annotations

import csv
import re
import statistics
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ambient.errors import InputError
from ambient.nlp.findings import ClinicalNLP, normalise
from ambient.nlp.lexicon import DrugLexicon
from ambient.notes.clinical import clinical_nlp, draft_clinical_note
from ambient.notes.faithfulness import check_note, enforce
from ambient.notes.render import note_to_text
from ambient.notes.templates import Template
from ambient.transcript.dialogue import detokenize, parse_dialogue
from ambient.transcript.serialise import transcript_from_turns, transcript_sha256
from ambient.types import NoteDraft

ROUGE_KEYS = ("rouge1", "rouge2", "rougeLsum")
GROUPS = ("subjective", "objective_exam", "objective_results", "assessment_and_plan")
_NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
# Reference-note headers (upper-case lines in ACI-Bench notes) → section group.
_REFERENCE_GROUPS = {
    "chief complaint": "subjective", "history of present illness": "subjective",
    "review of systems": "subjective", "past medical history": "subjective",
    "past surgical history": "subjective", "social history": "subjective",
    "family history": "subjective", "medications": "subjective", "current medications": "subjective",
    "allergies": "subjective", "physical examination": "objective_exam", "physical exam": "objective_exam",
    "vitals": "objective_exam", "vital signs": "objective_exam", "exam": "objective_exam",
    "results": "objective_results", "assessment and plan": "assessment_and_plan",
    "assessment": "assessment_and_plan", "plan": "assessment_and_plan", "impression": "assessment_and_plan",
    "instructions": "assessment_and_plan",
}  # fmt: skip
# Our content kinds → section group.
_KIND_GROUPS = {
    "chief_complaint": "subjective", "hpi": "subjective", "ros": "subjective", "medications": "subjective",
    "allergies": "subjective", "history": "subjective", "family_history": "subjective",
    "social_history": "subjective", "vitals": "objective_exam", "exam": "objective_exam",
    "results": "objective_results", "assessment_plan": "assessment_and_plan",
    "assessment": "assessment_and_plan", "plan": "assessment_and_plan", "icd10": "assessment_and_plan",
    "instructions": "assessment_and_plan",
}  # fmt: skip


@dataclass(frozen=True)
class Example:
    encounter_id: str
    dialogue: str
    reference: str


@dataclass
class NoteScore:
    encounter_id: str
    rouge: dict[str, float]  # full note, 0-100
    groups: dict[str, dict[str, float]]  # group → rouge key → 0-100 (groups both sides have)
    concepts: dict[str, tuple[int, int, int]]  # kind → (hits, in reference, in draft)
    numbers: tuple[int, int]  # (recalled, shared by reference and dialogue)
    unsupported_found: Counter[str] = field(default_factory=Counter)
    unsupported_left: int = 0
    seconds: float = 0.0


def read_examples(path: Path) -> list[Example]:
    """Rows of an ACI-Bench-style CSV (columns ``dialogue`` and ``note``; ``encounter_id`` if any)."""
    csv.field_size_limit(1 << 30)
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = {"dialogue", "note"} - set(reader.fieldnames or ())
            if missing:
                raise InputError(
                    f"{path} lacks column(s) {', '.join(sorted(missing))}; expected the ACI-Bench CSV "
                    "format (dialogue, note[, encounter_id])"
                )
            return [
                Example(row.get("encounter_id") or f"row-{i + 1}", row["dialogue"], row["note"])
                for i, row in enumerate(reader)
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read {path} as a UTF-8 CSV: {exc}") from None


def reference_groups(note: str) -> dict[str, str]:
    """Split a reference note into section groups by its header lines."""
    groups: dict[str, list[str]] = {}
    current: str | None = None
    for line in note.splitlines():
        header = line.strip().rstrip(":").lower()
        if header in _REFERENCE_GROUPS and line.strip().upper() == line.strip():
            current = _REFERENCE_GROUPS[header]
            continue
        if current and line.strip():
            groups.setdefault(current, []).append(line.strip())
    return {k: "\n".join(v) for k, v in groups.items()}


def draft_groups(note: NoteDraft, template: Template) -> dict[str, str]:
    kinds = {s.key: s.content for s in template.sections}
    groups: dict[str, list[str]] = {}
    for section in note.sections:
        content = kinds.get(section.key, ())
        group = _KIND_GROUPS.get(content[0]) if content else None
        if group:
            groups.setdefault(group, []).extend(s.text for s in section.sentences)
    return {k: "\n".join(v) for k, v in groups.items() if v}


class NoteScorer:
    """Drafts and scores; holds the NLP pipeline, drug dictionary and ROUGE scorer across notes."""

    def __init__(self, template: Template) -> None:
        from rouge_score import rouge_scorer

        self.template = template
        self.nlp: ClinicalNLP = clinical_nlp()
        self.drugs = DrugLexicon.load()
        self.rouge = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=False)

    def _medications(self, text: str) -> set[str]:
        return {d.name for d in self.drugs.find(re.findall(r"[A-Za-z][A-Za-z-]+", text))}

    def _findings(self, text: str, category: str) -> set[str]:
        found = self.nlp.analyse([line for line in text.splitlines() if line.strip()])
        return {f.name for fs in found for f in fs if f.category == category and not f.negated}

    def _scores(self, reference: str, draft: str) -> dict[str, float]:
        return {k: 100 * v.fmeasure for k, v in self.rouge.score(reference, draft).items()}

    def draft(self, example: Example) -> tuple[NoteDraft, Any, Any]:
        turns = parse_dialogue(example.dialogue)
        transcript = transcript_from_turns(
            [(t.role, detokenize(t.text)) for t in turns],
            source_path=example.encounter_id,
            source_sha256="0" * 64,
            encounter_id=example.encounter_id,
            pipeline_version="eval",
        )
        draft = draft_clinical_note(transcript, self.template, transcript_sha256(transcript))
        report = check_note(draft, transcript, self.nlp)
        return enforce(draft, report), report, transcript

    def score(self, example: Example) -> NoteScore:
        started = time.perf_counter()
        note, report, transcript = self.draft(example)
        seconds = time.perf_counter() - started
        left = check_note(note, transcript, self.nlp).unsupported
        text = note_to_text(note)
        ref = example.reference
        ours_groups, ref_groups = draft_groups(note, self.template), reference_groups(ref)
        concepts = {
            "medications": _pr(self._medications(text), self._medications(ref)),
            "problems": _pr(self._findings(text, "PROBLEM"), self._findings(ref, "PROBLEM")),
            "allergies": _pr(self._findings(text, "ALLERGY"), self._findings(ref, "ALLERGY")),
        }
        shared = set(_NUMBER.findall(normalise(ref))) & set(_NUMBER.findall(normalise(example.dialogue)))
        recalled = shared & set(_NUMBER.findall(normalise(text)))
        return NoteScore(
            encounter_id=example.encounter_id,
            rouge=self._scores(ref, text),
            groups={
                g: self._scores(ref_groups[g], ours_groups[g])
                for g in GROUPS
                if g in ref_groups and g in ours_groups
            },
            concepts=concepts,
            numbers=(len(recalled), len(shared)),
            unsupported_found=Counter(i.kind for i in report.issues),
            unsupported_left=left,
            seconds=seconds,
        )

    def score_all(self, examples: Sequence[Example]) -> Iterator[NoteScore]:
        for example in examples:
            yield self.score(example)


def _pr(ours: set[str], ref: set[str]) -> tuple[int, int, int]:
    return len(ours & ref), len(ref), len(ours)


def summary(scores: Sequence[NoteScore]) -> dict[str, Any]:
    """Means and totals over a set of notes, in a JSON-ready dict."""
    if not scores:
        return {"notes": 0}
    out: dict[str, Any] = {"notes": len(scores)}
    out["rouge"] = {k: round(statistics.mean(s.rouge[k] for s in scores), 2) for k in ROUGE_KEYS}
    out["groups"] = {
        g: {k: round(statistics.mean(s.groups[g][k] for s in scores if g in s.groups), 2) for k in ROUGE_KEYS}
        for g in GROUPS
        if any(g in s.groups for s in scores)
    }
    concepts: dict[str, Any] = {}
    for kind in ("medications", "problems", "allergies"):
        hits, ref, ours = (sum(s.concepts[kind][i] for s in scores) for i in range(3))
        concepts[kind] = {
            "recall": round(hits / ref, 3) if ref else None,
            "precision": round(hits / ours, 3) if ours else None,
        }
    out["concepts"] = concepts
    recalled, shared = (sum(s.numbers[i] for s in scores) for i in range(2))
    out["numbers_recalled"] = round(recalled / shared, 3) if shared else None
    found: Counter[str] = Counter()
    for s in scores:
        found.update(s.unsupported_found)
    out["unsupported_found"] = dict(sorted(found.items()))
    out["unsupported_left"] = sum(s.unsupported_left for s in scores)
    secs = [s.seconds for s in scores]
    out["seconds_per_note"] = {"median": round(statistics.median(secs), 3), "max": round(max(secs), 3)}
    return out


def published_baselines(csv_path: Path) -> list[tuple[str, float, float, float]]:
    """The ALL table of ACI-Bench's ``published_results_test1.csv``: (model, R1, R2, RL)."""
    out: list[tuple[str, float, float, float]] = []
    in_all = False
    for line in csv_path.read_text(encoding="utf-8").splitlines():
        if line.strip() == "ALL":
            in_all = True
            continue
        if in_all and not line.strip():
            break
        parts = line.split(",")
        if in_all and len(parts) >= 4 and parts[0] != "Model":
            try:
                out.append((parts[0], float(parts[1]), float(parts[2]), float(parts[3])))
            except ValueError:
                continue
    return out
