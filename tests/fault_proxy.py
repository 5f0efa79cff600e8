"""Fault-injecting loopback proxies in front of the real EHR peers (never a replacement for them).

:class:`HttpFaultProxy` sits between a sink and the real sekmet FHIR server: by default it
forwards every request and relays the answer untouched; a queued :class:`HttpFault` makes the next
request slow (the request still reaches the server, the answer comes late), or answers it with a
chosen status, headers and body instead (a 500, a 429 with ``Retry-After``, a body that is not
FHIR). :class:`MllpFaultProxy` does the same for MLLP in front of the ``hl7`` package's listener:
close the connection half-way through the message, or half-way through the ACK, or never answer.
Both bind 127.0.0.1 only and count what passed, so tests can assert what the peer really saw.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from tests.ehr_peers import free_port

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


@dataclass(frozen=True)
class HttpFault:
    """One request's fate. ``delay_s`` then forward; or, with ``status``, answer without forwarding."""

    delay_s: float = 0.0
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    forward_first: bool = False  # with ``status``: the server still gets (and acts on) the request


@dataclass
class HttpFaultProxy:
    upstream: str  # e.g. http://127.0.0.1:PORT (no path: the path is relayed as is)
    port: int = field(default_factory=free_port)
    faults: deque[HttpFault] = field(default_factory=deque)
    always: HttpFault | None = None  # applied to every request while set (after queued faults)
    forwarded: int = 0
    answered_by_proxy: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    def start(self) -> None:
        proxy = self
        client = httpx.Client(timeout=30)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet: the test output stays readable
                return

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy.faults.popleft() if proxy.faults else proxy.always
                if fault is not None and fault.status is not None:
                    if fault.forward_first:
                        self._forward(body)
                    time.sleep(fault.delay_s)
                    proxy.answered_by_proxy += 1
                    self._answer(fault.status, list(fault.headers), fault.body)
                    return
                upstream = self._forward(body)  # slow: the server acts now, its answer comes late
                time.sleep(fault.delay_s if fault is not None else 0.0)
                kept = [(k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP]
                self._answer(upstream.status_code, kept, upstream.content)

            def _forward(self, body: bytes) -> httpx.Response:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
                upstream = client.request(
                    self.command, proxy.upstream + self.path, headers=headers, content=body
                )
                proxy.forwarded += 1
                return upstream

            def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                try:
                    self.send_response(status)
                    for name, value in headers:
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = _relay

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


START, END = b"\x0b", b"\x1c\x0d"


@dataclass
class MllpFaultProxy:
    """``mode``: pass | drop_request (close after half the message) | cut_ack (relay half the ACK,
    then close) | silent (read the message, never answer, keep the connection open)."""

    upstream_port: int
    mode: str = "pass"
    port: int = field(default_factory=free_port)
    connections: int = 0
    relayed: int = 0
    _server: socketserver.ThreadingTCPServer | None = None

    def start(self) -> None:
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy.connections += 1
                sock: socket.socket = self.request
                sock.settimeout(30)
                data = b""
                while END not in data:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                    if proxy.mode == "drop_request" and len(data) > 20:
                        return  # the connection closes with the message half-read
                if proxy.mode == "silent":
                    time.sleep(30)
                    return
                with socket.create_connection(("127.0.0.1", proxy.upstream_port), timeout=10) as up:
                    up.sendall(data)
                    answer = b""
                    while END not in answer:
                        chunk = up.recv(65536)
                        if not chunk:
                            break
                        answer += chunk
                proxy.relayed += 1
                sock.sendall(answer[: len(answer) // 2] if proxy.mode == "cut_ack" else answer)

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
