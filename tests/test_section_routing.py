"""The classifier tie-breaker touches only skipped clinician statements, and only when it is confident."""

from __future__ import annotations

import pytest

from ambient.notes import section_routing

SKIP = "skip"


@pytest.mark.model
def test_only_skipped_clinician_statements_can_move() -> None:
    texts = [
        "Your lungs are clear to auscultation bilaterally and there is no edema in your legs.",  # skipped
        "Your lungs are clear to auscultation bilaterally and there is no edema in your legs.",  # placed
        "Your lungs are clear to auscultation bilaterally and there is no edema in your legs.",  # patient
        "Are your lungs clear to auscultation bilaterally?",  # a question
        "Okay.",  # too short to ask about
    ]
    speakers = ["clinician", "clinician", "patient", "clinician", "clinician"]
    roles = [SKIP, "hpi", SKIP, SKIP, SKIP]
    routed = section_routing.route_unplaced(texts, speakers, roles, SKIP, min_probability=0.0)
    assert routed[1:] == roles[1:]
    assert routed[0] in {SKIP, *section_routing.HEADER_ROLES.values()}
    # With a threshold no probability reaches, nothing moves at all.
    assert section_routing.route_unplaced(texts, speakers, roles, SKIP, min_probability=1.01) == roles


def test_routing_is_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(section_routing.ENV_FLAG, raising=False)
    assert not section_routing.enabled()
    monkeypatch.setenv(section_routing.ENV_FLAG, "1")
    assert section_routing.enabled()
