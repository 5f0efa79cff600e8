"""Encounter metadata for delivery: loaded from a small JSON or TOML file, or from CLI flags.

A drafted note knows its encounter id and nothing about the chart it belongs in. The EHR side
(patient, encounter and author references) comes from whoever started the encounter: the agent's
launch context, or a metadata file beside a recording. Unknown keys are errors, because a typo in
``patient_refrence`` would otherwise file a note with no patient.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

from ambient.errors import InputError
from ambient.types import EncounterContext

_FIELDS = {f.name for f in fields(EncounterContext)}


class ContextFormatError(InputError):
    code = "AMB-E205"


def context_from_dict(
    data: Any, source: str = "<context>", encounter_id: str | None = None
) -> EncounterContext:
    """Build a context; ``encounter_id`` fills in when the file does not name one."""
    if not isinstance(data, dict):
        raise ContextFormatError(f"{source}: encounter metadata must be an object/table of fields")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ContextFormatError(
            f"{source}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIELDS))}"
        )
    for key, value in data.items():
        if not isinstance(value, str):
            raise ContextFormatError(f"{source}: field '{key}' must be text, got {type(value).__name__}")
    values = dict(data)
    if "encounter_id" not in values:
        if encounter_id is None:
            raise ContextFormatError(f"{source}: missing field 'encounter_id'")
        values["encounter_id"] = encounter_id
    if not values["encounter_id"].strip():
        raise ContextFormatError(f"{source}: 'encounter_id' is empty")
    return EncounterContext(**values)


def load_context_file(path: Path, encounter_id: str | None = None) -> EncounterContext:
    """Read ``META.json`` or ``META.toml``."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContextFormatError(f"encounter metadata file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContextFormatError(f"cannot read encounter metadata {path}: {exc}") from None
    try:
        data = tomllib.loads(raw) if path.suffix.lower() == ".toml" else json.loads(raw)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
        raise ContextFormatError(f"{path} is not valid {kind} ({exc}); see docs for the fields") from None
    return context_from_dict(data, str(path), encounter_id)


def with_overrides(context: EncounterContext, **changes: str | None) -> EncounterContext:
    """Apply the CLI flags that were given (None means not given)."""
    given = {k: v for k, v in changes.items() if v is not None}
    unknown = set(given) - _FIELDS
    if unknown:
        raise ValueError(f"not context fields: {sorted(unknown)}")
    return replace(context, **given)


def context_to_dict(context: EncounterContext) -> dict[str, Any]:
    return {k: v for k, v in asdict(context).items() if v is not None}
