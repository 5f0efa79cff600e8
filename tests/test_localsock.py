"""The loopback socket's gates, driven by a real ``websockets`` client over a real socket."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ambient.config import resolve_paths
from ambient.errors import ConfigError
from ambient.localsock import (
    CLOSE_INVALID_MESSAGE,
    CLOSE_RATE_LIMITED,
    CLOSE_TOO_BIG,
    CLOSE_UNSUPPORTED_DATA,
    LocalConnection,
    LocalSocketPolicy,
    LocalSocketServer,
    browser_subprotocols,
    load_or_create_token,
)

TOKEN = "a" * 64
EHR = "https://ehr.example.org"
EXT = "chrome-extension://abcdefghijklmnopabcdefghijklmnop"


async def _echo(conn: LocalConnection) -> None:
    async for message in conn.messages():
        await conn.send({"echo": message, "origin": conn.origin})


def run_with_server(body: Callable[[int], Awaitable[None]], policy: LocalSocketPolicy | None = None) -> None:
    async def main() -> None:
        server = LocalSocketServer(TOKEN, _echo, policy or LocalSocketPolicy(allowed_origins=(EHR, EXT)))
        port = await server.start()
        try:
            await body(port)
        finally:
            await server.close()

    asyncio.run(asyncio.wait_for(main(), 30))


async def _roundtrip(ws: ClientConnection, payload: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps(payload))
    reply: dict[str, Any] = json.loads(await ws.recv())
    return reply


async def _status_of(url: str, **kwargs: Any) -> int:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(url, **kwargs):
            pass
    return caught.value.response.status_code


async def _raw_status(port: int, host: str) -> int:
    """Status of a hand-written upgrade request, so the Host header can be anything."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {TOKEN}\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    return int(status_line.split()[1])


def test_token_file_is_private_created_once_and_stable(ambient_home: Path) -> None:
    paths = resolve_paths()
    token, path = load_or_create_token(paths)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(token) == 64
    assert load_or_create_token(paths) == (token, path)
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_token_file_readable_by_others_is_refused(ambient_home: Path) -> None:
    paths = resolve_paths()
    _, path = load_or_create_token(paths)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_or_create_token(paths)


def test_token_created_under_a_permissive_umask_is_still_private(ambient_home: Path) -> None:
    old = os.umask(0)
    try:
        _, path = load_or_create_token(resolve_paths(), name="umask-test")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_concurrent_creators_agree_on_one_token(ambient_home: Path) -> None:
    results: list[str] = []
    barrier = threading.Barrier(6)

    def create() -> None:
        barrier.wait()
        results.append(load_or_create_token(resolve_paths(), name="race")[0])

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1


