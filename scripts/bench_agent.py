"""Agent benchmark: stop → note ready, through a real ``ambient agent`` over its WebSocket.

    python scripts/bench_agent.py                        # CAR0002 (8.8 min) twice: 17.6 min, at 1x
    python scripts/bench_agent.py --speed 3 --repeat 2   # faster than real time (decoding may lag)

Starts ``ambient agent --foreground`` in a temporary ``AMBIENT_HOME`` on a free port, replays
``../shared/data/realspeech/osce_fareez2022/CAR0002.mp3`` ``--repeat`` times back to back as
100 ms PCM frames at ``--speed`` × real time, sends ``stop`` and reports what the agent measured:
``stop_to_note_s`` (stop received → note in the inbox and queued to delivery), split into
``flush_s`` (decoding the audio still buffered) and ``draft_s`` (transcript → note → inbox), with
the largest decoding backlog. Prints one JSON object; nothing is written to the docs.
"""

from __future__ import annotations

import argparse
import json
import os
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
    args = parser.parse_args()
    if not args.file.is_file():
        print(
            f"bench_agent: {args.file} not found; it needs ../shared/data (see its README)", file=sys.stderr
        )
        return 2
    frames = [
        (np.clip(b.samples, -1, 1) * 32767).round().astype("<i2").tobytes()
        for b in iter_blocks(args.file, 0.1)
    ] * args.repeat
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
            result = _replay(port, token, frames, args.speed)
        finally:
            agent.terminate()
            agent.wait(30)
    result |= {"file": args.file.name, "repeat": args.repeat, "speed": args.speed, "load": os.getloadavg()}
    print(json.dumps(result, indent=2))
    return 0


def _replay(port: int, token: str, frames: list[bytes], speed: float) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    with connect(f"ws://127.0.0.1:{port}", additional_headers=headers, max_size=None) as ws:
        messages: list[dict[str, Any]] = []
        done = threading.Event()

        def read() -> None:  # keep reading while sending, as a real client would
            for raw in ws:
                message = json.loads(raw)
                messages.append(message)
                if message.get("type") == "note_ready":
                    done.set()
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        ws.send(json.dumps({"type": "start", "encounter_id": "bench-1"}))
        began = time.monotonic()
        for i, frame in enumerate(frames):
            delay = began + i * 0.1 / speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            ws.send(frame)
        sent_s = time.monotonic() - began
        ws.send(json.dumps({"type": "stop"}))
        done.wait(600)
    ready = next(m for m in messages if m.get("type") == "note_ready")
    committed = sum(len(m["words"]) for m in messages if m.get("kind") == "committed")
    keys = ("stop_to_note_s", "flush_s", "draft_s", "max_backlog_s", "audio_s", "words")
    return {k: ready[k] for k in keys} | {"send_wall_s": round(sent_s, 1), "committed_words_seen": committed}


if __name__ == "__main__":
    sys.exit(main())
