"""The agent's end of the editor bridge: which browser tabs are connected, which editor has focus,
and the insert round trip.

Each tab that runs the bridge script (extension or userscript) holds one WebSocket. Its first
message is ``hello``; after that it reports ``focus`` whenever the clinician moves into a different
note editor. An insert goes to the tab whose editor was focused most recently, and waits for that
tab's ``insert_result``. The page may also send ``encounter`` start/stop, which is handed to a
callback (the agent starts or stops listening).

Request ids are derived from the note's hash, and the page remembers the ids it has inserted, so a
retry after a timeout never puts the same draft into the chart twice.

:class:`BridgeThread` runs the bridge on its own event loop in a background thread, for the
synchronous sink interface the outbox and ``ambient deliver`` use.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import itertools
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from websockets.exceptions import ConnectionClosed

from ambient.ehr.editor_bridge.errors import RetryableDeliveryError
from ambient.ehr.editor_bridge.protocol import (
    EditorInfo,
    EncounterCommand,
    Focus,
    Hello,
    InsertResult,
    ProtocolError,
    encounter_ack_message,
    insert_message,
    parse_client_message,
)
from ambient.localsock import (
    CLOSE_INVALID_MESSAGE,
    CLOSE_POLICY,
    LocalConnection,
    LocalSocketPolicy,
    LocalSocketServer,
)

EncounterCallback = Callable[[str, "ClientInfo"], Awaitable[None] | None]
T = TypeVar("T")


@dataclass(frozen=True)
class ClientInfo:
    """What the agent knows about one connected tab (origins only: never a URL path or title)."""

    conn_id: int
    client: str
    page_origin: str
    editors: tuple[EditorInfo, ...]
    focused: EditorInfo | None


@dataclass
class _Client:
    conn: LocalConnection
    hello: Hello
    focused: EditorInfo | None
    focus_seq: int
    pending: dict[str, asyncio.Future[InsertResult]] = field(default_factory=dict)

    def info(self) -> ClientInfo:
        return ClientInfo(
            self.conn.id, self.hello.client, self.hello.page_origin, self.hello.editors, self.focused
        )


def _is_extension(origin: str | None) -> bool:
    return origin is not None and origin.startswith(("chrome-extension://", "moz-extension://"))


class EditorBridge:
    """Serve the bridge protocol on a :class:`~ambient.localsock.LocalSocketServer`."""

    def __init__(
        self,
        token: str,
        policy: LocalSocketPolicy | None = None,
        on_encounter: EncounterCallback | None = None,
    ) -> None:
        self.policy = policy or LocalSocketPolicy()
        self._server = LocalSocketServer(token, self._serve, self.policy)
        self._on_encounter = on_encounter
        self._clients: dict[int, _Client] = {}
        self._seq = itertools.count(1)
        self._changed: asyncio.Condition | None = None

    @property
    def port(self) -> int:
        return self._server.port

    def _page_origin_allowed(self, conn: LocalConnection, page_origin: str) -> bool:
        """An extension connects as itself, so the page it speaks for must be an allowed EHR origin;
        a userscript connects as the page, so it must not claim to be another one."""
        if _is_extension(conn.origin):
            return page_origin in self.policy.allowed_origins and not _is_extension(page_origin)
        if conn.origin is not None:
            return page_origin == conn.origin
        return True  # a local tool with the token

    async def start(self, port: int = 0) -> int:
        self._changed = asyncio.Condition()
        return await self._server.start(port)

    async def close(self) -> None:
        for client in list(self._clients.values()):
            for future in client.pending.values():
                future.cancel()
        await self._server.close()

    def clients(self) -> list[ClientInfo]:
        return [c.info() for c in self._clients.values()]

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    def _focused_client(self) -> _Client | None:
        candidates = [c for c in self._clients.values() if c.focused is not None and c.conn.open]
        return max(candidates, key=lambda c: c.focus_seq) if candidates else None

    async def wait_for_editor(self, timeout_s: float) -> ClientInfo:
        """The tab whose editor has focus; waits up to ``timeout_s`` for one to connect or focus."""
        assert self._changed is not None, "start() the bridge first"
        try:
            async with asyncio.timeout(timeout_s), self._changed:
                await self._changed.wait_for(lambda: self._focused_client() is not None)
        except TimeoutError:
            connected = len(self._clients)
            raise RetryableDeliveryError(
                f"no note editor has focus in a connected page after {timeout_s:g} s "
                f"({connected} page(s) connected on 127.0.0.1:{self.port}); open the note in the EHR, "
                "click into its editor, and retry"
            ) from None
        client = self._focused_client()
        assert client is not None
        return client.info()

    async def insert(
        self, request_id: str, text: str, html: str, encounter_id: str, timeout_s: float
    ) -> InsertResult:
        """Send one insert to the focused editor and wait for the page's answer."""
        client = self._focused_client()
        if client is None:
            raise RetryableDeliveryError(
                "no note editor has focus in a connected page; click into the note editor and retry"
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[InsertResult] = loop.create_future()
        client.pending[request_id] = future
        try:
            await client.conn.send(insert_message(request_id, text, html, encounter_id))
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError:
            raise RetryableDeliveryError(
                f"the editor page did not confirm the insert within {timeout_s:g} s "
                f"(request {request_id[:12]}); retry: the page ignores a request it already inserted"
            ) from None
        except (asyncio.CancelledError, ConnectionError, ConnectionClosed) as exc:
            if isinstance(exc, asyncio.CancelledError) and not future.cancelled():
                raise
            raise RetryableDeliveryError(
                f"the editor page disconnected before confirming request {request_id[:12]}; retry"
            ) from None
        finally:
            client.pending.pop(request_id, None)

    async def _serve(self, conn: LocalConnection) -> None:
        client: _Client | None = None
        try:
            async for raw in conn.messages():
                try:
                    message = parse_client_message(raw)
                except ProtocolError as exc:
                    await conn.close(CLOSE_INVALID_MESSAGE, str(exc))
                    return
                if client is None:
                    if not isinstance(message, Hello):
                        await conn.close(CLOSE_POLICY, "the first message must be hello")
                        return
                    if not self._page_origin_allowed(conn, message.page_origin):
                        await conn.close(CLOSE_POLICY, "page origin not allowed")
                        return
                    by_id = {e.id: e for e in message.editors}
                    focused = by_id.get(message.focused) if message.focused else None
                    client = _Client(conn, message, focused, next(self._seq) if focused else 0)
                    self._clients[conn.id] = client
                elif isinstance(message, Hello):
                    await conn.close(CLOSE_POLICY, "hello was already sent")
                    return
                elif isinstance(message, Focus):
                    client.focused = message.editor
                    client.focus_seq = next(self._seq)
                elif isinstance(message, InsertResult):
                    future = client.pending.get(message.request_id)
                    if future is not None and not future.done():
                        future.set_result(message)
                elif isinstance(message, EncounterCommand):
                    await self._encounter(client, message)
                await self._notify()
        finally:
            if client is not None:
                self._clients.pop(conn.id, None)
                for future in client.pending.values():
                    if not future.done():
                        future.set_exception(ConnectionError("page disconnected"))
                await self._notify()

    async def _encounter(self, client: _Client, message: EncounterCommand) -> None:
        if self._on_encounter is None:
            await client.conn.send(encounter_ack_message(message.action, False, "no agent is listening"))
            return
        try:
            outcome = self._on_encounter(message.action, client.info())
            if inspect.isawaitable(outcome):
                await outcome
        except Exception as exc:  # the page gets a short reason; the bridge keeps serving
            await client.conn.send(encounter_ack_message(message.action, False, type(exc).__name__))
            return
        await client.conn.send(encounter_ack_message(message.action, True))


class BridgeThread:
    """An :class:`EditorBridge` on its own event loop in a daemon thread, for synchronous callers."""

    def __init__(self, bridge: EditorBridge, port: int = 0) -> None:
        self.bridge = bridge
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="editor-bridge", daemon=True)
        self._thread.start()
        try:
            self.port = self.call(bridge.start(port), timeout_s=10)
        except BaseException:
            self._stop_loop()
            raise

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self.call(self.bridge.close(), timeout_s=10)
        self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
