"""Batch outputs behind an fsspec URL, through fsspec's real local filesystem (``file://``).

``--out file:///…`` goes through the same store code as ``--out s3://…`` (whole-object writes,
markers listed, failures as one object each, no appends); the only difference is that ``file://``
has no atomic PUT, so each object is written to a temp name and moved (a real rename on disk).
No stand-in for a store: real files, the real packaged tiny.en model, espeak-ng speech.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from ambient.batch.store import UrlStore, open_store
from ambient.cli.main import main
from ambient.protect.outputs import read_output
from ambient.protect.sealed import key_id_of
from tests.audio_helpers import encode

pytest.importorskip("fsspec", reason="fsspec is the optional extra: pip install 'ambient[remote]'")
pytestmark = pytest.mark.model

OUTPUT_FILES = {"transcript.json", "transcript.txt", "note.json", "note.md"}


def _samples(wav: Path) -> np.ndarray:
    return np.frombuffer(wav.read_bytes()[44:], dtype=np.int16).astype(np.float32) / 32768


@pytest.fixture
def in_dir(tmp_path: Path, speech_wav: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(speech_wav, folder / "visit-a.wav")
    encode(folder / "visit-b.flac", _samples(speech_wav)[: 16000 * 6], 16000)
    (folder / "corrupt.wav").write_bytes(b"RIFF" + os.urandom(3000))
    return folder


def _markers(out: Path) -> dict[str, dict[str, object]]:
    done = out / ".ambient" / "done"
    return {p.name: json.loads(p.read_text()) for p in done.iterdir() if not p.name.startswith(".")}


def _json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    parsed: dict[str, object] = json.loads(capsys.readouterr().out)
    return parsed


def test_batch_to_a_url_matches_folder_and_replays_and_diffs_from_urls(
    in_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder_out, url_root = tmp_path / "folder-out", tmp_path / "url-out"
    url = f"file://{url_root}"
    assert main(["batch", str(in_dir), "--out", str(folder_out), "--json"]) == 1
    local = _json(capsys)
    assert main(["batch", str(in_dir), "--out", url, "--json"]) == 1  # the corrupt file
    remote = _json(capsys)
    for key in ("total", "succeeded", "skipped_already_done", "failed"):
        assert remote[key] == local[key], key
    assert remote["succeeded"] == 2 and remote["failed"] == 1

    ours, theirs = _markers(url_root), _markers(folder_out)
    assert ours.keys() == theirs.keys() and len(ours) == 2
    for name, marker in ours.items():
        assert marker["folder"] == theirs[name]["folder"]  # same key, same folder name
        assert marker["transcript_sha256"] == theirs[name]["transcript_sha256"]
        here = url_root / str(marker["folder"])
        assert {p.name for p in here.iterdir()} == OUTPUT_FILES
        for file in OUTPUT_FILES:
            assert key_id_of((here / file).read_bytes()) is not None  # sealed at rest, as in a folder
        note = json.loads(read_output(here / "note.json"))
        assert note["encounter_id"] and note["provenance"]["input_sha256"] == marker["sha256"]
    failures = [json.loads(x) for x in (url_root / "failures.jsonl").read_text().splitlines()]
    assert [Path(str(f["input"])).name for f in failures] == ["corrupt.wav"]
    # Written as it happened, one object per failure (a store cannot append), then joined.
    [obj] = (url_root / ".ambient" / "failures").iterdir()
    assert json.loads(obj.read_text())["input"] == failures[0]["input"]
    assert not list(url_root.rglob("*.tmp"))

    # Resumable from the URL exactly as from a folder; the list of failures is this run's only.
    (in_dir / "corrupt.wav").unlink()
    assert main(["batch", str(in_dir), "--out", url + "/", "--json"]) == 0
    again = _json(capsys)
    assert again["skipped_already_done"] == 2 and again["succeeded"] == 0
    assert (url_root / "failures.jsonl").read_text() == ""
    assert not list((url_root / ".ambient" / "failures").iterdir())

    # replay and diff read runs from URLs (and replay writes to one).
    new_url = f"file://{tmp_path / 'hp-out'}"
    assert main(["replay", url, "--template", "hp", "--out", new_url, "--json"]) == 0
    assert _json(capsys)["succeeded"] == 2
    assert all(m["transcribed"] is False for m in _markers(tmp_path / "hp-out").values())
    assert main(["diff", url, new_url, "--json"]) == 0
    report = _json(capsys)
    total = report["total"]
    assert isinstance(total, dict)
    assert total["encounters_compared"] == 2 and total["wer"] == 0.0 and total["sections_added"]
    assert main(["replay", url, "--out", url, "--json"]) == 2  # never over the run it compares with
    assert "must be a new folder" in capsys.readouterr().err


def test_marker_is_written_last_and_a_missing_marker_means_redo(
    in_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (in_dir / "corrupt.wav").unlink()
    root = tmp_path / "out"
    url = f"file://{root}"
    writes: list[str] = []
    real_write = UrlStore.write

    def recording_write(self: UrlStore, rel: str, data: bytes) -> None:
        real_write(self, rel, data)  # the real write first: a name is recorded once it is whole
        writes.append(rel)

    monkeypatch.setattr(UrlStore, "write", recording_write)
    assert main(["batch", str(in_dir), "--out", url, "--json"]) == 0
    capsys.readouterr()
    markers = _markers(root)
    assert len(markers) == 2
    for name, marker in markers.items():
        folder = str(marker["folder"])
        files = [i for i, rel in enumerate(writes) if rel.startswith(folder + "/")]
        assert len(files) == len(OUTPUT_FILES)
        assert writes.index(f".ambient/done/{name}") > max(files)  # the marker after every file

    # An encounter whose marker is missing (a kill between its files and its marker) is redone;
    # one whose marker exists is skipped, its files untouched.
    first, second = sorted(markers)
    (root / ".ambient" / "done" / first).unlink()
    kept = root / str(markers[second]["folder"]) / "note.json"
    kept_mtime = kept.stat().st_mtime_ns
    writes.clear()
    assert main(["batch", str(in_dir), "--out", url, "--json"]) == 0
    summary = _json(capsys)
    assert summary["succeeded"] == 1 and summary["skipped_already_done"] == 1
    assert kept.stat().st_mtime_ns == kept_mtime
    redone = str(markers[first]["folder"])
    assert sorted(w for w in writes if w.startswith(redone)) == sorted(f"{redone}/{f}" for f in OUTPUT_FILES)
    assert (root / ".ambient" / "done" / first).is_file()

    # Ctrl-C exactly between an encounter's last file and its marker: its files are all there,
    # but without the marker the next run does it again (and the one never started).
    root2 = tmp_path / "out2"

    def interrupted(self: UrlStore, sha256: str, marker: dict[str, object]) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(UrlStore, "write_marker", interrupted)
    assert main(["batch", str(in_dir), "--out", f"file://{root2}", "--json"]) == 130
    capsys.readouterr()
    assert not _markers(root2)
    [started] = [p for p in root2.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert {p.name for p in started.iterdir()} == OUTPUT_FILES
    first_write = (started / "note.json").stat().st_mtime_ns
    monkeypatch.undo()
    assert main(["batch", str(in_dir), "--out", f"file://{root2}", "--json"]) == 0
    summary = _json(capsys)
    assert summary["succeeded"] == 2 and summary["skipped_already_done"] == 0
    assert (started / "note.json").stat().st_mtime_ns != first_write  # redone, not trusted
    assert main(["batch", str(in_dir), "--out", f"file://{root2}", "--json"]) == 0
    assert _json(capsys)["skipped_already_done"] == 2


def test_killed_batch_to_a_url_resumes_without_redoing(in_dir: Path, tmp_path: Path) -> None:
    """kill -9 mid-run with --out file://…: finished encounters stay, the re-run does the rest and
    lists the corrupt input in failures.jsonl (rewritten whole: the store cannot append)."""
    root = tmp_path / "out"
    url = f"file://{root}"
    for i in range(3):  # more work after the first marker, so the kill lands mid-run
        encode(in_dir / f"extra-{i}.flac", _samples(in_dir / "visit-a.wav")[: 16000 * (3 + 2 * i)], 16000)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "ambient", "batch", str(in_dir), "--out", url]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = root / ".ambient" / "done"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            if done.is_dir() and any(not p.name.startswith(".") for p in done.iterdir()):
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in done.iterdir() if not p.name.startswith(".")}
    assert finished, "the first encounter should have finished before the kill"
    assert len(finished) < 5, "the kill should have landed before the run finished"
    for name in finished:  # a marker under its real name is whole, and so is everything it vouches for
        marker = json.loads((done / name).read_text())
        assert {p.name for p in (root / marker["folder"]).iterdir()} >= OUTPUT_FILES

    result = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 1, result.stderr  # the corrupt input
    summary = json.loads(result.stdout)
    assert summary["total"] == 6 and summary["failed"] == 1
    assert summary["skipped_already_done"] == len(finished)
    assert summary["succeeded"] + summary["skipped_already_done"] == 5
    for name, mtime in finished.items():
        assert (done / name).stat().st_mtime_ns == mtime  # not redone
    assert len(_markers(root)) == 5
    assert not list(root.rglob("*.tmp"))  # what the kill left mid-write was tidied
    failures = [json.loads(x) for x in (root / "failures.jsonl").read_text().splitlines()]
    assert [Path(str(f["input"])).name for f in failures] == ["corrupt.wav"]
    assert "1 failed: see" in result.stderr


def test_keys_rotate_and_purge_reach_url_outputs(
    in_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sealed run behind a URL is remembered like a folder: rotation re-seals it before the old
    key is retired (nothing there becomes unreadable), and purge removes what is past retention."""
    (in_dir / "corrupt.wav").unlink()
    root = tmp_path / "out"
    assert main(["batch", str(in_dir), "--out", f"file://{root}", "--json"]) == 0
    capsys.readouterr()
    files = sorted(p for p in root.glob("*/*") if p.name in OUTPUT_FILES)
    assert len(files) == 8
    before = {key_id_of(p.read_bytes()) for p in files}
    assert main(["keys", "rotate"]) == 0
    capsys.readouterr()
    after = {key_id_of(p.read_bytes()) for p in files}
    assert len(before) == len(after) == 1 and before != after
    for path in files:
        assert read_output(path)  # opens under the new key; the old one is gone

    # Retention reaches it too: an encounter finished 40 days ago is purged, its marker kept.
    markers = _markers(root)
    old_name, new_name = sorted(markers)
    aged = {**markers[old_name], "finished_at": (datetime.now(UTC) - timedelta(days=40)).isoformat()}
    (root / ".ambient" / "done" / old_name).write_text(json.dumps(aged))
    assert main(["purge", "--older-than", "30d"]) == 0
    assert "1 batch outputs" in capsys.readouterr().out
    assert not (root / str(markers[old_name]["folder"])).exists()
    assert (root / str(markers[new_name]["folder"]) / "note.json").is_file()
    assert (root / ".ambient" / "done" / old_name).is_file()  # a re-run does not redo it


def test_url_output_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in").mkdir()
    assert main(["batch", str(tmp_path / "in"), "--out", "nosuchscheme://bucket/out"]) == 2
    assert "no filesystem for 'nosuchscheme://'" in capsys.readouterr().err
    assert main(["diff", f"file://{tmp_path}/a", f"file://{tmp_path}/b"]) == 2
    assert "holds no finished encounters" in capsys.readouterr().err
    store = open_store(f"file://{tmp_path}/x")
    assert isinstance(store, UrlStore) and not store.atomic_put
    assert open_store(f"file://{tmp_path}/x/") is store  # one store per root in a process
