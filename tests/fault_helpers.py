"""Helpers shared by the fault tests: a cold agent start that waits as long as a loaded machine needs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_agent import AgentProc

REPO = Path(__file__).resolve().parents[1]


def start_agent(
    home: Path, port: int, env: dict[str, str] | None = None, timeout_s: float = 240.0
) -> AgentProc:
    """``ambient agent --foreground`` as tests/test_agent.py starts it, with a longer start deadline
    (building the drafter takes ~25 s on an idle 2-core machine, minutes when it is shared)."""
    log = home / f"agent-{time.monotonic_ns()}.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
    full_env |= {"AMBIENT_HOME": str(home), "AMBIENT_AGENT_PORT": str(port), **(env or {})}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ambient", "agent", "--foreground"],
            cwd=REPO,
            env=full_env,
            stdout=out,
            stderr=out,
        )
    deadline = time.monotonic() + timeout_s
    while b"listening on" not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the agent did not start:\n{log.read_text()}")
        time.sleep(0.1)
    return AgentProc(home, port, proc, log)
