"""Clinical findings in transcript sentences: a medspaCy pipeline built from our rule files.

What comes out is a list of :class:`Finding` per input sentence: problems, symptoms, medications
(with dose, unit, route, frequency), allergies (with reaction), vitals (value and unit), tests,
procedures, orders and social history, each with ConText modifiers (negated, historical, family,
hypothetical, uncertain). The pipeline is medspaCy's blank English model, so it needs no
downloaded spaCy model: target rules come from ``rules/targets.json`` plus ICD-10-CM titles,
drug names from the packaged drug dictionary, modifiers from medspaCy's defaults plus
``rules/context.json``, and attribute patterns from ``rules/patterns.json``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ambient.nlp.lexicon import DrugLexicon, TargetTerm, icd10_title, rules_json, target_terms
from ambient.nlp.numbers import words_to_digits

NLP_VERSION = "ambient.clinical_nlp.v1"
_NOT_TAKING = re.compile(r"\b(?:not|no longer|stopped|don't|do not|never|isn't|aren't|off)\b")
_CATEGORY_OF_MODIFIER = {
    "NEGATED_EXISTENCE": "negated",
    "HISTORICAL": "historical",
    "FAMILY": "family",
    "HYPOTHETICAL": "hypothetical",
    "POSSIBLE_EXISTENCE": "uncertain",
}


@dataclass(frozen=True)
class Finding:
    """One clinical fact as said in one sentence, with its modifiers and attributes."""

    category: str  # PROBLEM SYMPTOM MEDICATION ALLERGY VITAL TEST PROCEDURE ORDER SOCIAL
    text: str  # the words as said (after number normalisation)
    name: str  # display name: "Acetaminophen", "chest pain", "Blood pressure"
    sentence: int  # index of the input sentence
    code: str | None = None  # ICD-10-CM for problems and symptoms
    system: str | None = None  # review-of-systems heading for symptoms
    negated: bool = False
    historical: bool = False
    family: bool = False
    hypothetical: bool = False
    uncertain: bool = False
    attributes: tuple[tuple[str, str], ...] = field(default=())

    @property
    def asserted(self) -> bool:
        """Present in this patient now: what belongs in HPI, the medication list, the assessment."""
        return not (self.negated or self.family or self.hypothetical or self.historical)

    def attribute(self, key: str) -> str | None:
        return next((v for k, v in self.attributes if k == key), None)


def normalise(text: str) -> str:
    """The text every rule sees: spoken numbers as digits, one space between words."""
    return re.sub(r"\s+", " ", words_to_digits(text)).strip()


class ClinicalNLP:
    """The medspaCy pipeline and our regex attribute rules, built once and reused for every note."""

    def __init__(self) -> None:
        self._patterns = rules_json("patterns.json")
        self._compiled = {
            key: re.compile(self._patterns[key], re.IGNORECASE)
            for key in (
                "dose", "route", "frequency", "allergy_trigger", "allergy_reaction",
                "no_known_allergies", "laterality", "order",
            )
        }  # fmt: skip
        self._vitals = [
            (v["name"], v["label"], v["unit"], re.compile(v["pattern"], re.IGNORECASE))
            for v in self._patterns["vitals"]
        ]
        self._units: dict[str, str] = dict(self._patterns["units"])
        self._terms = {t.literal: t for t in target_terms()}
        self._drugs = DrugLexicon.load()

    @property
    def versions(self) -> dict[str, str]:
        """Versions of every rule file: recorded in provenance so a note names its rules."""
        return {
            "nlp": NLP_VERSION,
            "targets": str(rules_json("targets.json")["version"]),
            "context": str(rules_json("context.json")["version"]),
            "patterns": str(self._patterns["version"]),
        }

    @cached_property
    def _nlp(self) -> Any:
        import medspacy
        from medspacy.context import ConTextRule
        from medspacy.ner import TargetRule

        # Our target rules are all literals (phrase matcher), so medspaCy's token-pattern matcher
        # stays empty and spaCy warns (W036) on every document; that is expected, not a fault.
        warnings.filterwarnings("ignore", message=r"\[W036\]", category=UserWarning)
        nlp = medspacy.load(medspacy_enable=["medspacy_target_matcher", "medspacy_context"])
        nlp.add_pipe("sentencizer", first=True)
        matcher = nlp.get_pipe("medspacy_target_matcher")
        matcher.add([TargetRule(t.literal, t.category) for t in self._terms.values()])
        context = nlp.get_pipe("medspacy_context")
        context.add(
            [
                ConTextRule(
                    r["literal"],
                    r["category"],
                    # A token pattern where a literal cannot say the rule (a bounded gap of any
                    # words, as in "can't walk far without pain"); the literal then only names it.
                    pattern=r.get("pattern"),
                    direction=r["direction"],
                    max_scope=r.get("max_scope"),
                )
                for r in rules_json("context.json")["rules"]
            ]
        )
        return nlp

    def analyse(self, sentences: Sequence[str]) -> list[list[Finding]]:
        """Findings for each sentence, in order; a sentence with none gets an empty list."""
        texts = [normalise(s) for s in sentences]
        results: list[list[Finding]] = []
        for index, doc in enumerate(self._nlp.pipe(texts, batch_size=64)):
            found = self._entities(doc, index)
            found += self._medications(doc, index)
            found += self._vitals_in(texts[index], index)
            allergies = self._allergies(texts[index], index)
            if allergies:  # "allergic to penicillin" is not a medication the patient takes
                allergens = {a.name for a in allergies}
                found = [f for f in found if not (f.category == "MEDICATION" and f.name in allergens)]
            found += allergies
            found += self._orders(texts[index], index, found)
            results.append(found)
        return results

    # -- pieces -------------------------------------------------------------------------------

    def _modifiers(self, ent: Any) -> dict[str, bool]:
        """ConText's flags for one entity, with one rule medspaCy cannot express as data.

        A family member's condition is family, never the patient's history: ``historical`` says when
        the *patient* had it, which is what the notes file under past medical history. Family
        mentions are nearly always in the past tense ("my mom died of a stroke", "my dad had
        cancer"), so a past-time trigger must not make them historical; ConText's modifiers cannot
        cancel one another, so the rule is applied here.
        """
        flags = dict.fromkeys(_CATEGORY_OF_MODIFIER.values(), False)
        for modifier in ent._.modifiers:
            key = _CATEGORY_OF_MODIFIER.get(modifier.category)
            if key:
                flags[key] = True
        if flags["family"]:
            flags["historical"] = False
        return flags

    def _entities(self, doc: Any, index: int) -> list[Finding]:
        lowered = doc.text.lower()
        found: list[Finding] = []
        for ent in doc.ents:
            term: TargetTerm | None = self._terms.get(ent.text.lower())
            if term is None:
                continue
            if term.only_with and not any(re.search(rf"\b{re.escape(w)}\b", lowered) for w in term.only_with):
                continue
            attributes: list[tuple[str, str]] = []
            side = self._compiled["laterality"].search(doc[max(ent.start - 4, 0) : ent.end + 4].text)
            if side and term.category in {"SYMPTOM", "PROBLEM", "PROCEDURE", "TEST"}:
                attributes.append(("laterality", side.group("side").lower()))
            found.append(
                Finding(
                    category=term.category,
                    text=ent.text,
                    name=term.preferred or term.literal,
                    sentence=index,
                    code=term.icd10,
                    system=term.system,
                    attributes=tuple(attributes),
                    **self._modifiers(ent),
                )
            )
        return found

    def _medications(self, doc: Any, index: int) -> list[Finding]:
        tokens = [t.text for t in doc]
        found: list[Finding] = []
        for drug in self._drugs.find(tokens):
            span = doc[drug.start : drug.end]
            tail = doc[drug.end : min(drug.end + 14, len(doc))].text
            attributes: list[tuple[str, str]] = []
            dose = self._compiled["dose"].search(tail)
            if dose:
                unit = dose.group("unit").lower()
                attributes.append(("dose", f"{dose.group('value')} {self._units.get(unit, unit)}"))
            for key in ("route", "frequency"):
                match = self._compiled[key].search(tail)
                if match:
                    attributes.append((key, match.group(key).lower()))
            # ConText only modifies entities in doc.ents; check the words just before the drug.
            before = doc[max(drug.start - 6, 0) : drug.start].text.lower()
            flags = {"negated": bool(_NOT_TAKING.search(before))}
            found.append(
                Finding(
                    category="MEDICATION",
                    text=span.text,
                    name=drug.name,
                    sentence=index,
                    negated=flags["negated"],
                    attributes=tuple(attributes),
                )
            )
        return found

    def _vitals_in(self, text: str, index: int) -> list[Finding]:
        found: list[Finding] = []
        for name, label, unit, pattern in self._vitals:
            match = pattern.search(text)
            if not match:
                continue
            value = re.sub(r"\s*(?:/|over)\s*", "/", match.group("value"))
            said_unit = match.groupdict().get("unit")
            if said_unit:
                unit = said_unit.lower()
            elif name == "temperature":
                unit = "°C" if float(value) < 45 else "°F"  # nobody is 45 °F; nobody lives at 98 °C
            found.append(
                Finding("VITAL", match.group(0), label, index, attributes=(("value", value), ("unit", unit)))
            )
        return found

    def _allergies(self, text: str, index: int) -> list[Finding]:
        if self._compiled["no_known_allergies"].search(text):
            return [Finding("ALLERGY", "no known allergies", "No known drug allergies", index, negated=True)]
        trigger = self._compiled["allergy_trigger"].search(text)
        if not trigger:
            return []
        what = trigger.group("what").strip()
        drug = self._drugs.canonical(what) or next((d.name for d in self._drugs.find(what.split())), None)
        attributes: list[tuple[str, str]] = []
        reaction = self._compiled["allergy_reaction"].search(text)
        if reaction:
            attributes.append(("reaction", reaction.group("reaction").lower()))
        negated = bool(re.search(r"\b(?:not|no|never)\b[^.]{0,12}\ballergic", text, re.IGNORECASE))
        return [Finding("ALLERGY", what, drug or what, index, negated=negated, attributes=tuple(attributes))]

    def _orders(self, text: str, index: int, found: list[Finding]) -> list[Finding]:
        match = self._compiled["order"].search(text)
        if not match:
            return []
        objects = [f for f in found if f.category in {"TEST", "PROCEDURE", "MEDICATION"}]
        verb = match.group("verb").lower()
        return [
            Finding("ORDER", text[match.start() :], f.name, index, attributes=(("verb", verb),))
            for f in objects
        ]


def icd10_suggestion(finding: Finding) -> tuple[str, str] | None:
    """(code, official title) for an asserted problem or symptom, when its code is in ICD-10-CM."""
    if not finding.code or finding.category not in {"PROBLEM", "SYMPTOM"}:
        return None
    title = icd10_title(finding.code)
    return (finding.code, title) if title else None
