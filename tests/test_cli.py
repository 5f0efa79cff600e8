"""The CLI as a user runs it: outputs, formats, and one clear message + exit code per bad input."""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ambient.cli.main import main
from tests.audio_helpers import encode
from tests.conftest import SHARED_DATA


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "models", "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0
    assert rows["tiny.en"]["default"] and rows["tiny.en"]["installed"]
    assert rows["tiny.en"]["sha256"] == "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
    assert rows["base"]["languages"]


def test_models_list_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "models", "list")
    assert code == 0 and "tiny.en" in out and "default" in out


@pytest.mark.model
def test_transcribe_formats(capsys: pytest.CaptureFixture[str], speech_wav: Path, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "transcribe", str(speech_wav), "--format", "json")
    assert code == 0
    body = json.loads(out)
    header = body["header"]
    assert header["model"]["name"] == "tiny.en" and len(header["model"]["sha256"]) == 64
    assert header["decoding"]["beam_size"] >= 1 and header["duration_s"] > 5
    assert len(header["source_sha256"]) == 64 and header["language"] == "en"
    words = body["segments"][0]["words"]
    assert {"word", "start_s", "end_s", "probability"} <= set(words[0])
    for fmt, marker in (("vtt", "WEBVTT"), ("srt", "-->"), ("text", "blood pressure")):
        target = tmp_path / f"out.{fmt}"
        code, _, _ = run(capsys, "transcribe", str(speech_wav), "--format", fmt, "-o", str(target))
        assert code == 0
        assert marker.lower() in target.read_text().lower()


@pytest.mark.model
def test_note_from_audio_json_and_transcript(
    capsys: pytest.CaptureFixture[str], speech_wav: Path, tmp_path: Path
) -> None:
    transcript_file = tmp_path / "t.json"
    assert run(capsys, "transcribe", str(speech_wav), "--format", "json", "-o", str(transcript_file))[0] == 0
    code, out, _ = run(capsys, "note", str(transcript_file), "--format", "json")
    assert code == 0
    note = json.loads(out)
    assert note["provenance"]["asr_model"]["name"] == "tiny.en"
    assert note["provenance"]["template"]["id"] == "ambient.soap_note"
    spans = [e for s in note["sections"] for x in s["sentences"] for e in x["evidence"]]
    assert spans and all(e["end_s"] >= e["start_s"] for e in spans)
    code, out, _ = run(capsys, "note", str(speech_wav))
    assert code == 0 and out.startswith("# SOAP note")


