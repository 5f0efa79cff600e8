"""The section classifier as a tie-breaker for clinician sentences the drafter's rules leave unplaced.

The rules (``ambient.notes.clinical._roles``) follow the visit's phases; a clinician sentence in the
history phase with no finding and no plan cue is skipped. Some of those are exam findings said
without an exam cue ("there's some tenderness over the lateral malleolus") or plan statements said
without a plan verb. This pass asks the section classifier about exactly those sentences and moves
one only when the classifier is confident (probability >= ``min_probability``) that it is exam or
plan talk; everything the rules placed stays where it is.

Off by default: on ACI-Bench valid (20 notes, frozen-encoder head, p >= 0.6) it moved ROUGE-1 from
47.62 to 47.66 (R2 19.97 → 20.02, RLsum 44.29 → 44.37; exam group 24.69 → 23.89, results 23.79 →
24.29): no measurable gain for the cost of a second encoder in every draft, so
``clinical.read_visit`` calls it only when ``AMBIENT_SECTION_ROUTING=1`` (docs/benchmarks.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ambient.nlp.section_classifier import SectionClassifier

ENV_FLAG = "AMBIENT_SECTION_ROUTING"
MIN_PROBABILITY = 0.6
# MTS-Dialog headers → the drafter's role for a clinician sentence.
HEADER_ROLES = {
    "EXAM": "exam", "PLAN": "plan", "DISPOSITION": "plan", "LABS": "results", "IMAGING": "results",
}  # fmt: skip


def enabled() -> bool:
    return os.environ.get(ENV_FLAG, "") == "1"


def route_unplaced(
    texts: Sequence[str],
    speakers: Sequence[str | None],
    roles: Sequence[str],
    skip_role: str,
    min_probability: float = MIN_PROBABILITY,
) -> list[str]:
    """Roles with confident classifier labels filled in for skipped clinician statements."""
    candidates = [
        i
        for i, (text, speaker, role) in enumerate(zip(texts, speakers, roles, strict=True))
        if role == skip_role
        and speaker == "clinician"
        and not text.rstrip().endswith("?")
        and len(text.split()) >= 4
    ]
    out = list(roles)
    if not candidates:
        return out
    classifier = _classifier()
    predictions = classifier.predict([f"Doctor: {texts[i]}" for i in candidates], top_k=1)
    for i, prediction in zip(candidates, predictions, strict=True):
        role = HEADER_ROLES.get(prediction.label)
        if role and prediction.probability >= min_probability:
            out[i] = role
    return out


@cache
def _classifier() -> SectionClassifier:
    from ambient.nlp.section_classifier import SectionClassifier

    return SectionClassifier.load()
