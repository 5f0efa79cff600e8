"""A loopback-only WebSocket server that a browser tab or a local tool may talk to, and nothing else.

The editor bridge and the live agent both expose a WebSocket on the clinician's workstation. Any
web page the clinician opens can try to connect to ``ws://127.0.0.1:PORT`` (browsers allow
cross-origin WebSockets), and any local process can too, so every connection passes four gates
before the application sees a byte:

1. **Loopback bind.** The socket listens on 127.0.0.1 only; the ``Host`` header must name a loopback
   host, which defeats DNS rebinding (a hostile name resolving to 127.0.0.1 still sends its own
   name as ``Host``).
2. **Origin allow-list.** Browsers always send ``Origin`` and page scripts cannot forge it, so a
   random web page is refused (HTTP 403) unless a site listed it (an EHR origin) or it is one of our
   extensions (``chrome-extension://ID``). Non-browser clients send no ``Origin``; they are allowed
   only with the token, and only when the policy says so.
3. **Token.** A random secret created once under the config folder with mode 0600, so only the
   clinician's own account can read it. Tools send it as ``Authorization: Bearer TOKEN``; a browser
   ``WebSocket`` cannot set headers, so it offers it as a subprotocol ``ambient-token.TOKEN`` next to
   the application protocol, which the server selects. A wrong or missing token gets HTTP 401 and
   no WebSocket at all.
4. **Per-connection limits.** A message over ``max_message_bytes`` closes that connection with 1009,
   a binary frame with 1003 (unless the application reads :meth:`LocalConnection.frames`), a
   message that is not a JSON object with 1007, and more messages than the rate limit allows
   with 4429. Only that connection closes; the server and the other clients
   carry on.

The application gets a :class:`LocalConnection` whose :meth:`~LocalConnection.messages` yields
parsed JSON objects that already passed these checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import itertools
import json
import os
import secrets
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Subprotocol

from ambient.config import Paths
from ambient.errors import ConfigError, OutputError

LOOPBACK = "127.0.0.1"
TOKEN_PREFIX = "ambient-token."
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]"}

# Close codes a client may see. 1003/1007/1009 are RFC 6455's; 4xxx are ours (private range).
CLOSE_UNSUPPORTED_DATA = 1003  # binary frame where JSON text was expected
CLOSE_INVALID_MESSAGE = 1007  # not JSON, or not a JSON object, or not a message we know
CLOSE_POLICY = 1008  # the application refused the connection (e.g. page origin not allowed)
CLOSE_TOO_BIG = 1009  # message over max_message_bytes (sent by websockets itself)
CLOSE_TRY_AGAIN = 1013  # too many connections at once
CLOSE_RATE_LIMITED = 4429  # more messages than the per-connection rate limit allows


@dataclass(frozen=True)
class LocalSocketPolicy:
    """Who may connect and how much they may send. The defaults suit one clinician's browser."""

    allowed_origins: tuple[str, ...] = ()
    allow_missing_origin: bool = True  # local tools (no Origin header) may connect with the token
    subprotocol: str = "ambient.v1"
    max_message_bytes: int = 1 << 20
    rate_per_s: float = 20.0  # sustained messages per second per connection
    burst: int = 40  # messages allowed at once before the rate applies
    max_connections: int = 16
    idle_ping_s: float | None = 20.0


def token_path(paths: Paths, name: str = "localsock") -> Path:
    return paths.config_dir / f"{name}.token"


