"""Accuracy of the ConText modifiers on hand-labelled mentions from MTS-Dialog.

The labels (``tests/data/mts_dialog_context_labels.json``) hold references only — file, dialogue
ID, turn and sentence index, the term — so no dataset text is copied into the repository; the
sentences are read from ``../shared/data/mts-dialog`` at run time.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ambient.nlp.findings import ClinicalNLP

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class ContextScore:
    items: int
    negation_correct: int
    history_correct: int
    family_correct: int
    missed: int  # labelled mentions the pipeline no longer finds (counted as wrong)

    def accuracy(self, which: str) -> float:
        return getattr(self, f"{which}_correct") / self.items if self.items else 0.0


def dialogue_sentences(dialogue: str) -> list[list[str]]:
    """Turns (non-empty lines, speaker label dropped) split into sentences."""
    turns = [t for t in re.split(r"\r?\n", dialogue) if t.strip()]
    return [[s for s in _SENTENCE_SPLIT.split(t.partition(":")[2].strip()) if s] for t in turns]


def _labelled(
    labels: Path, data_dir: Path, stratum: str | None = None
) -> Iterator[tuple[str, str, dict[str, bool]]]:
    items = json.loads(labels.read_text(encoding="utf-8"))["items"]
    if stratum is not None:
        items = [i for i in items if i.get("stratum") == stratum]
    dialogues: dict[tuple[str, str], str] = {}
    for name in {i["file"] for i in items}:
        with (data_dir / name).open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                dialogues[(name, row["ID"])] = row["dialogue"]
    for item in items:
        turns = dialogue_sentences(dialogues[(item["file"], item["id"])])
        sentence = turns[item["turn"]][item["sentence"]]
        flags = {k: bool(item[k]) for k in ("negated", "historical", "family")}
        yield sentence, item["term"], flags


def score_context(nlp: ClinicalNLP, labels: Path, data_dir: Path, stratum: str | None = None) -> ContextScore:
    """Compare the pipeline's modifiers with the labels, mention by mention.

    ``stratum`` keeps only the items drawn in that stratum (held-out set 3 draws a random stratum
    and one enriched for past-time cues; the enriched one must not be reported as if random).
    """
    rows = list(_labelled(labels, data_dir, stratum))
    found = nlp.analyse([sentence for sentence, _, _ in rows])
    negation = history = family = missed = 0
    for (_, term, truth), findings in zip(rows, found, strict=True):
        hit = next((f for f in findings if f.text.lower() == term), None)
        if hit is None:
            missed += 1
            continue
        negation += hit.negated == truth["negated"]
        history += hit.historical == truth["historical"]
        family += hit.family == truth["family"]
    return ContextScore(len(rows), negation, history, family, missed)
