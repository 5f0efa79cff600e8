"""``EditorSink``: deliver a note by inserting it into the note editor the clinician has open.

The sink is synchronous like every other sink (the outbox owns scheduling); the bridge it talks
through runs on its own loop in a :class:`~ambient.ehr.editor_bridge.bridge.BridgeThread`. No
editor focused, or no answer in time, is a :class:`RetryableDeliveryError`; an editor that
refuses (read-only, detached) is a :class:`PermanentDeliveryError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ambient.config import resolve_paths
from ambient.ehr.editor_bridge.bridge import BridgeThread, EditorBridge, EncounterCallback
from ambient.ehr.editor_bridge.errors import PermanentDeliveryError
from ambient.ehr.editor_bridge.protocol import InsertResult
from ambient.ehr.editor_bridge.render import note_to_html, note_to_plain_text
from ambient.ehr.editor_bridge.settings import BridgeSettings, bridge_settings
from ambient.localsock import load_or_create_token
from ambient.notes.render import note_sha256
from ambient.types import DeliveryReceipt, NoteDraft

if TYPE_CHECKING:
    from ambient.ehr.sink import Sink


@dataclass(frozen=True)
class EditorDelivery:
    """What the page reported, kept beside the receipt for callers that want the detail."""

    result: InsertResult
    page_origin: str
    request_id: str


def insert_location(delivery: EditorDelivery) -> str:
    """The receipt's location: adapter, page origin, editor id, characters and where (no PHI)."""
    r = delivery.result
    return (
        f"editor:{r.adapter}:{delivery.page_origin}#{r.editor_id}"
        f"?chars={r.inserted_chars}&where={r.where}&undo_steps={r.undo_steps}"
    )


class EditorSink:
    name = "editor"

    def __init__(self, thread: BridgeThread, wait_s: float = 30.0, timeout_s: float = 15.0) -> None:
        self.thread = thread
        self.wait_s = wait_s
        self.timeout_s = timeout_s
        self.last: EditorDelivery | None = None

    def deliver(self, note: NoteDraft, context: Any = None) -> DeliveryReceipt:
        """Insert ``note`` at the focused editor's caret; ``context`` is unused (the page is the chart)."""
        sha = note_sha256(note)
        request_id = sha[:32]  # same note → same id: the page will not insert it twice
        bridge = self.thread.bridge
        client = self.thread.call(bridge.wait_for_editor(self.wait_s), timeout_s=self.wait_s + 5)
        text, html = note_to_plain_text(note), note_to_html(note)
        result = self.thread.call(
            bridge.insert(request_id, text, html, note.encounter_id, self.timeout_s),
            timeout_s=self.timeout_s + 5,
        )
        if not result.ok:
            raise PermanentDeliveryError(
                f"the {result.adapter or 'page'} editor refused the draft for encounter {note.encounter_id} "
                f"({result.error or 'no reason given'}); insert it by hand from the inbox copy"
            )
        self.last = EditorDelivery(result, client.page_origin, request_id)
        return DeliveryReceipt(
            sink=self.name,
            encounter_id=note.encounter_id,
            note_sha256=sha,
            locations=(insert_location(self.last),),
            delivered_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )

    def close(self) -> None:
        self.thread.close()


def start_bridge(
    settings: BridgeSettings | None = None, on_encounter: EncounterCallback | None = None
) -> BridgeThread:
    """Create (once) the token, then serve the bridge on ``settings.port`` in a background thread."""
    settings = settings or bridge_settings()
    token, _ = load_or_create_token(resolve_paths())
    return BridgeThread(EditorBridge(token, settings.policy(), on_encounter), settings.port)


def open_sink(rest: str = "", options: Any = None) -> Sink:
    """Factory for the ``editor`` / ``editor:PORT`` delivery target."""
    port = None
    if rest.strip():
        try:
            port = int(rest)
        except ValueError:
            from ambient.errors import UsageError

            raise UsageError(f"editor target takes an optional port (editor:47615), got {rest!r}") from None
    from ambient.agent.editor_host import agent_sink  # a running agent owns the bridge port

    return agent_sink(port) or EditorSink(start_bridge(bridge_settings(port=port)))
