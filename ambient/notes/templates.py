"""Note templates: TOML files under ``clinical_templates/``, loaded through one validated path.

Templates are data so a clinician can review them, a site can add its own from a folder without
touching code, and every note can name the exact version and sha256 of the template behind it.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ambient.errors import TemplateError, UnknownTemplateError
from ambient.resources import data_dir
from ambient.types import TemplateRef

_SPEAKERS = {"patient", "clinician", None}
# What the clinical drafter can put in a section (``content = [...]`` in a template).
CONTENT_KINDS = frozenset({
    "chief_complaint", "hpi", "ros", "medications", "allergies", "history", "family_history",
    "social_history", "vitals", "exam", "results", "assessment_plan", "assessment", "plan",
    "icd10", "instructions",
})  # fmt: skip
# Content kinds that grow with the length of the visit, so a template may cap them (``max_words``).
BUDGETED_KINDS = frozenset({"hpi", "assessment_plan", "assessment", "plan"})


@dataclass(frozen=True)
class SectionSpec:
    key: str
    title: str
    cues: tuple[str, ...]
    speaker: str | None = None
    fallback: bool = False
    content: tuple[str, ...] = ()  # what the clinical drafter fills it with, in this order
    # Word budget per content kind (``max_words = { hpi = 200 }``); a kind not named is not capped.
    max_words: tuple[tuple[str, int], ...] = ()

    def word_budget(self, kind: str) -> int | None:
        return next((words for k, words in self.max_words if k == kind), None)


@dataclass(frozen=True)
class Template:
    id: str
    name: str
    version: str
    title: str
    loinc: str | None
    loinc_display: str | None
    sections: tuple[SectionSpec, ...]
    vocabulary: tuple[str, ...]
    path: Path
    sha256: str

    @property
    def ref(self) -> TemplateRef:
        return TemplateRef(id=self.id, version=self.version, sha256=self.sha256, loinc=self.loinc)

    @property
    def structured(self) -> bool:
        """True when sections say what goes in them: the clinical drafter can fill it."""
        return any(s.content for s in self.sections)

    @property
    def fallback_key(self) -> str | None:
        return next((s.key for s in self.sections if s.fallback), None)


def _require(data: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in data:
        raise TemplateError(f"{where}: missing field '{key}'")
    value = data[key]
    if not isinstance(value, kind):
        raise TemplateError(f"{where}: field '{key}' must be {kind.__name__}, got {value!r}")
    return value


def parse_template(path: Path) -> Template:
    """Read and validate one template file; every problem names the file and the field."""
    try:
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode("utf-8"))
    except OSError as exc:
        raise TemplateError(f"cannot read template {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TemplateError(f"template {path} is not valid TOML: {exc}") from None
    where = str(path)
    sections_raw = _require(data, "sections", list, where)
    if not sections_raw:
        raise TemplateError(f"{where}: a template needs at least one [[sections]] entry")
    sections: list[SectionSpec] = []
    for index, section in enumerate(sections_raw):
        swhere = f"{where}: sections[{index}]"
        if not isinstance(section, dict):
            raise TemplateError(f"{swhere} must be a table")
        content = section.get("content", [])
        if not isinstance(content, list) or not all(c in CONTENT_KINDS for c in content):
            kinds = ", ".join(sorted(CONTENT_KINDS))
            raise TemplateError(f"{swhere}: content must be a list of: {kinds}; got {content!r}")
        cues = section.get("cues", []) if content else _require(section, "cues", list, swhere)
        if not isinstance(cues, list) or not all(isinstance(c, str) and c.strip() for c in cues):
            raise TemplateError(f"{swhere}: every cue must be non-empty text")
        max_words = _max_words(section.get("max_words", {}), content, swhere)
        speaker = section.get("speaker")
        if speaker not in _SPEAKERS:
            raise TemplateError(f"{swhere}: speaker must be 'patient' or 'clinician', got {speaker!r}")
        sections.append(
            SectionSpec(
                key=_require(section, "key", str, swhere),
                title=_require(section, "title", str, swhere),
                cues=tuple(c.strip().lower() for c in cues),
                speaker=speaker,
                fallback=bool(section.get("fallback", False)),
                content=tuple(content),
                max_words=max_words,
            )
        )
    keys = [s.key for s in sections]
    if len(set(keys)) != len(keys):
        raise TemplateError(f"{where}: section keys must be unique, got {keys}")
    if sum(s.fallback for s in sections) > 1:
        raise TemplateError(f"{where}: at most one section may be the fallback")
    asr = data.get("asr", {})
    vocabulary = asr.get("vocabulary", []) if isinstance(asr, dict) else []
    if not isinstance(vocabulary, list) or not all(isinstance(v, str) for v in vocabulary):
        raise TemplateError(f"{where}: [asr] vocabulary must be a list of text")
    for optional in ("loinc", "loinc_display"):  # they end up in FHIR codings and HL7 TXA-2
        if optional in data and not isinstance(data[optional], str):
            raise TemplateError(f"{where}: field '{optional}' must be text, got {data[optional]!r}")
    version = _require(data, "version", str, where)
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise TemplateError(f"{where}: version must look like 1.0.0, got {version!r}")
    return Template(
        id=_require(data, "id", str, where),
        name=_require(data, "name", str, where),
        version=version,
        title=_require(data, "title", str, where),
        loinc=data.get("loinc"),
        loinc_display=data.get("loinc_display"),
        sections=tuple(sections),
        vocabulary=tuple(vocabulary),
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def _max_words(raw: object, content: list[str], where: str) -> tuple[tuple[str, int], ...]:
    """``max_words = { hpi = 200 }``: only for budgeted kinds this section holds, positive integers."""
    if not isinstance(raw, dict):
        raise TemplateError(f"{where}: max_words must be a table like {{ hpi = 200 }}, got {raw!r}")
    budgets = []
    for kind, words in raw.items():
        if kind not in BUDGETED_KINDS or kind not in content:
            kinds = ", ".join(k for k in content if k in BUDGETED_KINDS) or "none in this section"
            raise TemplateError(f"{where}: max_words names {kind!r}; it may name: {kinds}")
        if isinstance(words, bool) or not isinstance(words, int) or words < 1:
            raise TemplateError(f"{where}: max_words.{kind} must be a positive whole number, got {words!r}")
        budgets.append((kind, words))
    return tuple(budgets)


def template_dirs(extra: str | Path | None = None) -> list[Path]:
    """User folder first, so a site can override a built-in template by name."""
    dirs = [Path(extra).expanduser()] if extra else []
    return [*dirs, data_dir("clinical_templates")]


def available_templates(extra: str | Path | None = None) -> list[Template]:
    found: dict[str, Template] = {}
    for directory in template_dirs(extra):
        for path in sorted(directory.glob("*.toml")):
            template = parse_template(path)
            found.setdefault(template.name, template)
    return list(found.values())


def load_template(name_or_path: str, extra: str | Path | None = None) -> Template:
    """A template by name (``soap``), by id (``ambient.soap_note``) or by file path."""
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix == ".toml" and candidate.is_file():
        return parse_template(candidate)
    for directory in template_dirs(extra):
        direct = directory / f"{name_or_path}.toml"
        if direct.is_file():
            return parse_template(direct)
    templates = available_templates(extra)
    for template in templates:
        if name_or_path in (template.name, template.id):
            return template
    names = ", ".join(t.name for t in templates)
    raise UnknownTemplateError(
        f"unknown template {name_or_path!r}; available: {names} (or give a path to a .toml file)"
    )