def test_note_from_dialogue_text(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    dialogue = tmp_path / "visit.txt"
    dialogue.write_text(
        "D: What brings you in?\n\nP: I have had a cough for two weeks.\n\n"
        "D: Your temperature is 38.5 degrees and your lungs are clear.\n\n"
        "D: I'll order a chest X-ray and we will follow up in one week.\n"
    )
    code, out, _ = run(capsys, "note", str(dialogue), "--format", "json")
    assert code == 0
    sections = {s["key"]: [x["text"] for x in s["sentences"]] for s in json.loads(out)["sections"]}
    assert sections["subjective"][:2] == ["Cough.", "The patient has had a cough for 2 weeks."]
    assert "Respiratory: Endorses cough." in sections["subjective"]
    assert sections["objective"][0] == "Temperature 38.5 °C."
    assert any("lungs are clear" in s for s in sections["objective"])
    assert sections["plan"] == ["I will order a chest X-ray and we will follow up in one week."]


@pytest.mark.skipif(
    not (Path(__file__).parents[2] / "shared" / "data").is_dir(), reason="../shared/data not present"
)
def test_note_from_aci_bench_dialogue(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import csv

    shared = SHARED_DATA / "aci-bench" / "valid.csv"
    row = next(csv.DictReader(shared.open(encoding="utf-8")))
    dialogue = tmp_path / "aci.txt"
    dialogue.write_text(row["dialogue"].replace("[doctor]", "\n[doctor]").replace("[patient]", "\n[patient]"))
    code, out, _ = run(capsys, "note", str(dialogue), "--format", "json")
    assert code == 0
    note = json.loads(out)
    assert sum(len(s["sentences"]) for s in note["sections"]) >= 5


BAD_INPUTS: dict[str, tuple[bytes | None, str]] = {
    "missing.wav": (None, "does not exist"),
    "empty.wav": (b"", "is empty"),
    "text.mp3": (b"hello " * 100, "not a readable audio file"),
    "noise.flac": (bytes(range(256)) * 40, "audio"),  # FFmpeg may open it, but finds no samples
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_audio_inputs(capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str) -> None:
    content, message = BAD_INPUTS[name]
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    for command in ("transcribe", "note"):
        code, out, err = run(capsys, command, str(path))
        assert code == 3
        assert message in err and name in err
        assert out == ""


def test_unknown_model_and_template(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    clip = encode(tmp_path / "a.wav", np.zeros(16000), 16000)
    code, _, err = run(capsys, "transcribe", str(clip), "--model", "whisper-gigantic")
    assert code == 2 and "unknown model 'whisper-gigantic'" in err and "ambient models list" in err
    code, _, err = run(capsys, "note", str(clip), "--template", "sonnet")
    assert code == 2 and "unknown template 'sonnet'" in err


@pytest.mark.model
def test_silence_note_says_no_speech(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    clip = encode(tmp_path / "quiet.flac", np.zeros(5 * 16000), 16000)
    code, out, _ = run(capsys, "note", str(clip))
    assert code == 0 and "No speech was detected" in out


_CHILD_TIMEOUT_S = 120


def run_unprivileged(argv: list[str], home: Path) -> tuple[int, str]:
    """Run the CLI in a forked child that has dropped root, so permissions are really enforced.

    CI runs as root, for whom every file is readable and every folder writable; a forked child
    keeps the already-imported package and gives up its privileges before touching any file.

    The fork copies only this thread. Garbage an earlier test left (a PyAV filter graph, whose
    ffmpeg worker threads stay in the parent) must not be collected in the child: freeing it
    there waits for those threads forever (a full run hung here once). So the parent collects
    first and freezes what is left, and an alarm ends a child that hangs anyway.
    """
    gc.collect()
    gc.freeze()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 99
        try:
            signal.alarm(_CHILD_TIMEOUT_S)  # SIGALRM's default action ends the child
            os.close(read_fd)
            sys.stderr = os.fdopen(write_fd, "w", buffering=1)  # pytest has replaced sys.stderr
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.environ["AMBIENT_HOME"] = str(home)
            code = main(argv)
        finally:
            sys.stderr.flush()
            os._exit(code)
    gc.unfreeze()
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        err = pipe.read()
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code != -signal.SIGALRM, f"the unprivileged child hung for {_CHILD_TIMEOUT_S} s: {err}"
    return code, err


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder an unprivileged child can reach (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="ambient-perm-"))
    folder.chmod(0o755)
    (folder / "home").mkdir(mode=0o777)
    (folder / "home").chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


unix_root_only = pytest.mark.skipif(
    not hasattr(os, "fork") or os.geteuid() != 0, reason="drops root in a forked child: needs root on POSIX"
)


@unix_root_only
def test_unwritable_output_folder(shared_tmp: Path) -> None:
    locked = shared_tmp / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    dialogue = shared_tmp / "v.txt"
    dialogue.write_text("[patient] I have a headache for three days.\n")
    dialogue.chmod(0o644)
    code, err = run_unprivileged(
        ["note", str(dialogue), "-o", str(locked / "out" / "note.md")], shared_tmp / "home"
    )
    assert code == 6, err
    assert "locked" in err and "writable" in err
    assert not (locked / "out").exists()


@unix_root_only
def test_unreadable_input(shared_tmp: Path) -> None:
    secret = shared_tmp / "visit.wav"
    secret.write_bytes(b"RIFF0000WAVE")
    secret.chmod(0o600)
    code, err = run_unprivileged(["transcribe", str(secret)], shared_tmp / "home")
    assert code == 3, err
    assert "visit.wav" in err and "ermission" in err


def test_output_into_a_file_where_a_folder_is_expected(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    dialogue = tmp_path / "v.txt"
    dialogue.write_text("[patient] I have a headache for three days.\n")
    code, _, err = run(capsys, "note", str(dialogue), "-o", str(blocker / "sub" / "note.md"))
    assert code == 6 and "cannot create output folder" in err


def test_usage_error_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["transcribe"])
    assert exc.value.code == 2


def test_note_leaves_lineage_in_the_audit_trail(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """audio/text → transcript → note, by hash: `ambient note` records both steps, and the trail verifies."""
    from ambient.config import resolve_paths

    dialogue = tmp_path / "visit.txt"
    dialogue.write_text("D: What brings you in?\nP: I have had a cough for two weeks.\n")
    code, out, _ = run(capsys, "note", str(dialogue), "--format", "json")
    assert code == 0
    note = json.loads(out)
    trail = [
        json.loads(line)
        for path in sorted((resolve_paths().data_dir / "audit").glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    events = [e["event"] for e in trail]
    assert events[-2:] == ["transcript.committed", "note.drafted"]
    assert trail[-1]["inputs"]["transcript"] == note["provenance"]["transcript_sha256"]
    assert "cough" not in json.dumps(trail)  # ids and hashes only, never the words
    assert run(capsys, "audit", "verify")[0] == 0
