"""The editor bridge end to end: Debian's chromium (driven by Playwright) on local pages with real
TinyMCE 8, CKEditor 5 and Quill 2 from npm, a textarea and a contenteditable; the draft delivered
through the real EditorSink over the real loopback WebSocket.

Each editor test types the clinician's own text with real keystrokes, moves the caret into the
middle with the arrow keys, delivers, and then checks that the draft sits at the caret, the
clinician's text is intact on both sides, and one Ctrl+Z removes the whole draft.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import json
import re
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ambient.config import resolve_paths
from ambient.ehr.editor_bridge.assets import build_userscript, extension_dir
from ambient.ehr.editor_bridge.bridge import BridgeThread, ClientInfo, EditorBridge
from ambient.ehr.editor_bridge.errors import RetryableDeliveryError
from ambient.ehr.editor_bridge.render import note_to_html, note_to_plain_text
from ambient.ehr.editor_bridge.settings import BridgeSettings
from ambient.ehr.editor_bridge.sink import EditorSink
from ambient.localsock import load_or_create_token
from ambient.types import (
    EvidenceSpan,
    NoteDraft,
    NoteSection,
    NoteSentence,
    Provenance,
    TemplateRef,
)

PAGES = Path(__file__).parent / "editor_pages"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FIRST = "Clinician wrote this first."
SECOND = "And this closing line."
MARKER = "Metformin 500 mg twice daily"
HOSTILE = '<img src=x onerror="window.__pwned=1">'

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (bash scripts/install.sh --dev)"
)
if not Path(CHROMIUM).exists():
    pytest.skip("Debian chromium is not installed (apt-get install chromium)", allow_module_level=True)
if not (PAGES / "node_modules" / "tinymce").is_dir():
    pytest.skip(
        "editor packages are not installed: run `npm ci` in tests/editor_pages (scripts/install.sh --dev)",
        allow_module_level=True,
    )


def make_note(encounter_id: str = "enc-42") -> NoteDraft:
    """A small drafted note; its sentences carry a marker and markup that must stay text."""

    def sentence(text: str, seg: int) -> NoteSentence:
        return NoteSentence(text, (EvidenceSpan(seg, seg * 4.0, seg * 4.0 + 3.5),), "patient")

    return NoteDraft(
        encounter_id=encounter_id,
        title="SOAP note",
        sections=(
            NoteSection("subjective", "Subjective", (sentence("Chest pain for two days.", 0),)),
            NoteSection("plan", "Plan", (sentence(f"{MARKER}.", 1), sentence(f"Read {HOSTILE} online.", 2))),
        ),
        provenance=Provenance(
            pipeline_version="ambient 0.1.0",
            drafter="ambient.soap_note.v1",
            template=TemplateRef("soap", "1.1.0", "0" * 64, "11506-3"),
            asr_model=None,
            input_sha256="1" * 64,
            transcript_sha256="2" * 64,
            created_at="2026-11-25T10:00:00+00:00",
        ),
    )


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def pages_url() -> Iterator[str]:
    """The test pages and their node_modules, served from 127.0.0.1 only."""
    handler = functools.partial(_QuietHandler, directory=str(PAGES))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
    yield chromium
    chromium.close()


class Events:
    """Encounter commands the page sent, as the agent's callback saw them."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, action: str, client: ClientInfo) -> None:
        self.seen.append((action, client.page_origin))


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def bridge(pages_url: str, events: Events) -> Iterator[BridgeThread]:
    token, _ = load_or_create_token(resolve_paths())
    policy = BridgeSettings(port=0, page_origins=(pages_url,)).policy()
    thread = BridgeThread(EditorBridge(token, policy, events), port=0)
    yield thread
    thread.close()


def _userscript_page(browser: Any, bridge: BridgeThread, url: str) -> Any:
    token, _ = load_or_create_token(resolve_paths())
    page = browser.new_page()
    page.add_init_script(script=build_userscript(token, bridge.port))
    page.goto(url)
    page.wait_for_function("window.editorReady === true", timeout=20000)
    return page


# How to put the mouse in each editor's editing area (TinyMCE edits inside an iframe).
EDITORS = {
    "textarea": ("textarea.html", "#note"),
    "contenteditable": ("contenteditable.html", "#note"),
    "tinymce": ("tinymce.html", "iframe"),
    "ckeditor5": ("ckeditor.html", ".ck-editor__editable"),
    "quill": ("quill.html", ".ql-editor"),
}


