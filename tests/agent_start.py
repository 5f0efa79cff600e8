"""Start a real agent for the fuzz, fault and access tests, allowing for a crowded machine.

``tests.test_agent.start_agent`` gives the model and the drafter 60 s to load; on a shared 2-core
machine (eight engineers' test runs at once) loading has taken longer than that. This is the same
start with the wait as a parameter; an agent that exits, or never listens, still fails with its log.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_agent import REPO, AgentProc


def start_agent_patiently(
    home: Path, port: int, env: dict[str, str] | None = None, timeout_s: float = 240.0
) -> AgentProc:
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
            proc.wait()
            pytest.fail(f"the agent did not start within {timeout_s:.0f} s:\n{log.read_text()}")
        time.sleep(0.1)
    return AgentProc(home, port, proc, log)
