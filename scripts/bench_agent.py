"""Agent benchmark: stop → note ready, through a real ``ambient agent`` over its WebSocket.

    python scripts/bench_agent.py                        # CAR0002 (8.8 min) twice: 17.6 min, at 1x
    python scripts/bench_agent.py --speed 3 --repeat 2   # faster than real time (decoding may lag)
    python scripts/bench_agent.py --minutes 60 --json keepup.json   # the 60-minute keep-up run

Starts ``ambient agent --foreground`` in a temporary ``AMBIENT_HOME`` on a free port, replays
``../shared/data/realspeech/osce_fareez2022/CAR0002.mp3`` ``--repeat`` times back to back as
100 ms PCM frames at ``--speed`` × real time, sends ``stop`` and reports what the agent measured:
``stop_to_note_s`` (stop received → note in the inbox and queued to delivery), split into
``flush_s`` (decoding the audio still buffered) and ``draft_s`` (transcript → note → inbox), with
the largest decoding backlog. Prints one JSON object; nothing is written to the docs.

``--minutes M`` is the keep-up run: every clip under ../shared/data/realspeech (the interview and
the short read-speech clips, in name order) is concatenated, again and again, until there are at
least M minutes, and streamed in real time as one encounter. Besides what the agent reports, the
client times every committed event as it arrives: the delay of a committed word (arrival minus
the word's end in the audio) per 10-minute stretch says whether the agent ever fell behind real
time and caught up, or drifted. The run is bounded: it stops after M minutes of audio plus at
most ten minutes waiting for the note. On Linux, every run also reports the agent's peak resident
memory and its resident memory once a minute (``agent_peak_rss_mib``, ``agent_rss_mib_by_minute``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from websockets.sync.client import connect

from ambient.audio.decode import iter_blocks

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from benchdoc import process_mib  # noqa: E402  (a sibling script, not a package)

SHARED = next(
    (p / "shared" / "data" / "realspeech" for p in (REPO.parent, REPO.parent.parent)
     if (p / "shared" / "data" / "realspeech").is_dir()),
    REPO.parent / "shared" / "data" / "realspeech",
)  # fmt: skip
CLIP = SHARED / "osce_fareez2022" / "CAR0002.mp3"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--file", type=Path, default=CLIP)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--minutes", type=float, help="keep-up run: all realspeech clips looped to M minutes")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    # `timeout` or Ctrl+C must still stop the agent this script started (the finally below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not args.file.is_file():
        print(
            f"bench_agent: {args.file} not found; it needs ../shared/data (see its README)", file=sys.stderr
        )
        return 2
    frames = _frames([args.file]) * args.repeat
    if args.minutes:
        clips = sorted(p for p in SHARED.rglob("*") if p.suffix in {".mp3", ".ogg", ".wav", ".flac"})
        one_pass = _frames(clips)
        wanted = round(args.minutes * 600)
        frames = (one_pass * -(-wanted // len(one_pass)))[:wanted]
        args.file = Path(f"{len(clips)} realspeech clips looped to {len(frames) / 600:.1f} min")
    with tempfile.TemporaryDirectory() as home, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
        env |= {"AMBIENT_HOME": home, "AMBIENT_AGENT_PORT": str(port)}
        log = Path(home) / "agent.log"
        with log.open("wb") as out:
            agent = subprocess.Popen(
                [sys.executable, "-m", "ambient", "agent", "--foreground"], env=env, stderr=out
            )
        try:
            deadline = time.monotonic() + 120
            while b"listening on" not in log.read_bytes():
                if agent.poll() is not None or time.monotonic() > deadline:
                    print(log.read_text(), file=sys.stderr)
                    return 1
                time.sleep(0.2)
            token = (Path(home) / "config" / "agent.token").read_text().strip()
            memory = _MemorySampler(agent.pid)
            memory.start()
            result = _replay(port, token, frames, args.speed)
            result |= memory.stop()
        finally:
            agent.terminate()
            agent.wait(30)
    result |= {"file": args.file.name, "repeat": args.repeat, "speed": args.speed, "load": os.getloadavg()}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


class _MemorySampler(threading.Thread):
    """The agent's resident memory once a minute, and its peak, from /proc (Linux).

    A keep-up run must show that memory stays flat over the hour, not only that decoding keeps
    pace: the per-minute samples show a leak as a slope, the kernel's high-water mark the peak.
    """

    def __init__(self, pid: int, every_s: float = 60.0) -> None:
        super().__init__(daemon=True)
        self._pid = pid
        self._every_s = every_s
        self._stopped = threading.Event()
        self.samples_mib: list[int] = []

    def run(self) -> None:
        while not self._stopped.wait(self._every_s):
            rss = process_mib(self._pid)
            if rss is not None:
                self.samples_mib.append(round(rss))

    def stop(self) -> dict[str, Any]:
        self._stopped.set()
        peak = process_mib(self._pid, "VmHWM")
        if peak is None:  # not Linux, or the agent is gone
            return {}
        return {"agent_peak_rss_mib": round(peak), "agent_rss_mib_by_minute": self.samples_mib}


def _frames(files: list[Path]) -> list[bytes]:
    """100 ms frames of 16-bit PCM, as a client sends them."""
    return [
        (np.clip(b.samples, -1, 1) * 32767).round().astype("<i2").tobytes()
        for path in files
        for b in iter_blocks(path, 0.1)
    ]


def _delays_by_stretch(arrivals: list[tuple[float, float]], stretch_s: float = 600.0) -> list[dict[str, Any]]:
    """Commit delay (arrival − word end) per stretch of audio: median, p95, max, words."""
    rows: list[dict[str, Any]] = []
    for begin in range(0, int(max((end for end, _ in arrivals), default=0) // stretch_s) + 1):
        delays = sorted(d for end, d in arrivals if begin * stretch_s <= end < (begin + 1) * stretch_s)
        if delays:
            rows.append({
                "from_min": round(begin * stretch_s / 60), "words": len(delays),
                "median_s": round(delays[len(delays) // 2], 2),
                "p95_s": round(delays[min(len(delays) - 1, round(0.95 * (len(delays) - 1)))], 2),
                "max_s": round(delays[-1], 2),
            })  # fmt: skip
    return rows


def _replay(port: int, token: str, frames: list[bytes], speed: float) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    with connect(f"ws://127.0.0.1:{port}", additional_headers=headers, max_size=None) as ws:
        messages: list[dict[str, Any]] = []
        done = threading.Event()

        arrivals: list[tuple[float, float]] = []  # (word end in the audio, commit delay)

        def read() -> None:  # keep reading while sending, as a real client would
            for raw in ws:
                message = json.loads(raw)
                messages.append(message)
                if message.get("kind") == "committed":
                    now = time.monotonic() - began
                    arrivals.extend((w["end_s"], round(now - w["end_s"], 3)) for w in message["words"])
                if message.get("type") == "note_ready":
                    done.set()
                    return

        began = time.monotonic()
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        ws.send(json.dumps({"type": "start", "encounter_id": "bench-1"}))
        # Paced by the audio sent so far, not by the frame count: the last frame of each clip is
        # shorter than 100 ms, and counting it as 100 ms made the hour's audio run 3.4 s late by its
        # end, which showed up as commit delay growing with the encounter (run of 2026-12-03).
        sent_audio_s = 0.0
        for frame in frames:
            delay = began + sent_audio_s / speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            ws.send(frame)
            sent_audio_s += len(frame) / 2 / 16000
        sent_s = time.monotonic() - began
        ws.send(json.dumps({"type": "stop"}))
        done.wait(600)
    ready = next(m for m in messages if m.get("type") == "note_ready")
    committed = sum(len(m["words"]) for m in messages if m.get("kind") == "committed")
    keys = ("stop_to_note_s", "flush_s", "draft_s", "max_backlog_s", "audio_s", "words")
    result = {k: ready[k] for k in keys}
    result |= {"send_wall_s": round(sent_s, 1), "committed_words_seen": committed}
    if speed == 1.0:  # delays mean something only when audio and wall time run together
        result["commit_delay_by_10_min"] = _delays_by_stretch(arrivals)
    return result


if __name__ == "__main__":
    sys.exit(main())