def _click_into(page: Any, adapter: str) -> None:
    _, selector = EDITORS[adapter]
    if adapter == "tinymce":
        page.frame_locator("iframe").locator("body").click()
    else:
        page.locator(selector).click()


def _type_clinician_text(page: Any, adapter: str) -> None:
    _click_into(page, adapter)
    page.keyboard.type(f"{FIRST} {SECOND}")
    for _ in range(len(f" {SECOND}")):
        page.keyboard.press("ArrowLeft")


def _text(page: Any) -> str:
    text: str = page.evaluate("window.editorText()")
    return text


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\u00a0", " ")).strip()


def _deliver_into(page: Any, adapter: str, bridge: BridgeThread, note: NoteDraft) -> EditorSink:
    _type_clinician_text(page, adapter)
    client = bridge.call(bridge.bridge.wait_for_editor(15), timeout_s=20)
    assert client.focused is not None and client.focused.adapter == adapter
    sink = EditorSink(bridge, wait_s=10, timeout_s=10)
    receipt = sink.deliver(note)
    assert receipt.sink == "editor" and receipt.encounter_id == note.encounter_id
    assert receipt.locations[0].startswith(f"editor:{adapter}:{client.page_origin}#")
    return sink


@pytest.mark.parametrize("adapter", list(EDITORS))
def test_draft_lands_at_caret_and_undoes_in_one_step(
    browser: Any, bridge: BridgeThread, pages_url: str, adapter: str
) -> None:
    page = _userscript_page(browser, bridge, f"{pages_url}/{EDITORS[adapter][0]}")
    try:
        note = make_note()
        sink = _deliver_into(page, adapter, bridge, note)
        assert sink.last is not None
        result = sink.last.result
        assert result.ok and result.adapter == adapter and result.where == "caret"
        assert result.inserted_chars >= len(MARKER)

        text = _text(page)
        # The clinician's text survived, the draft sits between its two halves, at the caret.
        assert text.count(FIRST) == 1 and text.count(SECOND) == 1
        assert text.index(FIRST) < text.index(MARKER) < text.index(SECOND)
        assert "Chest pain for two days." in text
        # Markup in note text arrived as characters, not as an element that ran script.
        assert HOSTILE in text
        assert page.evaluate("window.__pwned === undefined")
        assert page.evaluate("document.querySelectorAll('img').length") == 0

        # Delivering the same note again (a retry after a timeout) does not insert a second copy.
        sink.deliver(note)
        assert _text(page).count(MARKER) == 1

        if result.undo_steps == 1:
            page.keyboard.press("Control+z")
            page.wait_for_function(f"!window.editorText().includes({json.dumps(MARKER)})", timeout=5000)
            assert _flat(_text(page)) == _flat(f"{FIRST} {SECOND}")
        else:
            pytest.fail(f"{adapter} insert was not undoable in one step")
    finally:
        page.close()


def test_selection_is_kept_and_draft_goes_after_it(
    browser: Any, bridge: BridgeThread, pages_url: str
) -> None:
    page = _userscript_page(browser, bridge, f"{pages_url}/textarea.html")
    try:
        page.locator("#note").click()
        page.keyboard.type(f"{FIRST} {SECOND}")
        # The clinician has selected their first sentence: it must stay, the draft goes after it.
        page.evaluate(f"document.getElementById('note').setSelectionRange(0, {len(FIRST)})")
        bridge.call(bridge.bridge.wait_for_editor(15), timeout_s=20)
        sink = EditorSink(bridge, wait_s=10, timeout_s=10)
        sink.deliver(make_note())
        assert sink.last is not None and sink.last.result.where == "after-selection"
        text = _text(page)
        assert text.startswith(FIRST + "\n") and text.index(MARKER) < text.index(SECOND)
    finally:
        page.close()


