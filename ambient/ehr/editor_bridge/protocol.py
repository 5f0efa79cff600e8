"""The editor bridge's messages: JSON objects with a ``type``, parsed into frozen dataclasses.

Sans-I/O: :func:`parse_client_message` turns one decoded JSON object from the browser into a typed
message or raises :class:`ProtocolError` (the connection is then closed with 1007); the ``*_message``
functions build what the server sends. The browser side (``extension/core.js``) speaks the same
shapes; ``PROTOCOL_VERSION`` changes whenever a field changes meaning.

Browser → agent: ``hello`` (which editors the page has, which has focus), ``focus`` (focus moved),
``insert_result`` (what was inserted, where, by which adapter), ``encounter`` (the clinician pressed
start or stop in the page). Agent → browser: ``insert`` (the note as plain text and HTML) and
``encounter_ack``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

PROTOCOL_VERSION = 1
ADAPTERS = ("tinymce", "ckeditor5", "quill", "textarea", "contenteditable")
WHERE = ("caret", "after-selection", "end")


class ProtocolError(ValueError):
    """A message that is not one of ours; the connection that sent it is closed."""


@dataclass(frozen=True)
class EditorInfo:
    """One note editor on the page: a page-local id, the adapter that drives it, a short label."""

    id: str
    adapter: str
    label: str = ""


@dataclass(frozen=True)
class Hello:
    client: str  # "extension" | "userscript"
    version: str
    page_origin: str
    editors: tuple[EditorInfo, ...]
    focused: str | None


@dataclass(frozen=True)
class Focus:
    editor: EditorInfo | None


@dataclass(frozen=True)
class InsertResult:
    request_id: str
    ok: bool
    adapter: str
    editor_id: str
    inserted_chars: int
    where: str
    undo_steps: int
    error: str = ""


@dataclass(frozen=True)
class EncounterCommand:
    action: Literal["start", "stop"]


@dataclass(frozen=True)
class Ping:
    """Keep-alive from the extension: an MV3 service worker sleeps unless messages flow."""


ClientMessage = Hello | Focus | InsertResult | EncounterCommand | Ping


def _str(obj: dict[str, Any], key: str, default: str | None = None, limit: int = 2048) -> str:
    value = obj.get(key, default)
    if not isinstance(value, str) or len(value) > limit:
        raise ProtocolError(f"field {key!r} must be text of at most {limit} characters")
    return value


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError(f"field {key!r} must be a whole number ≥ 0")
    return value


def _editor(obj: Any) -> EditorInfo:
    if not isinstance(obj, dict):
        raise ProtocolError("an editor must be an object with id, adapter and label")
    adapter = _str(obj, "adapter", limit=32)
    if adapter not in ADAPTERS:
        raise ProtocolError(f"unknown adapter {adapter!r}")
    return EditorInfo(id=_str(obj, "id", limit=128), adapter=adapter, label=_str(obj, "label", "", 200))


def parse_client_message(obj: dict[str, Any]) -> ClientMessage:
    kind = obj.get("type")
    if kind == "hello":
        editors = obj.get("editors", [])
        if not isinstance(editors, list) or len(editors) > 200:
            raise ProtocolError("field 'editors' must be a list of at most 200 editors")
        focused = obj.get("focused")
        if focused is not None and not isinstance(focused, str):
            raise ProtocolError("field 'focused' must be an editor id or null")
        return Hello(
            client=_str(obj, "client", limit=32),
            version=_str(obj, "version", "", 32),
            page_origin=_str(obj, "page_origin", "", 256),
            editors=tuple(_editor(e) for e in editors),
            focused=focused,
        )
    if kind == "focus":
        raw = obj.get("editor")
        return Focus(editor=None if raw is None else _editor(raw))
    if kind == "insert_result":
        ok = obj.get("ok")
        if not isinstance(ok, bool):
            raise ProtocolError("field 'ok' must be true or false")
        where = _str(obj, "where", "", 32)
        if ok and where not in WHERE:
            raise ProtocolError(f"field 'where' must be one of {', '.join(WHERE)}")
        return InsertResult(
            request_id=_str(obj, "request_id", limit=64),
            ok=ok,
            adapter=_str(obj, "adapter", "", 32),
            editor_id=_str(obj, "editor_id", "", 128),
            inserted_chars=_int(obj, "inserted_chars") if ok else 0,
            where=where,
            undo_steps=_int(obj, "undo_steps") if ok else 0,
            error=_str(obj, "error", "", 500),
        )
    if kind == "encounter":
        action = obj.get("action")
        if action == "start":
            return EncounterCommand("start")
        if action == "stop":
            return EncounterCommand("stop")
        raise ProtocolError("field 'action' must be 'start' or 'stop'")
    if kind == "ping":
        return Ping()
    raise ProtocolError(f"unknown message type {kind!r}")


def insert_message(request_id: str, text: str, html: str, encounter_id: str) -> dict[str, Any]:
    return {
        "type": "insert",
        "v": PROTOCOL_VERSION,
        "request_id": request_id,
        "encounter_id": encounter_id,
        "text": text,
        "html": html,
    }


def encounter_ack_message(action: str, ok: bool, detail: str = "") -> dict[str, Any]:
    return {"type": "encounter_ack", "v": PROTOCOL_VERSION, "action": action, "ok": ok, "detail": detail}
