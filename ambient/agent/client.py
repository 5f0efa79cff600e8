"""Talking to a running agent from a short-lived process (``ambient encounter ...``).

Uses the same WebSocket, token file and gates as any other client, so the command line has no
private back door: whatever it can do, an EHR page on the allow-list can do too.
"""

from __future__ import annotations

import json
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

from ambient.agent.runner import TOKEN_NAME
from ambient.config import Paths
from ambient.errors import AmbientError
from ambient.localsock import LOOPBACK, load_or_create_token, token_path


class AgentNotRunningError(AmbientError):
    exit_code = 7
    code = "AMB-E700"


class AgentRefusedError(AmbientError):
    exit_code = 1
    code = "AMB-E701"


class AgentClient:
    def __init__(self, paths: Paths, port: int, timeout_s: float = 5.0) -> None:
        file = token_path(paths, TOKEN_NAME)
        self.url = f"ws://{LOOPBACK}:{port}"
        if not file.exists():
            raise AgentNotRunningError(
                f"no agent token at {file}: the agent has never run for this user; "
                "start it with `ambient agent`"
            )
        token, _ = load_or_create_token(paths, TOKEN_NAME)
        try:
            # entered as a context manager: websockets deprecates a bare connect() in sync code
            self.ws: ClientConnection = connect(
                self.url,
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=timeout_s,
                max_size=None,
            ).__enter__()
        except (ConnectionRefusedError, TimeoutError, OSError) as exc:
            raise AgentNotRunningError(
                f"no agent is listening on {self.url} ({exc.__class__.__name__}); start it with "
                "`ambient agent` (or check [agent] port in ambient.toml)"
            ) from None
        except InvalidStatus as exc:
            raise AgentNotRunningError(
                f"{self.url} refused the connection (HTTP {exc.response.status_code}): another program "
                f"holds the port, or the token in {file} is not the agent's; restart the agent"
            ) from None

    def send(self, message: dict[str, Any]) -> None:
        self.ws.send(json.dumps(message))

    def receive(self, timeout_s: float | None) -> dict[str, Any]:
        try:
            raw = self.ws.recv(timeout=timeout_s)
        except TimeoutError:
            raise AgentRefusedError(f"the agent at {self.url} did not answer in {timeout_s:g} s") from None
        except (ConnectionClosed, WebSocketException) as exc:
            raise AgentRefusedError(f"the agent at {self.url} closed the connection ({exc})") from None
        message: dict[str, Any] = json.loads(raw)
        return message

    def request(self, message: dict[str, Any], expect: str, timeout_s: float | None = 10.0) -> dict[str, Any]:
        """Send one control message and return the reply of type ``expect`` (skipping transcript events)."""
        self.send(message)
        while True:
            reply = self.receive(timeout_s)
            if reply.get("type") == "error":
                raise AgentRefusedError(f"the agent refused: {reply.get('message')}")
            if reply.get("type") == expect:
                return reply

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
