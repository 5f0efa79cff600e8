"""Start a real agent for the fuzz, fault and access tests, allowing for a crowded machine.

``tests.test_agent.start_agent`` gives the model and the drafter 60 s to load; on a shared 2-core
machine that is sometimes not enough. One more try, after the first process is gone, separates a
slow start from an agent that cannot start (which still fails, with its log).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_agent import AgentProc, start_agent


def start_agent_patiently(home: Path, port: int, env: dict[str, str] | None = None) -> AgentProc:
    try:
        return start_agent(home, port, env)
    except pytest.fail.Exception:
        return start_agent(home, port, env)
