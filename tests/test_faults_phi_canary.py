"""PHI canary: a name, an MRN and a date of birth planted in an encounter never reach a log.

The canary is spoken (espeak) in the audio and carried in the encounter metadata (the agent's
``start`` message; ``NAME.context.json`` beside the batch audio, with a display name). The full
agent path runs in a real process (start, stream, stop, draft, inbox, outbox delivery, status),
then ``ambient batch --deliver``. Then every file under AMBIENT_HOME, the batch output folder,
the agent's and the batch's own output, and every temporary file they made (their TMPDIR, and
anything new in the system temp folder) is scanned for the canary — except the deliberate PHI
stores: the inboxes, the outbox database, the encounter journal and the batch's notes and
transcripts (those are encrypted at rest by the protect work). Zero hits is the only pass.
Words the recogniser committed count as canaries too: three in a row anywhere is a hit.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ambient.audio.synth import render_dialogue
from ambient.streaming.journal import read_journal
from ambient.transcript.dialogue import parse_dialogue
from tests.conftest import espeak_available
from tests.reliability import record
from tests.test_agent import free_port, pcm_frames, send_paced, start_agent, stop_agent, until

pytestmark = [pytest.mark.reliability, pytest.mark.skipif(not espeak_available(), reason="needs espeak-ng")]

REPO = Path(__file__).resolve().parents[1]
DIALOGUE = """\
[doctor] Good morning. Can you tell me your full name and your date of birth?
[patient] Zebulon Quartermaine. I was born on March fourteenth, nineteen forty seven.
[doctor] And your medical record number?
[patient] It is seven seven three one.
[patient] I have had chest pain for two days.
[doctor] I will order an ECG and see you next week.
"""
NAME, MRN, DOB = "Zebulon Quartermaine", "MRN7731QX", "1947-03-14"
# hashes are hex: a bare "7731" or "1947" would match sha256 digests by chance, so digits count
# only when no hex character touches them
CANARIES = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"zebulon",
        r"quartermaine",
        r"mrn7731qx",
        r"(?<![0-9a-f])7731(?![0-9a-f])",
        r"(?<![0-9a-f])1947(?![0-9a-f])",
        r"03/14/1947|14/03/1947|march (14|fourteenth)",
        r"seven seven three one|nineteen forty",
    )
]
# deliberate PHI stores (encrypted at rest by the protect work), not scanned
PHI_STORES = ("data/inbox/", "data/encounters/", "data/outbox.sqlite3", "ehr-inbox/", "batch-out/")
BATCH_PHI_SUFFIXES = ("note.json", "note.md", "transcript.json", "transcript.txt")  # batch/runner.py


def _is_phi_store(rel: str) -> bool:
    if rel.startswith("batch-out/"):
        return rel.endswith(BATCH_PHI_SUFFIXES)
    return rel.startswith(PHI_STORES)


def _hits(text: str, phrases: set[str]) -> list[str]:
    found = [p.pattern for p in CANARIES if p.search(text)]
    lowered = " ".join(text.lower().split())
    return found + [f"words: {p}" for p in phrases if p in lowered]


def test_canary_phi_reaches_no_log_audit_or_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    began = time.time()
    voice = tmp_path / "voice"
    render_dialogue(parse_dialogue(DIALOGUE), voice, "canary-visit")
    wav = voice / "canary-visit.wav"
    home, scratch = tmp_path / "home", tmp_path / "tmp"
    scratch.mkdir()
    home.mkdir()
    env = {"AMBIENT_DELIVERY_TARGETS": f"inbox:{tmp_path / 'ehr-inbox'}", "TMPDIR": str(scratch)}

    # 1. the agent: a real process, a real socket, the real model
    agent = start_agent(home, free_port(), env)
    try:
        with agent.client() as ws:
            ws.send(
                json.dumps(
                    {
                        "type": "start",
                        "encounter_id": "canary-1",
                        "patient_reference": f"Patient/{NAME.replace(' ', '-')}-{DOB}",
                        "patient_identifier": MRN,
                        "patient_identifier_system": "urn:oid:1.2.3",
                    }
                )
            )
            until(ws, "started", 20)
            send_paced(ws, pcm_frames(wav), speed=4.0)
            ws.send(json.dumps({"type": "stop"}))
            ready, _ = until(ws, "note_ready", 120)
            ws.send(json.dumps({"type": "status"}))
            status, _ = until(ws, "status", 20)
    finally:
        stop_agent(agent)
    assert [d["state"] for d in ready["deliveries"]] == ["delivered"]
    assert status["log_refused"] == 0, "a call site handed the log guard free text"

    # 2. batch, with a context file that carries the display name as well
    batch_in = tmp_path / "batch-in"
    batch_in.mkdir()
    shutil.copy(wav, batch_in / "canary-visit.wav")
    (batch_in / "canary-visit.context.json").write_text(
        json.dumps({"patient_reference": "Patient/77", "patient_identifier": MRN, "patient_display": NAME})
    )
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
    full_env |= {"AMBIENT_HOME": str(home), **env}
    batch_log = tmp_path / "batch-output.log"
    with batch_log.open("wb") as out:
        done = subprocess.run(
            [sys.executable, "-m", "ambient", "batch", str(batch_in), "--out", str(tmp_path / "batch-out")],
            cwd=REPO,
            env=full_env,
            stdout=out,
            stderr=out,
            timeout=300,
        )
    assert done.returncode == 0, batch_log.read_text()

    # the canary really went in: the PHI stores hold it (so a scan that finds nothing means something)
    monkeypatch.setenv("AMBIENT_HOME", str(home))  # this process opens the agent's sealed journal
    journal = read_journal(home / "data" / "encounters" / "canary-1")
    words = journal.words
    said = [w.word.lower().strip(".,?!") for w in words]
    phrases = {" ".join(said[i : i + 3]) for i in range(len(said) - 2)}
    assert len(phrases) >= 10, "the recogniser heard the visit"
    assert journal.meta["metadata"]["patient_identifier"] == MRN
    assert DOB in (home / "data" / "inbox" / "canary-1.fhir.json").read_text()
    assert NAME.split()[1] in "".join(p.read_text() for p in (tmp_path / "ehr-inbox").glob("*.fhir.json"))

    # 3. the scan
    scanned, hits = 0, {}
    roots = [home, tmp_path / "batch-out"]
    files = [(p, f"{p.relative_to(tmp_path).as_posix()}") for r in roots for p in r.rglob("*") if p.is_file()]
    files += [(p, f"tmp/{p.relative_to(scratch)}") for p in scratch.rglob("*") if p.is_file()]
    files += [(agent.log, "agent.log"), (batch_log, "batch-output.log")]
    system_tmp = Path(tempfile.gettempdir())
    for path in system_tmp.iterdir():  # anything new straight in /tmp (not pytest's own folders)
        try:
            if path.is_file() and path.stat().st_mtime >= began and path.stat().st_size < 50_000_000:
                files.append((path, f"/tmp/{path.name}"))
        except OSError:
            continue
    for path, rel in files:
        rel = rel.removeprefix("home/")
        if _is_phi_store(rel):
            continue
        try:
            text = path.read_bytes().decode("utf-8", errors="replace")
        except OSError:
            continue
        scanned += 1
        found = _hits(text, phrases)
        if found:
            hits[rel] = found
    for must in ("logs/outbox.log", "data/audit/audit.jsonl", "agent.log", "batch-output.log"):
        assert any(rel.removeprefix("home/") == must for _, rel in files), f"{must} was not written"
    record(
        "phi",
        "PHI canary: agent + batch, every log/audit/temp file",
        canary_hits=sum(len(v) for v in hits.values()),
        detail=f"{scanned} files scanned; name, MRN, date of birth, committed word triples",
    )
    assert not hits, f"canary PHI found: {hits}"
