"""The bridge protocol over a real socket with a real ``websockets`` client (no browser needed)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ambient.ehr.editor_bridge.bridge import ClientInfo, EditorBridge
from ambient.ehr.editor_bridge.errors import RetryableDeliveryError
from ambient.ehr.editor_bridge.protocol import ProtocolError, parse_client_message
from ambient.ehr.editor_bridge.settings import BridgeSettings, bridge_settings
from ambient.errors import ConfigError
from ambient.localsock import CLOSE_INVALID_MESSAGE, CLOSE_POLICY, browser_subprotocols

TOKEN = "c" * 64
EHR = "https://ehr.example.org"
EXT_ID = "abcdefghijklmnopabcdefghijklmnop"
EDITOR = {"id": "ed1", "adapter": "textarea", "label": "note"}


def _hello(origin: str = EHR, focused: str | None = "ed1") -> str:
    msg = {"type": "hello", "client": "userscript", "page_origin": origin, "editors": [EDITOR]}
    return json.dumps({**msg, "focused": focused})


def run(body: Callable[[EditorBridge], Awaitable[None]], on_encounter: Any = None) -> None:
    async def main() -> None:
        settings = BridgeSettings(port=0, page_origins=(EHR,), extension_ids=(EXT_ID,))
        bridge = EditorBridge(TOKEN, settings.policy(), on_encounter)
        await bridge.start(0)
        try:
            await body(bridge)
        finally:
            await bridge.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def _browser(bridge: EditorBridge, origin: str) -> Any:
    protocols = browser_subprotocols(TOKEN, "ambient.editor.v1")
    return connect(f"ws://127.0.0.1:{bridge.port}", subprotocols=protocols, origin=origin)  # type: ignore[arg-type]


async def _closed_code(ws: Any) -> int:
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)
    code: int = ws.close_code
    return code


def test_parse_rejects_what_is_not_ours() -> None:
    bad: list[dict[str, Any]] = [
        {"type": "nope"},
        {"type": "hello", "client": 3},
        {"type": "focus", "editor": {"id": "x", "adapter": "word97"}},
        {"type": "insert_result", "request_id": "r", "ok": True, "where": "over-everything"},
        {"type": "insert_result", "request_id": "r", "ok": "yes"},
        {"type": "encounter", "action": "pause"},
        {"type": "hello", "client": "u", "editors": [EDITOR] * 201},
    ]
    for message in bad:
        with pytest.raises(ProtocolError):
            parse_client_message(message)


def test_first_message_must_be_hello_and_bad_messages_close_with_1007() -> None:
    async def body(bridge: EditorBridge) -> None:
        async with _browser(bridge, EHR) as ws:
            await ws.send(json.dumps({"type": "focus", "editor": None}))
            assert await _closed_code(ws) == CLOSE_POLICY
        async with _browser(bridge, EHR) as ws:
            await ws.send(_hello())
            await ws.send(json.dumps({"type": "focus", "editor": {"id": "e", "adapter": "nope"}}))
            assert await _closed_code(ws) == CLOSE_INVALID_MESSAGE
        for _ in range(50):  # the server forgets the tab right after the close handshake
            if not bridge.clients():
                break
            await asyncio.sleep(0.05)
        assert bridge.clients() == []

    run(body)


def test_userscript_cannot_claim_another_page_origin() -> None:
    async def body(bridge: EditorBridge) -> None:
        async with _browser(bridge, EHR) as ws:
            await ws.send(_hello(origin="https://other.example.org"))
            assert await _closed_code(ws) == CLOSE_POLICY

    run(body)


def test_extension_may_speak_only_for_allowed_pages() -> None:
    async def body(bridge: EditorBridge) -> None:
        async with _browser(bridge, f"chrome-extension://{EXT_ID}") as ws:
            await ws.send(_hello(origin="https://random.example.com"))
            assert await _closed_code(ws) == CLOSE_POLICY
        async with _browser(bridge, f"chrome-extension://{EXT_ID}") as ws:
            await ws.send(_hello(origin=EHR))
            await asyncio.sleep(0.2)
            assert [c.page_origin for c in bridge.clients()] == [EHR]

    run(body)


def test_insert_goes_to_the_most_recently_focused_tab() -> None:
    async def body(bridge: EditorBridge) -> None:
        async with _browser(bridge, EHR) as first, _browser(bridge, EHR) as second:
            await first.send(_hello())
            await second.send(_hello(focused=None))
            await bridge.wait_for_editor(5)
            await second.send(json.dumps({"type": "focus", "editor": EDITOR}))
            await asyncio.sleep(0.2)

            async def answer() -> dict[str, Any]:
                request: dict[str, Any] = json.loads(await second.recv())
                await second.send(
                    json.dumps(
                        {
                            "type": "insert_result",
                            "request_id": request["request_id"],
                            "ok": True,
                            "adapter": "textarea",
                            "editor_id": "ed1",
                            "inserted_chars": len(request["text"]),
                            "where": "caret",
                            "undo_steps": 1,
                        }
                    )
                )
                return request

            answering = asyncio.ensure_future(answer())
            result = await bridge.insert("req1", "draft text", "<p>draft text</p>", "enc-1", 5)
            request = await answering
            assert request["type"] == "insert" and request["encounter_id"] == "enc-1"
            assert result.ok and result.inserted_chars == len("draft text")

    run(body)


def test_disconnect_during_insert_is_retryable() -> None:
    async def body(bridge: EditorBridge) -> None:
        ws = await _browser(bridge, EHR)
        await ws.send(_hello())
        await bridge.wait_for_editor(5)

        async def vanish() -> None:
            await ws.recv()
            await ws.close()

        vanishing = asyncio.ensure_future(vanish())
        with pytest.raises(RetryableDeliveryError, match="disconnected"):
            await bridge.insert("req2", "t", "<p>t</p>", "enc-1", 5)
        await vanishing

    run(body)


def test_encounter_commands_reach_the_callback() -> None:
    seen: list[tuple[str, str]] = []

    def on_encounter(action: str, client: ClientInfo) -> None:
        seen.append((action, client.page_origin))

    async def body(bridge: EditorBridge) -> None:
        async with _browser(bridge, EHR) as ws:
            await ws.send(_hello())
            await ws.send(json.dumps({"type": "encounter", "action": "start"}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert ack == {"type": "encounter_ack", "v": 1, "action": "start", "ok": True, "detail": ""}

    run(body, on_encounter)
    assert seen == [("start", EHR)]


def test_settings_validate_origins_and_extension_ids() -> None:
    settings = bridge_settings(
        env={"AMBIENT_EDITOR_ORIGINS": "https://a.example.org/, http://127.0.0.1:8080"}
    )
    assert settings.page_origins == ("https://a.example.org", "http://127.0.0.1:8080")
    for bad in ("https://a.example.org/path", "javascript:alert(1)", "*"):
        with pytest.raises(ConfigError):
            bridge_settings(env={}, origins=[bad])
    with pytest.raises(ConfigError, match="extension id"):
        bridge_settings(env={}, extension_ids=["not-an-id"])
    with pytest.raises(ConfigError):
        bridge_settings(env={"AMBIENT_EDITOR_PORT": "http"})
