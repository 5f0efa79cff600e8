"""The agent hosts the editor bridge: one process owns the bridge port for the whole session.

Without this, ``ambient deliver --to editor`` binds the bridge port itself, and so would the
agent's own delivery of a stopped encounter's note: whichever came second failed, and the pages in
the clinician's browser had to reconnect to whichever process held the port at the time. Now:

- ``ambient agent`` starts the :class:`~ambient.ehr.editor_bridge.bridge.EditorBridge` on its own
  thread (:class:`~ambient.ehr.editor_bridge.bridge.BridgeThread`) next to its control socket, and
  keeps it for its whole life, so connected pages stay connected across encounters.
- In the agent's process, the ``editor`` delivery target (the note of a stopped encounter, through
  the outbox) inserts through that bridge (:class:`HostedEditorSink`; it waits only briefly for a
  focused editor, so a clinician with no note open does not hold up the note: it stays queued).
- In any other process (``ambient deliver --to editor``, ``ambient outbox drain``), the target
  asks the running agent to insert (:class:`AgentEditorSink`, an ``editor_insert`` message on the
  agent's authenticated loopback socket); only with no agent running does it bind the port itself.
- ``encounter`` start/stop sent by the page reaches the agent's encounter control
  (:func:`encounter_callback`). A page-started encounter records from ``[agent] editor_source``
  (the microphone; ``replay:FILE`` for demos and tests). Stop is accepted at once and runs on the
  agent's loop: the page's connection must stay free to answer the insert of the very note that
  stop produces.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from ambient.config import Paths, resolve_paths
from ambient.ehr.editor_bridge.bridge import BridgeThread, ClientInfo, EditorBridge
from ambient.ehr.editor_bridge.errors import PermanentDeliveryError, RetryableDeliveryError
from ambient.ehr.editor_bridge.settings import BridgeSettings
from ambient.ehr.editor_bridge.sink import EditorSink
from ambient.localsock import load_or_create_token
from ambient.notes.render import note_to_json
from ambient.types import DeliveryReceipt, NoteDraft

HOSTED_WAIT_S = 2.0  # the agent's own delivery waits this long for a focused editor, then queues
_hosted: BridgeThread | None = None


def hosted() -> BridgeThread | None:
    """The bridge this process hosts (only inside ``ambient agent``)."""
    return _hosted


def start_hosted(settings: BridgeSettings, on_encounter: Callable[..., Any] | None) -> BridgeThread:
    """Serve the bridge for the agent's lifetime; the token is the bridge's own (pages hold it)."""
    global _hosted
    token, _ = load_or_create_token(resolve_paths())
    _hosted = BridgeThread(EditorBridge(token, settings.policy(), on_encounter), settings.port)
    return _hosted


def stop_hosted() -> None:
    global _hosted
    if _hosted is not None:
        _hosted.close()
        _hosted = None


class HostedEditorSink(EditorSink):
    """The agent's own bridge: closing the sink (the outbox does) must not close the bridge."""

    def close(self) -> None:
        pass


def encounter_callback(
    loop: asyncio.AbstractEventLoop, command: Callable[[str], Coroutine[Any, Any, None]]
) -> Callable[[str, ClientInfo], Awaitable[None]]:
    """A page's start/stop, run by ``command`` on the agent's loop; awaited on the bridge's loop."""

    def forward(action: str, client: ClientInfo) -> Awaitable[None]:
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(command(action), loop))

    return forward


class AgentEditorSink:
    """The ``editor`` target in a process other than the agent: the agent's bridge inserts."""

    name = "editor"

    def __init__(self, paths: Paths, agent_port: int, wait_s: float = 30.0, timeout_s: float = 15.0) -> None:
        self.paths = paths
        self.agent_port = agent_port
        self.wait_s = wait_s
        self.timeout_s = timeout_s

    def deliver(self, note: NoteDraft, context: Any = None) -> DeliveryReceipt:
        from ambient.agent.client import AgentClient, AgentNotRunningError, AgentRefusedError

        message = {"type": "editor_insert", "note": note_to_json(note), "wait_s": self.wait_s,
                   "timeout_s": self.timeout_s}  # fmt: skip
        try:
            with AgentClient(self.paths, self.agent_port) as client:
                wait = self.wait_s + self.timeout_s + 10
                reply = client.request(message, "editor_inserted", timeout_s=wait)
        except (AgentNotRunningError, AgentRefusedError) as exc:
            raise RetryableDeliveryError(f"editor insert through the agent failed: {exc}") from None
        if reply.get("permanent"):
            raise PermanentDeliveryError(str(reply.get("error")))
        if reply.get("error"):
            raise RetryableDeliveryError(str(reply["error"]))
        return DeliveryReceipt(
            sink=self.name,
            encounter_id=note.encounter_id,
            note_sha256=str(reply["note_sha256"]),
            locations=tuple(reply["locations"]),
            delivered_at=str(reply.get("delivered_at") or datetime.now(UTC).isoformat(timespec="seconds")),
        )

    def close(self) -> None:
        pass


def agent_sink(port: int | None) -> HostedEditorSink | AgentEditorSink | None:
    """The sink to use when an agent owns the bridge (this process, or a running one); else None."""
    thread = hosted()
    if thread is not None and (port is None or port == thread.port):
        return HostedEditorSink(thread, wait_s=HOSTED_WAIT_S)
    if thread is not None:
        return None
    from ambient.agent.client import AgentClient, AgentNotRunningError, AgentRefusedError
    from ambient.config import load_settings

    paths = resolve_paths()
    agent_port = load_settings(paths).agent.port
    try:
        with AgentClient(paths, agent_port, timeout_s=2.0) as client:
            status = client.request({"type": "status"}, "status", timeout_s=5.0)
    except (AgentNotRunningError, AgentRefusedError):
        return None
    bridge_port = status.get("editor_bridge_port")
    if not bridge_port or (port is not None and port != bridge_port):
        return None
    return AgentEditorSink(paths, agent_port)
