"""One place where fault, fuzz and PHI-canary tests record what they proved.

``scripts/reliability_report.py`` runs the tests marked ``reliability`` with
``AMBIENT_RELIABILITY_LOG`` pointing at a JSON-lines file and turns the records into the table in
``docs/reliability.md``. Outside that script the variable is unset and ``record`` does nothing, so
the tests stay ordinary pytest tests: their assertions, not these records, decide pass or fail.
Records carry counts only, never transcript or note text.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def record(
    area: str,
    name: str,
    *,
    injected: int = 0,
    survived: int = 0,
    notes_lost: int = 0,
    notes_duplicated: int = 0,
    inputs_fuzzed: int = 0,
    crashes: int = 0,
    canary_hits: int = 0,
    detail: str = "",
) -> None:
    """Append one measured outcome (``area``: faults | fuzz | phi | access) to the report log."""
    target = os.environ.get("AMBIENT_RELIABILITY_LOG")
    if not target:
        return
    row = {
        "area": area,
        "name": name,
        "injected": injected,
        "survived": survived,
        "notes_lost": notes_lost,
        "notes_duplicated": notes_duplicated,
        "inputs_fuzzed": inputs_fuzzed,
        "crashes": crashes,
        "canary_hits": canary_hits,
        "detail": detail,
    }
    with Path(target).open("a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")