def test_encounter_start_stop_from_the_page(
    browser: Any, bridge: BridgeThread, pages_url: str, events: Events
) -> None:
    page = _userscript_page(browser, bridge, f"{pages_url}/textarea.html")
    try:
        page.wait_for_function("window.__ambientEditorBridge.connected()", timeout=10000)
        page.evaluate(
            """() => { window.__acks = [];
                document.addEventListener('ambient-editor-bridge', e => {
                  if (e.detail.type === 'encounter_ack') window.__acks.push(e.detail); }); }"""
        )
        assert page.evaluate("window.__ambientEditorBridge.encounter('start')") is True
        page.evaluate(
            "document.dispatchEvent(new CustomEvent('ambient-encounter', {detail: {action: 'stop'}}))"
        )
        page.wait_for_function("window.__acks.length === 2", timeout=10000)
        assert events.seen == [("start", pages_url), ("stop", pages_url)]
        acks = page.evaluate("window.__acks")
        assert [(a["action"], a["ok"]) for a in acks] == [("start", True), ("stop", True)]
    finally:
        page.close()


def test_page_from_another_origin_is_refused(browser: Any, bridge: BridgeThread, pages_url: str) -> None:
    """A page the site did not list (here localhost instead of 127.0.0.1) never gets a connection."""
    other = pages_url.replace("127.0.0.1", "localhost")
    page = _userscript_page(browser, bridge, f"{other}/textarea.html")
    try:
        page.locator("#note").click()
        page.wait_for_timeout(1500)
        assert page.evaluate("window.__ambientEditorBridge.connected()") is False
        assert bridge.bridge.clients() == []
        with pytest.raises(RetryableDeliveryError, match="no note editor has focus"):
            EditorSink(bridge, wait_s=1, timeout_s=1).deliver(make_note())
    finally:
        page.close()


def test_silent_page_times_out_with_a_retryable_error(bridge: BridgeThread) -> None:
    """A client that takes the insert and never answers: a clear retryable error, bridge still up."""
    from websockets.asyncio.client import connect

    token, _ = load_or_create_token(resolve_paths())
    ready = threading.Event()
    stop = threading.Event()

    async def silent_page() -> None:
        async with connect(
            f"ws://127.0.0.1:{bridge.port}", additional_headers={"Authorization": f"Bearer {token}"}
        ) as ws:
            editor = {"id": "ed1", "adapter": "textarea", "label": "note"}
            await ws.send(
                json.dumps(
                    {
                        "type": "hello",
                        "client": "test",
                        "page_origin": "",
                        "editors": [editor],
                        "focused": "ed1",
                    }
                )
            )
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)

    runner = threading.Thread(target=asyncio.run, args=(silent_page(),), daemon=True)
    runner.start()
    assert ready.wait(10)
    try:
        with pytest.raises(RetryableDeliveryError, match="did not confirm the insert within 1 s"):
            EditorSink(bridge, wait_s=5, timeout_s=1).deliver(make_note())
    finally:
        stop.set()
        runner.join(10)


def test_plain_text_and_html_rendering() -> None:
    note = make_note()
    text = note_to_plain_text(note)
    assert "<sub>" not in text and "**" not in text and "# " not in text
    assert f"- {MARKER}. [00:04–00:07 · seg 1]" in text
    html = note_to_html(note)
    assert "&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;" in html
    assert "<img" not in html


