"""``ambient diff OLD_OUT NEW_OUT``: what a model or template upgrade changed, encounter by encounter.

A site approves an upgrade on evidence: replay its recorded encounters (``ambient replay``), then
compare the two runs here. Encounters are paired by the sha256 of their audio (the key of both
runs' done markers). Per encounter and in total:

* word error rate of the new transcript against the old one (the old run as reference: how much
  the words moved, not which is right — that needs a human reference, ``ambient eval``);
* note sections that gained or lost all their content;
* medications and problems that the new note states and the old did not, and the reverse, read
  from the note sentences by our clinical NLP (a denied symptom is not a problem gained);
* the versions on each side, from each note's provenance block (model, template, drafter,
  pipeline) and the transcript and note sha256 that link both to the audit trail;
* the lineage the audit trail recorded for each side (audio sha256 → transcript sha256 → note
  sha256, with versions), and where the trail has no entry or a hash other than the file's
  (:mod:`ambient.batch.trail`). Ids, hashes and versions only: no PHI.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz.distance import Levenshtein

from ambient.batch.outputs import EncounterOutputs, read_encounter
from ambient.batch.replay import Recorded, recorded_encounters
from ambient.batch.store import open_store
from ambient.batch.trail import Lineage, TrailIndex, lineage_of
from ambient.errors import AmbientError
from ambient.nlp.findings import ClinicalNLP
from ambient.notes.render import note_sha256
from ambient.transcript.serialise import transcript_sha256
from ambient.types import NoteDraft

_WORD = re.compile(r"[a-z0-9]+(?:['.][a-z0-9]+)*")
_PROBLEM_CATEGORIES = frozenset({"PROBLEM", "SYMPTOM"})


def words(text: str) -> list[str]:
    """Lower-case words without punctuation: "Pain," and "pain" are the same word for WER."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class WordErrors:
    edits: int
    reference_words: int

    @property
    def wer(self) -> float | None:
        return self.edits / self.reference_words if self.reference_words else None


def word_errors(reference: str, hypothesis: str) -> WordErrors:
    """Substitutions + deletions + insertions against the reference's word count."""
    ref, hyp = words(reference), words(hypothesis)
    return WordErrors(Levenshtein.distance(ref, hyp), len(ref))


@dataclass(frozen=True)
class Versions:
    model: str | None
    template: str
    drafter: str
    pipeline: str
    transcript_sha256: str
    note_sha256: str

    @property
    def label(self) -> str:
        return f"model {self.model or 'none'} · template {self.template} · drafter {self.drafter}"


@dataclass(frozen=True)
class Concepts:
    medications: frozenset[str]
    problems: frozenset[str]


@dataclass(frozen=True)
class EncounterDiff:
    sha256: str
    folder: str
    errors: WordErrors
    sections_added: tuple[str, ...]
    sections_removed: tuple[str, ...]
    medications_gained: tuple[str, ...]
    medications_lost: tuple[str, ...]
    problems_gained: tuple[str, ...]
    problems_lost: tuple[str, ...]
    old: Versions
    new: Versions
    old_lineage: Lineage | None = None  # None: no trail was read
    new_lineage: Lineage | None = None

    @property
    def lineage_problems(self) -> tuple[str, ...]:
        """What the trail does not vouch for, per side ("old: …", "new: …")."""
        found = []
        for side, lineage in (("old", self.old_lineage), ("new", self.new_lineage)):
            if lineage is not None and lineage.problem:
                found.append(f"{side}: {lineage.problem}")
        return tuple(found)

    @property
    def changed(self) -> bool:
        return bool(
            self.errors.edits
            or self.sections_added
            or self.sections_removed
            or self.medications_gained
            or self.medications_lost
            or self.problems_gained
            or self.problems_lost
        )


@dataclass(frozen=True)
class RunDiff:
    encounters: tuple[EncounterDiff, ...]
    only_old: tuple[str, ...] = ()  # folders replayed by neither side's counterpart
    only_new: tuple[str, ...] = ()
    unreadable: tuple[tuple[str, str], ...] = field(default=())  # (folder, reason)
    trail: TrailIndex | None = None

    def totals(self) -> dict[str, Any]:
        edits = sum(e.errors.edits for e in self.encounters)
        ref = sum(e.errors.reference_words for e in self.encounters)

        def count(attr: str) -> dict[str, int]:
            return dict(Counter(x for e in self.encounters for x in getattr(e, attr)).most_common())

        return {
            "encounters_compared": len(self.encounters),
            "encounters_changed": sum(e.changed for e in self.encounters),
            "transcripts_changed": sum(bool(e.errors.edits) for e in self.encounters),
            "wer": round(edits / ref, 4) if ref else None,
            "word_edits": edits,
            "reference_words": ref,
            "sections_added": count("sections_added"),
            "sections_removed": count("sections_removed"),
            "medications_gained": count("medications_gained"),
            "medications_lost": count("medications_lost"),
            "problems_gained": count("problems_gained"),
            "problems_lost": count("problems_lost"),
            "old_versions": sorted({e.old.label for e in self.encounters}),
            "new_versions": sorted({e.new.label for e in self.encounters}),
            "only_in_old": len(self.only_old),
            "only_in_new": len(self.only_new),
            "unreadable": len(self.unreadable),
            "lineage_linked": sum(
                bool(lineage and lineage.linked)
                for e in self.encounters
                for lineage in (e.old_lineage, e.new_lineage)
            ),
            "lineage_problems": sum(bool(e.lineage_problems) for e in self.encounters),
        }