def load_or_create_token(paths: Paths, name: str = "localsock") -> tuple[str, Path]:
    """Return ``(token, file)``, creating the file once with mode 0600.

    The secret is written to a private temporary file opened with mode 0600 from the start (so it is
    never world-readable, not even between create and chmod) and then hard-linked to its final name:
    ``link`` fails if the name exists, so two processes starting at once agree on one token. An
    existing file that others can read is refused rather than trusted.
    """
    path = token_path(paths, name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise OutputError(f"cannot create {path.parent}: {exc.strerror or exc}") from None
    if not path.exists():
        token = secrets.token_hex(32)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(token + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        except OSError as exc:
            raise OutputError(f"cannot write the token file {path}: {exc.strerror or exc}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return _read_token(path), path


def _read_token(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"token file {path} is a symbolic link; remove it and run again") from None
        raise ConfigError(f"cannot read the token file {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "r", encoding="ascii", errors="replace") as handle:
        info = os.fstat(handle.fileno())
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"token file {path} can be read by other users (mode {stat.filemode(info.st_mode)}); "
                f"delete it so a private one is made, or run: chmod 600 {path}"
            )
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            raise ConfigError(f"token file {path} belongs to another user; delete it and run again")
        token = handle.read().strip()
    if len(token) < 32 or not all(c in "0123456789abcdef" for c in token):
        raise ConfigError(f"token file {path} is malformed; delete it so a new one is made")
    return token


class _TokenBucket:
    """Allows ``burst`` messages at once, then ``rate_per_s``; ``take`` says whether one more fits."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._last = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class LocalConnection:
    """One accepted client: JSON objects in, JSON objects out, limits already enforced."""

    def __init__(self, ws: ServerConnection, conn_id: int, policy: LocalSocketPolicy) -> None:
        self.id = conn_id
        self.origin: str | None = ws.request.headers.get("Origin") if ws.request else None
        self._ws = ws
        self._bucket = _TokenBucket(policy.rate_per_s, policy.burst)

    async def messages(self) -> AsyncIterator[dict[str, Any]]:
        """Yield each message as a dict; close the connection (with its code) on the first bad one."""
        async for message in self._frames(accept_binary=False):
            assert isinstance(message, dict)
            yield message

    async def frames(self) -> AsyncIterator[dict[str, Any] | bytes]:
        """Like :meth:`messages`, but binary frames (e.g. PCM audio) are yielded as ``bytes``.

        Size and rate limits apply to binary frames exactly as to text; the application checks
        what the bytes mean.
        """
        async for message in self._frames(accept_binary=True):
            yield message

    async def _frames(self, accept_binary: bool) -> AsyncIterator[dict[str, Any] | bytes]:
        try:
            async for raw in self._ws:
                if not self._bucket.take():
                    await self.close(CLOSE_RATE_LIMITED, "rate limit exceeded")
                    return
                if isinstance(raw, bytes):
                    if accept_binary:
                        yield raw
                        continue
                    await self.close(CLOSE_UNSUPPORTED_DATA, "binary frames are not accepted; send JSON text")
                    return
                try:
                    message = json.loads(raw)
                except (ValueError, RecursionError):  # RecursionError: "[[[[…" nested past the stack
                    await self.close(CLOSE_INVALID_MESSAGE, "message is not valid JSON")
                    return
                if not isinstance(message, dict):
                    await self.close(CLOSE_INVALID_MESSAGE, "message must be a JSON object")
                    return
                yield message
        except ConnectionClosed:
            return

    async def send(self, message: dict[str, Any]) -> None:
        await self._ws.send(json.dumps(message, ensure_ascii=False, separators=(",", ":")))

    async def close(self, code: int, reason: str) -> None:
        """Close with ``code``, discarding whatever the client still has queued.

        Without the drain, a flooding client's unread messages fill the receive queue, reading
        pauses, the client's close reply is never seen, and the close waits out its timeout.
        """
        closing = asyncio.ensure_future(self._ws.close(code, _close_reason(reason)))
        drain = asyncio.ensure_future(self._drain())
        try:
            await closing
        finally:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain

    async def _drain(self) -> None:
        # RuntimeError: websockets' ConcurrencyError when the reader is still waiting in messages().
        with contextlib.suppress(ConnectionClosed, RuntimeError):
            while True:
                await self._ws.recv()

    @property
    def open(self) -> bool:
        return self._ws.state is State.OPEN


Handler = Callable[[LocalConnection], Awaitable[None]]


class LocalSocketServer:
    """Serve ``handler`` on 127.0.0.1 behind the token, Origin and size/rate gates described above."""

    def __init__(self, token: str, handler: Handler, policy: LocalSocketPolicy | None = None) -> None:
        if len(token) < 32:
            raise ValueError("token too short")
        self._token = token
        self._handler = handler
        self.policy = policy or LocalSocketPolicy()
        self._server: Server | None = None
        self._ids = itertools.count(1)
        self._live = 0
        self.port = 0

    async def start(self, port: int = 0) -> int:
        """Listen on 127.0.0.1:``port`` (0: any free port) and return the port."""
        try:
            self._server = await serve(
                self._serve_one,
                LOOPBACK,
                port,
                process_request=self._check_request,
                select_subprotocol=self._select_subprotocol,
                max_size=self.policy.max_message_bytes,
                ping_interval=self.policy.idle_ping_s,
                compression=None,  # no deflate: a tiny compressed frame must not expand past our limits
            )
        except OSError as exc:
            raise OutputError(
                f"cannot listen on {LOOPBACK}:{port}: {exc.strerror or exc}; choose another port"
            ) from None
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    @property
    def addresses(self) -> list[str]:
        """The addresses actually bound: only ever 127.0.0.1."""
        return [str(sock.getsockname()[0]) for sock in self._server.sockets] if self._server else []

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    # ---- handshake gates -------------------------------------------------------------------------

    def _offered_token(self, request: Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[len("Bearer ") :].strip()
        for item in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
            item = item.strip()
            if item.startswith(TOKEN_PREFIX):
                return item[len(TOKEN_PREFIX) :]
        return None

    def _check_request(self, ws: ServerConnection, request: Request) -> Response | None:
        for name in ("Host", "Origin", "Authorization", "Sec-WebSocket-Protocol"):
            if len(request.headers.get_all(name)) > 1:
                return _refuse(ws, HTTPStatus.BAD_REQUEST, f"more than one {name} header")
        host = request.headers.get("Host", "")
        hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if hostname not in _LOOPBACK_HOSTS:
            return _refuse(ws, HTTPStatus.FORBIDDEN, "Host must be a loopback address")
        origin = request.headers.get("Origin")
        if origin is None:
            if not self.policy.allow_missing_origin:
                return _refuse(ws, HTTPStatus.FORBIDDEN, "Origin header required")
        elif origin not in self.policy.allowed_origins:
            return _refuse(ws, HTTPStatus.FORBIDDEN, "Origin not allowed")
        offered = self._offered_token(request)
        if offered is None or not hmac.compare_digest(offered.encode(), self._token.encode()):
            return _refuse(ws, HTTPStatus.UNAUTHORIZED, "missing or wrong token")
        if self._live >= self.policy.max_connections:
            return _refuse(ws, HTTPStatus.SERVICE_UNAVAILABLE, "too many connections")
        return None

    def _select_subprotocol(self, ws: ServerConnection, offered: Any) -> Subprotocol | None:
        # A browser that offered subprotocols fails the connection unless one is selected; select the
        # application protocol, never echo the token back.
        return Subprotocol(self.policy.subprotocol) if self.policy.subprotocol in offered else None

    async def _serve_one(self, ws: ServerConnection) -> None:
        self._live += 1
        try:
            await self._handler(LocalConnection(ws, next(self._ids), self.policy))
        finally:
            self._live -= 1


def _close_reason(reason: str) -> str:
    """At most 123 bytes of UTF-8 (a close frame is 125 bytes with the code): a reason quoting the
    client's own non-ASCII text, cut by characters, overflowed it and failed the close itself."""
    return reason.encode("utf-8")[:123].decode("utf-8", errors="ignore")


def _refuse(ws: ServerConnection, status: HTTPStatus, text: str) -> Response:
    return ws.respond(status, text + "\n")


def browser_subprotocols(token: str, subprotocol: str = "ambient.v1") -> list[str]:
    """What a browser passes to ``new WebSocket(url, protocols)``: the app protocol and the token."""
    return [subprotocol, TOKEN_PREFIX + token]
