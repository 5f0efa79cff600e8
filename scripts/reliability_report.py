"""Run every ``reliability`` test and write ``docs/reliability.md`` from what they recorded.

    .venv/bin/python scripts/reliability_report.py            # all tests marked reliability
    .venv/bin/python scripts/reliability_report.py -- -k kill  # extra pytest arguments after --

The tests (fault injection, fuzzing, PHI canary, local access) call ``tests/reliability.py::
record`` with counts; this script points ``AMBIENT_RELIABILITY_LOG`` at a scratch file, runs
``pytest -m reliability`` once, and turns the records plus pytest's own outcome (JUnit XML:
passed, failed, skipped with the reason) into one table. The numbers come only from tests that
ran in this invocation: a failed or skipped test is listed as such, never silently counted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "reliability.md"
COUNTS = ("injected", "survived", "notes_lost", "notes_duplicated", "inputs_fuzzed", "crashes", "canary_hits")


@dataclass
class Outcome:
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def run_tests(extra: list[str], log: Path, junit: Path) -> tuple[int, float]:
    env = dict(os.environ) | {"AMBIENT_RELIABILITY_LOG": str(log)}
    command = [sys.executable, "-m", "pytest", "-m", "reliability", "-q", f"--junitxml={junit}", *extra]
    began = time.monotonic()
    code = subprocess.run(command, cwd=REPO, env=env, check=False).returncode
    return code, time.monotonic() - began


def read_outcome(junit: Path) -> Outcome:
    outcome = Outcome()
    if not junit.exists():
        return outcome
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        skipped = case.find("skipped")
        if skipped is not None:
            outcome.skipped.append((name, (skipped.get("message") or "").strip()))
        elif case.find("failure") is not None or case.find("error") is not None:
            outcome.failed.append(name)
        else:
            outcome.passed.append(name)
    return outcome


def read_records(log: Path) -> list[dict[str, object]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]


def _int(row: dict[str, object], key: str) -> int:
    value = row.get(key, 0)
    return int(value) if isinstance(value, int | float) else 0


def machine() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return (
        f"{platform.node() or 'host'}: {platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, load average at the end "
        f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} (shared with other work: timings are noisy)"
    )


# Crashes and losses these tests found while they were written, each fixed in the commit named:
# the table above counts what the current code does (0), this list what the tests earned. Kept here
# so a regenerated report still says it; add a line when a reliability test finds a new bug.
FOUND_AND_FIXED = (
    ("fuzz", "a WAV with a codec FFmpeg cannot decode crashed probe (AttributeError)", "061e6b0"),
    ("fuzz", "a 2 KB WAV claiming 1 Hz decoded to 1000 s of audio (now: 4–768 kHz only)", "061e6b0"),
    ("fuzz", "dialogue errors named `<dialogue>` instead of the file", "061e6b0"),
    ("fuzz", "a non-text LOINC code passed template validation", "061e6b0"),
    ("fuzz", "audio sent faster than real time queued without bound (+624 MB in 8 s)", "da15187"),
    ("fuzz", "a non-ASCII close reason overflowed the close frame, killing the handler", "dcc934a"),
    ("fuzz", "a 2xx FHIR answer that was not FHIR raised out of the outbox drain", "c29743a"),
    ("fuzz", "an OperationOutcome with a malformed issue crashed the reason parser", "c29743a"),
    ("fuzz", "Retry-After on 429/503 was ignored", "c29743a"),
    ("faults", "a crash between queueing a note and closing the journal delivered the note twice", "63ef064"),
    ("faults", "a sealed journal write rolled back on a full disk left a record-number gap", "3291b35"),
    ("faults", "a note queued while the peer was down waited for a manual `ambient outbox drain`", "ba06db8"),
)


def render(records: list[dict[str, object]], outcome: Outcome, command: str, code: int, wall_s: float) -> str:
    totals: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    for row in records:
        for key in COUNTS:
            totals[str(row.get("area", "?"))][key] += _int(row, key)
    every = {key: sum(t[key] for t in totals.values()) for key in COUNTS}
    lines = [
        "# Reliability",
        "",
        "Produced by `scripts/reliability_report.py` (do not edit by hand): it runs every test marked",
        "`reliability` once and adds up what each recorded (`tests/reliability.py`).",
        "",
        f"- Command: `{command}`",
        f"- Date: {datetime.now(UTC).isoformat(timespec='seconds')}; wall time {wall_s:.0f} s",
        f"- Machine: {machine()}",
        f"- pytest: {len(outcome.passed)} passed, {len(outcome.failed)} failed, "
        f"{len(outcome.skipped)} skipped (exit code {code})",
        "",
        "| measure | value |",
        "|---|---|",
        f"| faults injected | {every['injected']} |",
        f"| faults survived | {every['survived']} |",
        f"| notes lost | {every['notes_lost']} |",
        f"| notes duplicated | {every['notes_duplicated']} |",
        f"| inputs fuzzed | {every['inputs_fuzzed']} |",
        f"| crashes found | {every['crashes']} |",
        f"| PHI canary hits | {every['canary_hits']} |",
        "",
        "## Per test",
        "",
        "| area | what | injected | survived | lost | duplicated | fuzzed | crashes | canary hits | detail |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(records, key=lambda r: (str(r.get("area")), str(r.get("name")))):
        cells = [str(row.get("area", "")), str(row.get("name", ""))]
        cells += [str(_int(row, k)) for k in COUNTS]
        cells.append(str(row.get("detail", "")).replace("|", "/"))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Found by these tests and fixed", "", "| area | what | commit |", "|---|---|---|"]
    lines += [f"| {area} | {what} | {commit} |" for area, what, commit in FOUND_AND_FIXED]
    if outcome.failed:
        lines += ["", "## Failed", ""] + [f"- `{name}`" for name in outcome.failed]
    if outcome.skipped:
        lines += ["", "## Skipped", ""] + [f"- `{name}`: {why}" for name, why in outcome.skipped]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DOC, help=f"markdown file to write (default {DOC})")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        log, junit = Path(scratch) / "records.jsonl", Path(scratch) / "junit.xml"
        code, wall_s = run_tests(args.pytest_args, log, junit)
        records, outcome = read_records(log), read_outcome(junit)
    shown = " ".join(
        ["scripts/reliability_report.py", *(["--", *args.pytest_args] if args.pytest_args else [])]
    )
    args.out.write_text(render(records, outcome, shown, code, wall_s), encoding="utf-8")
    print(
        f"wrote {args.out}: {len(records)} records, "
        f"{len(outcome.passed)} passed, {len(outcome.failed)} failed"
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
