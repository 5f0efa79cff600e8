"""Batch on a real local Ray cluster: same results as local mode, and a killed worker loses nothing.

The cluster is started by the test (``ray.init`` with 2 CPUs, no dashboard) and shut down at the
end; actors load the real packaged tiny.en model and transcribe espeak-ng speech.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ambient.batch.cluster import RayOptions, ray_source
from ambient.batch.runner import FAILURES_FILE, BatchSummary, run_batch
from ambient.cli.main import main
from ambient.config import load_settings, resolve_paths
from ambient.protect.outputs import read_output
from tests.audio_helpers import encode
from tests.reliability import record

ray = pytest.importorskip("ray", reason="Ray is the optional extra: pip install 'ambient[cluster]'")
psutil = pytest.importorskip("psutil")

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=128 * 1024 * 1024, log_to_driver=False)
    yield
    ray.shutdown()


def _samples(wav: Path) -> np.ndarray:
    return np.frombuffer(wav.read_bytes()[44:], dtype=np.int16).astype(np.float32) / 32768


def _markers(out: Path) -> dict[str, dict[str, object]]:
    done = out / ".ambient" / "done"
    return {p.name: json.loads(p.read_text()) for p in done.iterdir() if not p.name.startswith(".")}


def test_ray_batch_matches_local_mode(
    cluster: None, tmp_path: Path, speech_wav: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    (folder / "day2").mkdir(parents=True)
    shutil.copy(speech_wav, folder / "visit-a.wav")
    shutil.copy(speech_wav, folder / "day2" / "visit-a-copy.wav")  # same audio: done once
    encode(folder / "day2" / "visit-b.flac", _samples(speech_wav)[: 16000 * 6], 16000)
    encode(folder / "quiet.ogg", np.zeros(16000 * 3), 16000)
    (folder / "broken.mp3").write_bytes(b"ID3" + os.urandom(4000))

    summaries = {}
    for mode, extra in (("local", []), ("ray", ["--ray"])):
        out = tmp_path / mode
        code = main(["batch", str(folder), "--out", str(out), "--workers", "2", "--json", *extra])
        summaries[mode] = json.loads(capsys.readouterr().out)
        assert code == 1, mode  # the broken file
    for key in ("total", "succeeded", "skipped_already_done", "failed"):
        assert summaries["ray"][key] == summaries["local"][key], key
    assert summaries["ray"]["succeeded"] == 3 and summaries["ray"]["failed"] == 1

    local, remote = _markers(tmp_path / "local"), _markers(tmp_path / "ray")
    assert local.keys() == remote.keys() and len(remote) == 3
    for name, marker in remote.items():
        assert marker["folder"] == local[name]["folder"]
        assert marker["transcript_sha256"] == local[name]["transcript_sha256"]  # same words, same times
        files = {p.name for p in (tmp_path / "ray" / str(marker["folder"])).iterdir()}
        assert files == {"transcript.json", "transcript.txt", "note.json", "note.md"}
    failures = [json.loads(x) for x in (tmp_path / "ray" / FAILURES_FILE).read_text().splitlines()]
    assert [Path(f["input"]).name for f in failures] == ["broken.mp3"]

    # Resumable exactly as local mode: a second Ray run skips everything finished.
    (folder / "broken.mp3").unlink()
    assert main(["batch", str(folder), "--out", str(tmp_path / "ray"), "--ray", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["skipped_already_done"] == 4 and again["succeeded"] == 0


def test_ray_batch_with_url_input_and_output(
    cluster: None, tmp_path: Path, speech_wav: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Inputs and outputs behind fsspec URLs (``file://``, fsspec's real local filesystem): each
    actor stages its input and writes its outputs through the store itself; same results as a
    local run into a folder, resumable, the corrupt file listed."""
    pytest.importorskip("fsspec", reason="fsspec is the optional extra: pip install 'ambient[remote]'")
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(speech_wav, folder / "visit-a.wav")
    encode(folder / "visit-b.flac", _samples(speech_wav)[: 16000 * 6], 16000)
    (folder / "corrupt.wav").write_bytes(b"RIFF" + os.urandom(3000))
    url_in, url_out = f"file://{folder}", f"file://{tmp_path / 'ray-url'}"

    # The same URLs in local mode, the same number of workers: the reference.
    assert main(["batch", url_in, "--out", str(tmp_path / "local"), "--workers", "2", "--json"]) == 1
    local = json.loads(capsys.readouterr().out)
    code = main(["batch", url_in, "--out", url_out, "--workers", "2", "--ray", "--json"])
    remote = json.loads(capsys.readouterr().out)
    assert code == 1  # the corrupt file
    for key in ("total", "succeeded", "skipped_already_done", "failed"):
        assert remote[key] == local[key], key
    assert remote["succeeded"] == 2

    ours, theirs = _markers(tmp_path / "ray-url"), _markers(tmp_path / "local")
    assert ours.keys() == theirs.keys() and len(ours) == 2
    for name, marker in ours.items():
        assert marker["transcript_sha256"] == theirs[name]["transcript_sha256"]  # same words, same times
        assert marker["input"] == theirs[name]["input"] and str(marker["input"]).startswith(url_in + "/")
        files = {p.name for p in (tmp_path / "ray-url" / str(marker["folder"])).iterdir()}
        assert files == {"transcript.json", "transcript.txt", "note.json", "note.md"}
    failures = [json.loads(x) for x in (tmp_path / "ray-url" / FAILURES_FILE).read_text().splitlines()]
    assert [f["input"] for f in failures] == [f"{url_in}/corrupt.wav"]
    assert not list((tmp_path / "ray-url").rglob("*.tmp"))

    (folder / "corrupt.wav").unlink()
    assert main(["batch", url_in, "--out", url_out, "--ray", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["skipped_already_done"] == 2 and again["succeeded"] == 0


def _busy_actor_pids() -> list[int]:
    """Our own Ray actors (descendants of this process) that are running an encounter right now."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            title = " ".join(proc.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if title.startswith("ray::EncounterWorker.process"):
            found.append(proc.pid)
    return found


@pytest.mark.reliability
def test_worker_killed_mid_run_every_encounter_once_or_failed(
    cluster: None, tmp_path: Path, speech_wav: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    samples = _samples(speech_wav)
    for i in range(6):  # six different recordings: each a different length of the same visit
        encode(folder / f"visit-{i}.flac", samples[: 16000 * (5 + 2 * i)], 16000)
    (folder / "corrupt.wav").write_bytes(b"RIFF" + os.urandom(3000))
    out = tmp_path / "out"
    paths = resolve_paths()
    settings = load_settings(paths)
    holder: dict[str, BatchSummary] = {}

    def run() -> None:
        holder["summary"] = run_batch(
            folder, out, settings, paths, workers=2, source=ray_source(RayOptions(max_attempts=2))
        )

    thread = threading.Thread(target=run)
    thread.start()
    killed: int | None = None
    deadline = time.monotonic() + 240
    while killed is None and time.monotonic() < deadline and thread.is_alive():
        done = out / ".ambient" / "done"
        if done.is_dir() and any(not p.name.startswith(".") for p in done.iterdir()):
            busy = _busy_actor_pids()
            if busy:
                killed = busy[0]
                os.kill(killed, signal.SIGKILL)
                break
        time.sleep(0.02)
    thread.join(timeout=400)
    assert not thread.is_alive()
    assert killed is not None, "no actor was busy after the first encounter finished"
    assert not psutil.pid_exists(killed) or psutil.Process(killed).status() == psutil.STATUS_ZOMBIE

    summary = holder["summary"]
    failures = [json.loads(x) for x in (out / FAILURES_FILE).read_text().splitlines()]
    markers = _markers(out)
    assert summary.total == 7
    assert summary.succeeded + summary.failed == 7  # every encounter accounted for
    assert "corrupt.wav" in {Path(f["input"]).name for f in failures}
    done_inputs = [Path(str(m["input"])).name for m in markers.values()]
    failed_inputs = [Path(f["input"]).name for f in failures]
    accounted = set(done_inputs) | set(failed_inputs)
    record(
        "faults",
        "ray: actor SIGKILLed mid-batch",
        injected=1,
        survived=int(not thread.is_alive() and summary.succeeded + summary.failed == 7),
        notes_lost=sum(1 for p in folder.iterdir() if p.name not in accounted),
        notes_duplicated=len(done_inputs) - len(set(done_inputs)),
        detail=f"{summary.succeeded} drafted, {summary.failed} listed as failed of 7 (1 corrupt)",
    )
    assert sorted(done_inputs + failed_inputs) == sorted(p.name for p in folder.iterdir())  # once each
    assert len(set(done_inputs)) == len(done_inputs) == summary.succeeded
    folders = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert sorted(p.name for p in folders) == sorted(str(m["folder"]) for m in markers.values())
    for marker in markers.values():
        assert json.loads(read_output(out / str(marker["folder"]) / "note.json"))["encounter_id"]
    assert not list(out.rglob("*.tmp"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cli_joins_a_cluster_from_ray_start(tmp_path: Path, speech_wav: Path) -> None:
    """`ray start --head` (ours, on loopback, stopped at the end), then `ambient batch --ray ADDRESS`
    and a bare `--ray` finding it through RAY_ADDRESS: the CLI as a user runs it, in subprocesses."""
    ray_bin = Path(sys.executable).with_name("ray")
    port = _free_port()
    # Ray's token authentication is on by default; an explicit address (flag or RAY_ADDRESS) joins
    # only with RAY_AUTH_MODE=token and the cluster's token (here the local ~/.ray/auth_token).
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}
    # Its own short temp root (unix socket paths are limited): other Ray users on this machine
    # never find this cluster through /tmp/ray's address file.
    temp_root = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    log = (tmp_path / "ray-start.log").open("wb")
    head = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats", "--object-store-memory=100000000",
         f"--temp-dir={temp_root}", "--block"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        folder = tmp_path / "in"
        folder.mkdir()
        shutil.copy(speech_wav, folder / "visit-a.wav")
        encode(folder / "quiet.ogg", np.zeros(16000 * 3), 16000)
        out = tmp_path / "out"
        batch = [sys.executable, "-m", "ambient", "batch", str(folder), "--out", str(out), "--json"]
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:  # the head is up once its GCS port answers
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline and head.poll() is None, (
                tmp_path / "ray-start.log"
            ).read_text()
            time.sleep(0.5)
        first = subprocess.run(
            [*batch, "--ray", address, "--workers", "2"], env=env, capture_output=True, text=True, timeout=400
        )
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["succeeded"] == 2

        encode(folder / "visit-b.flac", _samples(speech_wav)[: 16000 * 6], 16000)
        second = subprocess.run(
            [*batch, "--ray"],
            env={**env, "RAY_ADDRESS": address},
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert second.returncode == 0, second.stderr
        summary = json.loads(second.stdout)
        assert summary["succeeded"] == 1 and summary["skipped_already_done"] == 2
        assert len(_markers(out)) == 3
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # only the group this test started
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)  # what SIGTERM left (gcs_server lingers)
        head.wait()
        log.close()
        shutil.rmtree(temp_root, ignore_errors=True)