def versions(outputs: EncounterOutputs) -> Versions:
    prov = outputs.note.provenance
    model = prov.asr_model
    return Versions(
        model=f"{model.name} {model.version} ({model.sha256[:12]})" if model else None,
        template=f"{prov.template.id} {prov.template.version}",
        drafter=prov.drafter,
        pipeline=prov.pipeline_version,
        transcript_sha256=transcript_sha256(outputs.transcript),
        note_sha256=note_sha256(outputs.note),
    )


def filled_sections(note: NoteDraft) -> set[str]:
    return {s.title for s in note.sections if s.sentences}


def concepts(note: NoteDraft, nlp: ClinicalNLP) -> Concepts:
    """Medications the note mentions (not negated) and problems it asserts for this patient."""
    sentences = [s.text for section in note.sections for s in section.sentences]
    meds: set[str] = set()
    problems: set[str] = set()
    for found in nlp.analyse(sentences):
        for f in found:
            if f.category == "MEDICATION" and not f.negated:
                meds.add(f.name.lower())
            elif f.category in _PROBLEM_CATEGORIES and f.asserted:
                problems.add(f.name.lower())
    return Concepts(frozenset(meds), frozenset(problems))


def diff_encounter(
    old: EncounterOutputs,
    new: EncounterOutputs,
    sha256: str,
    nlp: ClinicalNLP,
    trail: TrailIndex | None = None,
) -> EncounterDiff:
    old_sections, new_sections = filled_sections(old.note), filled_sections(new.note)
    old_c, new_c = concepts(old.note, nlp), concepts(new.note, nlp)
    old_v, new_v = versions(old), versions(new)
    return EncounterDiff(
        sha256=sha256,
        folder=old.folder,
        errors=word_errors(old.transcript.text, new.transcript.text),
        sections_added=_sorted(new_sections - old_sections),
        sections_removed=_sorted(old_sections - new_sections),
        medications_gained=_sorted(new_c.medications - old_c.medications),
        medications_lost=_sorted(old_c.medications - new_c.medications),
        problems_gained=_sorted(new_c.problems - old_c.problems),
        problems_lost=_sorted(old_c.problems - new_c.problems),
        old=old_v,
        new=new_v,
        old_lineage=lineage_of(trail, sha256, old_v.transcript_sha256, old_v.note_sha256) if trail else None,
        new_lineage=lineage_of(trail, sha256, new_v.transcript_sha256, new_v.note_sha256) if trail else None,
    )


def diff_runs(
    old_dir: str | os.PathLike[str],
    new_dir: str | os.PathLike[str],
    nlp: ClinicalNLP,
    trail: TrailIndex | None = None,
) -> RunDiff:
    """Both runs (folders or fsspec URLs), encounter by encounter; see the module docstring.

    With ``trail`` (the audit trail, read once), each side's lineage is looked up in it.
    """
    old_store, new_store = open_store(old_dir), open_store(new_dir)
    old_recs = {r.sha256: r for r in recorded_encounters(old_store)}
    new_recs = {r.sha256: r for r in recorded_encounters(new_store)}
    diffs: list[EncounterDiff] = []
    unreadable: list[tuple[str, str]] = []
    for sha in sorted(old_recs.keys() & new_recs.keys(), key=lambda s: old_recs[s].folder):
        try:
            old = read_encounter(old_store, old_recs[sha].folder)
            new = read_encounter(new_store, new_recs[sha].folder)
        except AmbientError as exc:
            unreadable.append((old_recs[sha].folder, str(exc)))
            continue
        diffs.append(diff_encounter(old, new, sha, nlp, trail))
    return RunDiff(
        tuple(diffs),
        only_old=_folders(old_recs, old_recs.keys() - new_recs.keys()),
        only_new=_folders(new_recs, new_recs.keys() - old_recs.keys()),
        unreadable=tuple(unreadable),
        trail=trail,
    )


def diff_to_json(diff: RunDiff) -> dict[str, Any]:
    return {
        "total": diff.totals(),
        "encounters": [
            {
                "folder": e.folder,
                "sha256": e.sha256,
                "changed": e.changed,
                "wer": None if e.errors.wer is None else round(e.errors.wer, 4),
                "word_edits": e.errors.edits,
                "reference_words": e.errors.reference_words,
                "sections_added": list(e.sections_added),
                "sections_removed": list(e.sections_removed),
                "medications_gained": list(e.medications_gained),
                "medications_lost": list(e.medications_lost),
                "problems_gained": list(e.problems_gained),
                "problems_lost": list(e.problems_lost),
                "old": vars(e.old),
                "new": vars(e.new),
                "lineage": {
                    "old": e.old_lineage.to_json() if e.old_lineage else None,
                    "new": e.new_lineage.to_json() if e.new_lineage else None,
                },
            }
            for e in diff.encounters
        ],
        "audit_trail": diff.trail.summary() if diff.trail else None,
        "only_in_old": list(diff.only_old),
        "only_in_new": list(diff.only_new),
        "unreadable": [{"folder": f, "reason": r} for f, r in diff.unreadable],
    }


def _sorted(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(values))


def _folders(recs: dict[str, Recorded], shas: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(recs[s].folder for s in shas))