def test_extension_inserts_via_service_worker(
    playwright: Any, pages_url: str, events: Events, tmp_path: Path
) -> None:
    """The real MV3 extension (MAIN-world core + relay + service worker holding the token)."""
    ext = str(extension_dir())
    token, _ = load_or_create_token(resolve_paths())
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"),
        executable_path=CHROMIUM,
        headless=True,
        args=[*FLAGS, f"--disable-extensions-except={ext}", f"--load-extension={ext}"],
    )
    try:
        workers = context.service_workers or [context.wait_for_event("serviceworker", timeout=15000)]
        ext_id = workers[0].url.split("/")[2]
        settings = BridgeSettings(port=0, page_origins=(pages_url,), extension_ids=(ext_id,))
        bridge = BridgeThread(EditorBridge(token, settings.policy(), events), port=0)
        try:
            workers[0].evaluate(
                "cfg => chrome.storage.local.set(cfg)",
                {"port": bridge.port, "token": token, "origins": [pages_url]},
            )
            page = context.new_page()
            page.goto(f"{pages_url}/quill.html")
            page.wait_for_function("window.editorReady === true", timeout=20000)
            page.wait_for_function("window.__ambientEditorBridge.connected()", timeout=15000)
            # The token never reaches the page's world.
            assert token not in page.content()
            assert page.evaluate("typeof chrome === 'undefined' || !chrome.storage")
            sink = _deliver_into(page, "quill", bridge, make_note())
            assert sink.last is not None and sink.last.page_origin == pages_url
            text = _text(page)
            assert text.index(FIRST) < text.index(MARKER) < text.index(SECOND)
            clients = bridge.bridge.clients()
            assert [c.client for c in clients] == ["extension"]
            page.close()

            # A site the options do not list: the worker never opens a socket for it.
            other = context.new_page()
            other.goto(f"{pages_url.replace('127.0.0.1', 'localhost')}/textarea.html")
            other.wait_for_function("window.editorReady === true", timeout=20000)
            other.locator("#note").click()
            other.wait_for_timeout(1500)
            assert other.evaluate("window.__ambientEditorBridge.connected()") is False
            assert all(c.page_origin == pages_url for c in bridge.bridge.clients())
            other.close()
        finally:
            bridge.close()
    finally:
        context.close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _textarea_page_and_note(browser: Any, pages_url: str, tmp_path: Path) -> tuple[Path, int, Any]:
    """A note file, a free bridge port, and a textarea page whose clinician has typed and placed the caret."""
    from ambient.notes.render import note_to_json

    note_file = tmp_path / "visit.note.json"
    note_file.write_text(json.dumps(note_to_json(make_note())), encoding="utf-8")
    port = _free_port()
    token, _ = load_or_create_token(resolve_paths())
    page = browser.new_page()
    page.add_init_script(script=build_userscript(token, port))
    page.goto(f"{pages_url}/textarea.html")
    page.wait_for_function("window.editorReady === true", timeout=20000)
    _type_clinician_text(page, "textarea")
    return note_file, port, page


def test_cli_insert_waits_for_the_page_inserts_and_exits(
    browser: Any, pages_url: str, tmp_path: Path
) -> None:
    """`ambient editor insert NOTE.json`: the real command in a child process, a real page."""
    import os
    import subprocess
    import sys

    note_file, port, page = _textarea_page_and_note(browser, pages_url, tmp_path)
    command = [sys.executable, "-m", "ambient", "editor", "insert", str(note_file)]
    command += ["--port", str(port), "--origin", pages_url, "--timeout", "20"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60, env=dict(os.environ))
    try:
        assert proc.returncode == 0, proc.stderr
        assert "into the textarea editor on " + pages_url in proc.stdout
        assert re.search(r"inserted \d+ characters \(caret\)", proc.stdout)
        assert f"ws://127.0.0.1:{port}" in proc.stderr
        text = _text(page)
        assert text.index(FIRST) < text.index(MARKER) < text.index(SECOND)
    finally:
        page.close()


def test_deliver_to_editor_goes_through_the_outbox_and_the_audit_trail(
    browser: Any, pages_url: str, tmp_path: Path
) -> None:
    """`ambient deliver NOTE.json --to editor:PORT`: outbox → bridge → real page, then audited."""
    import os
    import subprocess
    import sys

    note_file, port, page = _textarea_page_and_note(browser, pages_url, tmp_path)
    env = {**os.environ, "AMBIENT_EDITOR_ORIGINS": pages_url}
    command = [
        sys.executable,
        "-m",
        "ambient",
        "deliver",
        str(note_file),
        "--to",
        f"editor:{port}",
        "--wait",
        "20",
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=90, env=env)
    try:
        assert proc.returncode == 0, proc.stderr
        assert "delivered enc-42 to editor" in proc.stdout
        text = _text(page)
        assert text.index(FIRST) < text.index(MARKER) < text.index(SECOND)
        audit = subprocess.run(
            [sys.executable, "-m", "ambient", "audit", "verify"], capture_output=True, text=True, env=env
        )
        assert audit.returncode == 0, audit.stderr
        trail = "".join(p.read_text() for p in (resolve_paths().data_dir / "audit").glob("*.jsonl"))
        assert '"note.accepted_in_editor"' in trail and '"editor": "textarea"' in trail
    finally:
        page.close()


