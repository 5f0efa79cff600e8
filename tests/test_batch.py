"""Batch: every file processed once, bad files listed, re-runs resume, a killed run loses nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ambient.batch.runner import FAILURES_FILE, done_marker, list_inputs
from ambient.cli.main import main
from ambient.errors import UsageError
from ambient.protect.outputs import read_output
from tests.audio_helpers import encode

pytestmark = pytest.mark.model


@pytest.fixture
def in_dir(tmp_path: Path, speech_wav: Path) -> Path:
    folder = tmp_path / "in"
    (folder / "day2").mkdir(parents=True)
    shutil.copy(speech_wav, folder / "visit-a.wav")
    shutil.copy(speech_wav, folder / "day2" / "visit-a-copy.wav")  # same audio, other name
    samples = np.frombuffer(speech_wav.read_bytes()[44:], dtype=np.int16).astype(np.float32) / 32768
    encode(folder / "day2" / "visit-b.flac", samples[: 16000 * 6], 16000)
    encode(folder / "quiet.ogg", np.zeros(16000 * 3), 16000)
    (folder / "broken.mp3").write_bytes(b"ID3" + os.urandom(4000))
    (folder / "readme.txt").write_text("not an encounter")
    (folder / ".hidden.wav").write_bytes(b"")
    return folder


def test_listing_skips_hidden_and_non_audio(in_dir: Path) -> None:
    names = [p.name for p in list_inputs(in_dir)]
    assert names == ["broken.mp3", "visit-a-copy.wav", "visit-b.flac", "quiet.ogg", "visit-a.wav"]


def test_listing_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        list_inputs(tmp_path / "nope")


def test_batch_runs_resumes_and_reports(
    in_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(["batch", str(in_dir), "--out", str(out), "--workers", "2", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 1  # one bad file
    assert summary["failed"] == 1 and summary["succeeded"] == 3 and summary["skipped_already_done"] == 1
    failures = [json.loads(line) for line in (out / FAILURES_FILE).read_text().splitlines()]
    assert [Path(f["input"]).name for f in failures] == ["broken.mp3"]
    assert failures[0]["code"].startswith("AMB-E2") and "broken.mp3" in failures[0]["reason"]
    folders = sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(folders) == 3
    for folder in folders:
        files = {p.name for p in (out / folder).iterdir()}
        assert files == {"transcript.json", "transcript.txt", "note.json", "note.md"}
    quiet = next(f for f in folders if f.startswith("quiet"))
    assert "No speech was detected" in read_output(out / quiet / "note.md")  # sealed by default
    visit = next(f for f in folders if f.startswith("visit-a"))
    transcript = json.loads(read_output(out / visit / "transcript.json"))
    assert "blood pressure" in " ".join(s["text"] for s in transcript["segments"]).lower()

    # A re-run skips the finished encounters and retries only the broken file.
    (in_dir / "broken.mp3").unlink()
    code = main(["batch", str(in_dir), "--out", str(out), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["skipped_already_done"] == 4 and summary["succeeded"] == 0 and summary["failed"] == 0
    assert (out / FAILURES_FILE).read_text() == ""


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["batch", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert main(["batch", str(tmp_path), "--out", str(tmp_path / "o"), "--workers", "0"]) == 2
    assert main(["batch", str(tmp_path), "--out", str(tmp_path / "o"), "--model", "nope"]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_killed_batch_loses_nothing_finished(in_dir: Path, tmp_path: Path) -> None:
    """kill -9 in the middle of a run: finished encounters stay finished, the re-run does the rest."""
    (in_dir / "broken.mp3").unlink()
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "ambient", "batch", str(in_dir), "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done_dir = out / ".ambient" / "done"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if done_dir.is_dir() and any(not p.name.startswith(".") for p in done_dir.iterdir()):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in done_dir.iterdir() if not p.name.startswith(".")}
    assert finished, "the first encounter should have finished before the kill"
    for name in finished:  # a file under its real name is whole (a kill mid-write leaves only .tmp)
        json.loads((done_dir / name).read_text())
    result = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["failed"] == 0
    assert summary["skipped_already_done"] >= len(finished)
    for name, mtime in finished.items():
        assert (done_dir / name).stat().st_mtime_ns == mtime  # not redone
    assert len(list(done_dir.iterdir())) == 3  # visit-a (once), visit-b, quiet
    assert not list(out.rglob("*.tmp"))  # the re-run tidied what the kill left mid-write
    for marker in done_dir.iterdir():
        data = json.loads(marker.read_text())
        assert (out / data["folder"] / "note.md").is_file()
        assert marker.name == f"{data['sha256']}.json" == done_marker(out, data["sha256"]).name


def test_batch_delivers_each_new_note_once_and_queues_when_the_peer_is_down(
    tmp_path: Path, speech_wav: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real FHIR server: drafted notes go through the outbox; re-processing replaces the draft; with
    the server down the batch still finishes its drafts, exits 1, and the note waits in the outbox."""
    from ambient.config import resolve_paths
    from ambient.ehr.outbox import Outbox
    from tests.ehr_peers import SekmetServer

    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(speech_wav, folder / "visit.wav")
    (folder / "visit.context.json").write_text(
        json.dumps({"encounter_id": "ignored", "patient_reference": "Patient/p-42"})
    )
    server = SekmetServer(tmp_path / "fhir")
    server.start()
    try:
        target = f"fhir:{server.base_url}"
        code = main(["batch", str(folder), "--out", str(tmp_path / "out"), "--deliver", target, "--json"])
        assert code == 0, capsys.readouterr().err
        documents = server.search("DocumentReference")
        assert len(documents) == 1
        assert documents[0]["subject"]["reference"] == "Patient/p-42"
        # Same audio re-processed into a new folder: a new draft, which replaces the first one on the
        # server (one current note, the earlier one superseded), never a second current copy.
        code = main(["batch", str(folder), "--out", str(tmp_path / "out2"), "--deliver", target, "--json"])
        assert code == 0
        states = sorted(d["status"] for d in server.search("DocumentReference"))
        assert states == ["current", "superseded"]
    finally:
        server.stop()
    shutil.copy(speech_wav, folder / "visit-2.wav")
    (folder / "visit-2.wav").write_bytes((folder / "visit-2.wav").read_bytes()[:-3200])  # other audio
    (folder / "visit-2.context.toml").write_text('encounter_id = "x"\npatient_reference = "Patient/p-43"\n')
    code = main(["batch", str(folder), "--out", str(tmp_path / "out"), "--deliver", target, "--json"])
    err = capsys.readouterr().err
    assert code == 1 and "1 queued" in err
    assert (tmp_path / "out").is_dir() and len(list((tmp_path / "out" / ".ambient" / "done").iterdir())) == 2
    with Outbox.for_paths(resolve_paths()) as outbox:
        assert [i.state for i in outbox.items(("pending",))] == ["pending"]
