"""Shared by the ConText rule tests: a finding by its term in one sentence."""

from __future__ import annotations

from ambient.nlp.findings import ClinicalNLP, Finding


def finding(nlp: ClinicalNLP, sentence: str, term: str) -> Finding:
    """The pipeline's finding for ``term`` in ``sentence`` (StopIteration if it finds none)."""
    found = nlp.analyse([sentence])[0]
    return next(f for f in found if f.text.lower() == term)