def test_cli_insert_without_a_page_fails_retryably(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from ambient.notes.render import note_to_json

    note_file = tmp_path / "visit.note.json"
    note_file.write_text(json.dumps(note_to_json(make_note())), encoding="utf-8")
    command = [sys.executable, "-m", "ambient", "editor", "insert", str(note_file)]
    command += ["--port", str(_free_port()), "--timeout", "1"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert proc.returncode == 7
    assert "[AMB-E601] no note editor has focus" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_serve_prints_port_and_token_file(ambient_home: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    port = _free_port()
    command = [sys.executable, "-m", "ambient", "editor", "serve", "--port", str(port)]
    command += ["--origin", "https://ehr.example.org"]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert lines[0].strip() == f"editor bridge listening on ws://127.0.0.1:{port}"
        token_file = Path(lines[1].strip().removeprefix("token file: "))
        assert token_file.is_file() and token_file.is_relative_to(ambient_home)
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        assert "https://ehr.example.org" in lines[2]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            # Ctrl-C stops it in well under a second on an idle machine (0.07 s measured); the
            # generous bound is for a CI machine whose other jobs starve this process, where
            # 15 s was once not enough. A hang still fails, and the process never outlives us.
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.skipif(sys.platform != "linux", reason="tgkill is Linux's")
def test_cli_serve_stops_when_ctrl_c_lands_on_another_thread(ambient_home: Path) -> None:
    """The kernel may hand a process's SIGINT to any of its threads. Python then only sets a flag,
    and an idle asyncio loop that nobody wakes sleeps on: `editor serve` hung until killed. Send
    the signal to the non-main thread on purpose, as the kernel sometimes does."""
    import ctypes
    import os
    import signal
    import subprocess

    port = _free_port()
    command = [sys.executable, "-m", "ambient", "editor", "serve", "--port", str(port)]
    command += ["--origin", "https://ehr.example.org"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for _ in range(4):
            proc.stdout.readline()  # up to "press Ctrl-C to stop": the loop is idle now
        others = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task") if int(t) != proc.pid]
        if not others:
            pytest.skip("the bridge process has one thread here; nothing to test")
        libc = ctypes.CDLL(None, use_errno=True)
        sys_tgkill = {"x86_64": 234, "aarch64": 131}.get(os.uname().machine)
        if sys_tgkill is None:
            pytest.skip(f"tgkill's syscall number is not known for {os.uname().machine}")
        assert libc.syscall(sys_tgkill, proc.pid, others[0], signal.SIGINT) == 0
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None and "editor bridge stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_editor_inside_a_same_origin_frame(browser: Any, bridge: BridgeThread, pages_url: str) -> None:
    """EHRs often put the note in a frame: the frame's own bridge instance gets the insert."""
    page = _userscript_page(browser, bridge, f"{pages_url}/framed.html")
    try:
        page.locator("#patient-search").click()  # the shell's own input: not where the note goes
        page.keyboard.type("smith")
        frame = page.frame_locator("#chart")
        frame.locator("#note").click()
        page.keyboard.type(f"{FIRST} {SECOND}")
        for _ in range(len(f" {SECOND}")):
            page.keyboard.press("ArrowLeft")
        client = bridge.call(bridge.bridge.wait_for_editor(15), timeout_s=20)
        assert client.focused is not None and client.focused.label == "progress-note"
        sink = EditorSink(bridge, wait_s=10, timeout_s=10)
        sink.deliver(make_note())
        chart = next(f for f in page.frames if f.url.endswith("/textarea.html"))
        note_text: str = chart.evaluate("document.getElementById('note').value")
        assert note_text.index(FIRST) < note_text.index(MARKER) < note_text.index(SECOND)
        assert page.locator("#patient-search").input_value() == "smith"
    finally:
        page.close()


@pytest.mark.parametrize("adapter", ["textarea", "tinymce"])
def test_autofocused_editor_nobody_clicked_gets_the_draft_at_the_end(
    browser: Any, bridge: BridgeThread, pages_url: str, adapter: str
) -> None:
    """The EHR focused its note itself (caret at the start of its template): append, don't prepend."""
    template = "Template: chief complaint."
    page = _userscript_page(browser, bridge, f"{pages_url}/{EDITORS[adapter][0]}?prefill={template}")
    try:
        client = bridge.call(bridge.bridge.wait_for_editor(15), timeout_s=20)
        assert client.focused is not None and client.focused.adapter == adapter
        sink = EditorSink(bridge, wait_s=10, timeout_s=10)
        sink.deliver(make_note())
        assert sink.last is not None and sink.last.result.where == "end"
        text = _text(page)
        assert text.startswith(template) and text.index(template) < text.index(MARKER)
        if adapter == "textarea":
            assert text.startswith(template + "\n\n")
    finally:
        page.close()
