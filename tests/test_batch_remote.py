"""Batch inputs behind an fsspec URL: listed, hashed and staged through fsspec's real local filesystem.

``file://`` goes through the same fsspec calls (find, open, get_file) as ``s3://`` does with s3fs;
no stand-in for a store. URL outputs are tested in test_batch_url_outputs.py.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from ambient.batch.remote import list_urls
from ambient.cli.main import main
from ambient.protect.outputs import read_output
from tests.audio_helpers import encode

pytest.importorskip("fsspec", reason="fsspec is the optional extra: pip install 'ambient[remote]'")
pytestmark = pytest.mark.model


def test_batch_from_url_matches_folder(
    tmp_path: Path, speech_wav: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    (folder / "day2").mkdir(parents=True)
    shutil.copy(speech_wav, folder / "visit-a.wav")
    samples = np.frombuffer(speech_wav.read_bytes()[44:], dtype=np.int16).astype(np.float32) / 32768
    encode(folder / "day2" / "visit-b.flac", samples[: 16000 * 6], 16000)
    (folder / "broken.mp3").write_bytes(b"ID3" + os.urandom(4000))
    (folder / ".hidden.wav").write_bytes(b"")
    (folder / "notes.txt").write_text("not audio")
    url = f"file://{folder}"
    assert [u.rsplit("/", 1)[1] for u in list_urls(url)] == ["broken.mp3", "visit-b.flac", "visit-a.wav"]

    staging = tmp_path / "staging"
    staging.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(staging))  # staged copies land here
    runs = {}
    for name, source in (("folder", str(folder)), ("url", url)):
        out = tmp_path / name
        code = main(["batch", source, "--out", str(out), "--json"])
        summary = json.loads(capsys.readouterr().out)
        assert code == 1 and summary["succeeded"] == 2 and summary["failed"] == 1
        runs[name] = out
    assert not list(staging.iterdir())  # every staged copy removed, the failed one too

    done = runs["url"] / ".ambient" / "done"
    markers = [json.loads(p.read_text()) for p in done.iterdir()]
    assert sorted(m["input"] for m in markers) == [f"{url}/day2/visit-b.flac", f"{url}/visit-a.wav"]
    for marker in markers:
        here = runs["url"] / marker["folder"]
        there = runs["folder"] / marker["folder"]  # same key, same folder name as the plain run
        ours, theirs = (
            json.loads(read_output(here / "transcript.json")),
            json.loads(read_output(there / "transcript.json")),
        )
        assert ours["header"]["source_path"] == marker["input"]  # the URL, not the staged temp file
        assert [s["text"] for s in ours["segments"]] == [s["text"] for s in theirs["segments"]]
    failures = [json.loads(x) for x in (runs["url"] / "failures.jsonl").read_text().splitlines()]
    assert [f["input"] for f in failures] == [f"{url}/broken.mp3"]
    reason = failures[0]["reason"]
    assert f"{url}/broken.mp3" in reason and "ambient-stage" not in reason  # the URL, not the temp copy

    # Resumable from the URL exactly as from the folder.
    (folder / "broken.mp3").unlink()
    assert main(["batch", url, "--out", str(runs["url"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped_already_done"] == 2


def test_url_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["batch", str(tmp_path), "--out", "nosuchscheme://bucket/out"]) == 2
    assert "no filesystem for 'nosuchscheme://'" in capsys.readouterr().err
    assert main(["batch", "nosuchscheme://bucket/in", "--out", str(tmp_path / "o")]) == 2
    assert "no filesystem for 'nosuchscheme://'" in capsys.readouterr().err
    assert main(["batch", f"file://{tmp_path}/missing", "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