def test_good_clients_header_and_subprotocol() -> None:
    async def body(port: int) -> None:
        url = f"ws://127.0.0.1:{port}"
        async with connect(url, additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            assert (await _roundtrip(ws, {"n": 1}))["echo"] == {"n": 1}
        # The browser way: token offered as a subprotocol, app protocol selected, Origin allowed.
        async with connect(url, subprotocols=browser_subprotocols(TOKEN), origin=EXT) as ws:
            assert ws.subprotocol == "ambient.v1"
            reply = await _roundtrip(ws, {"n": 2})
            assert reply == {"echo": {"n": 2}, "origin": EXT}

    run_with_server(body)


def test_wrong_or_missing_token_is_refused_before_upgrade() -> None:
    async def body(port: int) -> None:
        url = f"ws://127.0.0.1:{port}"
        assert await _status_of(url) == 401
        assert await _status_of(url, additional_headers={"Authorization": "Bearer " + "b" * 64}) == 401
        assert await _status_of(url, subprotocols=browser_subprotocols("b" * 64), origin=EHR) == 401
        assert await _status_of(url, subprotocols=["ambient.v1"], origin=EHR) == 401

    run_with_server(body)


def test_bad_origin_and_bad_host_are_refused_even_with_the_token() -> None:
    async def body(port: int) -> None:
        url = f"ws://127.0.0.1:{port}"
        protocols = browser_subprotocols(TOKEN)
        assert await _status_of(url, subprotocols=protocols, origin="https://evil.example.com") == 403
        assert await _status_of(url, subprotocols=protocols, origin="chrome-extension://otherid") == 403
        assert await _status_of(url, subprotocols=protocols, origin="null") == 403
        # DNS rebinding: a hostile name that resolves to 127.0.0.1 still sends its own Host.
        assert await _raw_status(port, f"attacker.example:{port}") == 403
        assert await _raw_status(port, f"127.0.0.1:{port}") == 101

    run_with_server(body)


def test_missing_origin_can_be_required() -> None:
    async def body(port: int) -> None:
        url = f"ws://127.0.0.1:{port}"
        assert await _status_of(url, additional_headers={"Authorization": f"Bearer {TOKEN}"}) == 403

    run_with_server(body, LocalSocketPolicy(allowed_origins=(EHR,), allow_missing_origin=False))


def _close_code(ws: ClientConnection) -> int | None:
    return ws.close_code


def test_bad_frames_close_only_that_connection_with_clear_codes() -> None:
    policy = LocalSocketPolicy(allowed_origins=(EHR,), max_message_bytes=4096, rate_per_s=5, burst=10)

    async def body(port: int) -> None:
        url = f"ws://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with connect(url, additional_headers=headers) as good:
            cases: list[tuple[Any, int]] = [
                ("x" * 5000, CLOSE_TOO_BIG),
                (b"\x00\x01", CLOSE_UNSUPPORTED_DATA),
                ("{not json", CLOSE_INVALID_MESSAGE),
                ("[1, 2]", CLOSE_INVALID_MESSAGE),
                ("[" * 2000 + "]" * 2000, CLOSE_INVALID_MESSAGE),  # nested past the parser's stack
            ]
            for payload, code in cases:
                async with connect(url, additional_headers=headers) as bad:
                    await bad.send(payload)
                    with pytest.raises(ConnectionClosed):
                        await asyncio.wait_for(bad.recv(), 5)
                    assert bad.close_code == code, payload[:10]
                    assert bad.close_reason
                # The server and the good client are unaffected.
                assert (await _roundtrip(good, {"still": "here"}))["echo"] == {"still": "here"}

            # A flood: far more than burst + rate allow, sent as fast as possible (bounded loop).
            async with connect(url, additional_headers=headers) as flood:
                with pytest.raises(ConnectionClosed):
                    for i in range(200):
                        await flood.send(json.dumps({"i": i}))
                    for _ in range(200):
                        await asyncio.wait_for(flood.recv(), 5)
                assert flood.close_code == CLOSE_RATE_LIMITED
            assert (await _roundtrip(good, {"after": "flood"}))["echo"] == {"after": "flood"}

    run_with_server(body, policy)


def test_connection_cap() -> None:
    policy = LocalSocketPolicy(allowed_origins=(EHR,), max_connections=2)

    async def body(port: int) -> None:
        url = f"ws://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with connect(url, additional_headers=headers), connect(url, additional_headers=headers):
            assert await _status_of(url, additional_headers=headers) == 503
        async with connect(url, additional_headers=headers) as ws:
            assert (await _roundtrip(ws, {"ok": 1}))["echo"] == {"ok": 1}

    run_with_server(body, policy)


def test_bound_address_is_loopback() -> None:
    async def main() -> None:
        server = LocalSocketServer(TOKEN, _echo)
        await server.start()
        try:
            assert server.addresses == ["127.0.0.1"]
        finally:
            await server.close()

    asyncio.run(main())


def test_binds_loopback_only() -> None:
    async def body(port: int) -> None:
        import socket

        # The port is open on 127.0.0.1 but not on the machine's other addresses.
        others = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)} - {
            "127.0.0.1",
            "127.0.1.1",
        }
        for address in others:
            with socket.socket() as sock:
                sock.settimeout(1)
                assert sock.connect_ex((address, port)) != 0

    run_with_server(body)
