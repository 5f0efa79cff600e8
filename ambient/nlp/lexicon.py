"""Vocabularies from packaged data: ICD-10-CM problems and symptoms, and drug names.

Hand lists alone miss most of medicine, so the bulk comes from public data shipped in PyPI
packages: problem and symptom names from ``simple-icd-10-cm`` (CMS ICD-10-CM, public domain) and
drug names with brand and generic synonyms from ``drug-named-entity-recognition``. Our own JSON
rules (``rules/targets.json``) add the lay words people say in the room. Each vocabulary is built
once per process.
"""

from __future__ import annotations

import bz2
import json
import pickle
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from ambient.errors import ConfigError
from ambient.manifests import manifest_named, verified_files

DRUG_MANIFEST = "drug-ner-dictionary"
# ICD-10-CM chapters whose short titles read as conditions a clinician would name in a note:
# external causes (V to Y), injuries (S and T, whose titles need a body site and encounter) and factors
# influencing health status (Z) are left out.
_SKIP_CHAPTER_LETTERS = frozenset("STVWXYZ")
_MAX_TERM_WORDS = 3
_BAD_TERM = re.compile(r"\b(?:other|of|due to|with|without|and|or|in|by|not|classified|elsewhere)\b|[,;\[\]]")
# Short ICD titles that are everyday words in conversation and would flood the findings.
_SHORT_VARIANT = 5
_AMBIGUOUS_TERMS = frozenset({"pain", "fall", "cold", "discharge", "shock", "mass", "lump", "cyst"})


@dataclass(frozen=True)
class TargetTerm:
    literal: str
    category: str  # PROBLEM | SYMPTOM | TEST | PROCEDURE | SOCIAL
    icd10: str | None = None
    system: str | None = None  # review-of-systems heading, for symptoms
    only_with: tuple[str, ...] = ()  # the sentence must also hold one of these words
    preferred: str | None = None  # the name a note uses ("tired" → "fatigue")


@dataclass(frozen=True)
class Drug:
    name: str  # canonical display name, e.g. "Acetaminophen"
    matched: str  # what was said, e.g. "tylenol"
    start: int  # token index
    end: int


def rules_json(name: str) -> dict[str, Any]:
    """One of our rule files, validated enough to name the file when it is broken."""
    try:
        text = resources.files("ambient.nlp").joinpath("rules", name).read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"rule file ambient/nlp/rules/{name} cannot be read: {exc}") from None
    if not isinstance(data, dict) or "version" not in data:
        raise ConfigError(f"rule file ambient/nlp/rules/{name} needs an object with a 'version'")
    return data


def _icd_title_term(description: str) -> str | None:
    text = re.sub(r"\([^)]*\)", " ", description)
    text = re.sub(r",?\s*unspecified.*$", "", text, flags=re.IGNORECASE)
    text = re.sub(r"\s+", " ", text).strip().lower()
    if len(text) < 4 or len(text.split()) > _MAX_TERM_WORDS or _BAD_TERM.search(text):
        return None
    if text in _AMBIGUOUS_TERMS:
        return None
    return text


@lru_cache(maxsize=1)
def target_terms() -> tuple[TargetTerm, ...]:
    """Our terms first (they carry the lay wording and the ROS system), then ICD-10-CM titles."""
    import simple_icd_10_cm as icd

    terms: dict[str, TargetTerm] = {}
    for entry in rules_json("targets.json")["terms"]:
        literal = str(entry["literal"]).lower()
        terms[literal] = TargetTerm(
            literal=literal,
            category=str(entry["category"]),
            icd10=entry.get("icd10"),
            system=entry.get("system"),
            only_with=tuple(entry.get("only_with", ())),
            preferred=entry.get("preferred"),
        )
    for code in icd.get_all_codes(with_dots=True):
        if code[0] in _SKIP_CHAPTER_LETTERS or not (icd.is_category(code) or icd.is_subcategory(code)):
            continue
        term = _icd_title_term(icd.get_description(code))
        if term and term not in terms:
            category = "SYMPTOM" if code.startswith("R") else "PROBLEM"
            terms[term] = TargetTerm(literal=term, category=category, icd10=code)
    return tuple(terms.values())


def icd10_title(code: str) -> str | None:
    """The official ICD-10-CM title for ``code``, or None when the code is not in the release."""
    import simple_icd_10_cm as icd

    return str(icd.get_description(code)) if icd.is_valid_item(code) else None


class DrugLexicon:
    """Drug names and synonyms from the sha256-checked pickle of drug-named-entity-recognition."""

    def __init__(self, variant_to_canonical: dict[str, list[str]], canonical_data: dict[str, Any]) -> None:
        self._variants = variant_to_canonical
        self._data = canonical_data

    @classmethod
    @lru_cache(maxsize=1)
    def load(cls) -> DrugLexicon:
        files = verified_files(manifest_named(DRUG_MANIFEST))
        with bz2.open(files["drug_ner_dictionary.pkl.bz2"], "rb") as handle:
            data = pickle.load(handle)
        return cls(data["drug_variant_to_canonical"], data["drug_canonical_to_data"])

    def canonical(self, variant: str) -> str | None:
        """Display name for a drug name or synonym ("tylenol" → "Acetaminophen")."""
        found = self._variants.get(variant.lower())
        if not found:
            return None
        key = found[0]
        data = self._data.get(key, {})
        mesh_only = "mesh_id" in data and not any(
            k in data for k in ("medline_plus_id", "drugbank_id", "nhs_url")
        )
        if mesh_only and len(variant) <= _SHORT_VARIANT:
            # Short MeSH-only variants are mostly reagent abbreviations that are also English
            # words ("SITS" → "sits down"); drug classes ("penicillin", "statin") stay.
            return None
        return str(data.get("name") or key.title())

    def find(self, tokens: list[str]) -> list[Drug]:
        """Drugs named in ``tokens``: two-word names first, then single words."""
        lowered = [t.lower() for t in tokens]
        taken: set[int] = set()
        drugs: list[Drug] = []
        for i in range(len(lowered) - 1):
            name = self.canonical(f"{lowered[i]} {lowered[i + 1]}")
            if name:
                drugs.append(Drug(name, f"{tokens[i]} {tokens[i + 1]}", i, i + 2))
                taken.update((i, i + 1))
        for i, token in enumerate(lowered):
            if i in taken or len(token) < 3:
                continue
            name = self.canonical(token)
            if name:
                drugs.append(Drug(name, tokens[i], i, i + 1))
        return sorted(drugs, key=lambda d: d.start)
