"""Local access from a real browser: a page from another origin cannot use the agent or the bridge.

Debian's chromium (Playwright, ``executable_path``) loads a page from a loopback HTTP server. Two
servers on two ports give two origins: one the site listed, one it did not. From each page,
``new WebSocket(...)`` tries the live agent (a real ``ambient agent`` process) and the editor
bridge with no token, a wrong token and the right token. Only the listed origin *with* the right
token gets a connection (the control that shows the test can fail); everything else is refused at
the handshake, before the application sees a byte. Over an accepted connection, a message over the
size cap closes it with 1009 and a flood past the rate cap with 4429, and the server carries on.
"""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ambient.agent.server import MAX_FRAME_BYTES
from ambient.config import resolve_paths
from ambient.ehr.editor_bridge.bridge import BridgeThread, EditorBridge
from ambient.ehr.editor_bridge.settings import SUBPROTOCOL, BridgeSettings
from ambient.localsock import CLOSE_RATE_LIMITED, CLOSE_TOO_BIG, CLOSE_UNSUPPORTED_DATA, TOKEN_PREFIX
from ambient.localsock import load_or_create_token as bridge_token
from tests.reliability import record
from tests.test_agent import AgentProc, free_port, start_agent, stop_agent

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
pytestmark = [pytest.mark.browser, pytest.mark.reliability]
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian chromium is not installed (apt-get install chromium)", allow_module_level=True)

PAGE = b"""<!doctype html><meta charset="utf-8"><title>some web page</title>
<script>
// Open a WebSocket the way any page can; report whether it opened, or how it closed.
window.probe = (url, protocols) => new Promise((resolve) => {
  let opened = false;
  const ws = new WebSocket(url, protocols);
  ws.onopen = () => { opened = true; resolve({opened: true, protocol: ws.protocol}); ws.close(); };
  ws.onclose = (e) => { if (!opened) resolve({opened: false, code: e.code}); };
  setTimeout(() => resolve({opened, timeout: true}), 10000);
});
// Over an accepted connection: one oversized message, a flood, or a binary frame.
window.abuse = (url, protocols, kind, n, text, first) => new Promise((resolve) => {
  const ws = new WebSocket(url, protocols);
  ws.onopen = () => {
    if (kind === "big") ws.send("x".repeat(n));
    else if (kind === "binary") ws.send(new Uint8Array(n));
    else { if (first) ws.send(first); for (let i = 0; i < n; i++) ws.send(text); }
  };
  ws.onclose = (e) => resolve({code: e.code, reason: e.reason});
  setTimeout(() => resolve({timeout: true}), 20000);
});
</script>"""


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def origins() -> Iterator[tuple[str, str]]:
    """(listed, foreign): the same page from two loopback ports, i.e. two origins."""
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    listed, foreign = (f"http://127.0.0.1:{s.server_address[1]}" for s in servers)
    yield listed, foreign
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, origins: tuple[str, str]) -> Iterator[AgentProc]:
    home = tmp_path_factory.mktemp("access-agent")
    running = start_agent(home, free_port(), {"AMBIENT_AGENT_ORIGINS": origins[0]})
    yield running
    stop_agent(running)


@pytest.fixture(scope="module")
def bridge(origins: tuple[str, str]) -> Iterator[tuple[BridgeThread, str]]:
    token, _ = bridge_token(resolve_paths())
    thread = BridgeThread(
        EditorBridge(token, BridgeSettings(port=0, page_origins=(origins[0],)).policy()), port=0
    )
    yield thread, token
    thread.close()


def page_at(browser: Any, origin: str) -> Any:
    page = browser.new_page()
    page.goto(f"{origin}/")
    return page


def attempts(token: str, subprotocol: str) -> dict[str, list[str]]:
    return {
        "no token": [subprotocol],
        "wrong token": [subprotocol, TOKEN_PREFIX + "0" * len(token)],
        "right token": [subprotocol, TOKEN_PREFIX + token],
    }


TALLY = {"refused": 0, "tried": 0, "caps": 0, "attacks": 0, "blocked": 0}


def check_handshakes(browser: Any, origins: tuple[str, str], url: str, token: str, subprotocol: str) -> None:
    listed, foreign = origins
    for origin in (listed, foreign):
        page = page_at(browser, origin)
        try:
            for name, protocols in attempts(token, subprotocol).items():
                result = page.evaluate("([u, p]) => window.probe(u, p)", [url, protocols])
                allowed = origin == listed and name == "right token"
                TALLY["tried"] += 1
                TALLY["refused"] += not result["opened"]
                TALLY["attacks"] += not allowed  # the listed origin with the token is the control
                TALLY["blocked"] += not allowed and not result["opened"]
                assert result["opened"] is allowed, (origin, name, result)
                if allowed:  # the token is never echoed back as the selected subprotocol
                    assert result["protocol"] == subprotocol
        finally:
            page.close()


def check_caps(
    browser: Any, origin: str, url: str, token: str, subprotocol: str, big: int, flood: str, first: str = ""
) -> None:
    protocols = attempts(token, subprotocol)["right token"]
    page = page_at(browser, origin)
    try:
        too_big = page.evaluate("([u, p, n]) => window.abuse(u, p, 'big', n, '')", [url, protocols, big + 1])
        assert too_big.get("code") == CLOSE_TOO_BIG, too_big
        flooded = page.evaluate(
            "([u, p, t, f]) => window.abuse(u, p, 'flood', 3000, t, f)", [url, protocols, flood, first]
        )
        assert flooded.get("code") == CLOSE_RATE_LIMITED, flooded
        # and the server still takes a well-behaved connection afterwards
        again = page.evaluate("([u, p]) => window.probe(u, p)", [url, protocols])
        assert again["opened"] is True
        TALLY["caps"] += 2
    finally:
        page.close()


def test_agent_refuses_foreign_origins_and_bad_tokens(
    browser: Any, origins: tuple[str, str], agent: AgentProc
) -> None:
    check_handshakes(browser, origins, f"ws://127.0.0.1:{agent.port}", agent.token, "ambient.v1")
    assert agent.proc.poll() is None


def test_agent_caps_message_size_and_rate(browser: Any, origins: tuple[str, str], agent: AgentProc) -> None:
    status = json.dumps({"type": "status"})
    check_caps(
        browser,
        origins[0],
        f"ws://127.0.0.1:{agent.port}",
        agent.token,
        "ambient.v1",
        MAX_FRAME_BYTES,
        status,
    )
    assert agent.proc.poll() is None


def test_bridge_refuses_foreign_origins_and_bad_tokens(
    browser: Any, origins: tuple[str, str], bridge: tuple[BridgeThread, str]
) -> None:
    thread, token = bridge
    check_handshakes(browser, origins, f"ws://127.0.0.1:{thread.port}", token, SUBPROTOCOL)
    assert thread.bridge.clients() == []


def test_bridge_caps_message_size_rate_and_binary(
    browser: Any, origins: tuple[str, str], bridge: tuple[BridgeThread, str]
) -> None:
    thread, token = bridge
    url = f"ws://127.0.0.1:{thread.port}"
    limit = thread.bridge.policy.max_message_bytes
    # the bridge wants a hello first, naming the page's own origin
    hello = json.dumps({"type": "hello", "client": "page", "page_origin": origins[0], "editors": []})
    check_caps(browser, origins[0], url, token, SUBPROTOCOL, limit, json.dumps({"type": "ping"}), hello)
    protocols = attempts(token, SUBPROTOCOL)["right token"]
    page = page_at(browser, origins[0])
    try:
        binary = page.evaluate("([u, p]) => window.abuse(u, p, 'binary', 16, '')", [url, protocols])
    finally:
        page.close()
    assert binary.get("code") == CLOSE_UNSUPPORTED_DATA, binary


def test_access_recorded() -> None:
    record(
        "access",
        "browser: foreign origin, missing or wrong token",
        injected=TALLY["attacks"],
        survived=TALLY["blocked"],
        detail=f"{TALLY['refused']} of {TALLY['tried']} handshakes refused (only the listed origin with "
        f"the token opens); {TALLY['caps']} size/rate caps enforced",
    )
