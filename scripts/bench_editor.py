"""Editor-bridge latency: EditorSink.deliver() round trips into real editors in Debian's chromium.

For each editor page in tests/editor_pages (served on 127.0.0.1), the userscript build is loaded,
the clinician's text typed, and N distinct notes delivered one after another through the real
loopback WebSocket. Prints p50/p95 of the whole deliver() call (render → send → insert in the page
→ insert_result) and the characters each insert added, as a Markdown table.

    .venv/bin/python scripts/bench_editor.py --notes 20
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from ambient.config import resolve_paths
from ambient.ehr.editor_bridge.assets import build_userscript
from ambient.ehr.editor_bridge.bridge import BridgeThread, EditorBridge
from ambient.ehr.editor_bridge.settings import BridgeSettings
from ambient.ehr.editor_bridge.sink import EditorSink
from ambient.localsock import load_or_create_token
from ambient.types import EvidenceSpan, NoteDraft, NoteSection, NoteSentence, Provenance, TemplateRef

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchdoc import machine, write_section

PAGES = Path(__file__).resolve().parents[1] / "tests" / "editor_pages"
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
EDITORS = {
    "textarea": ("textarea.html", "#note"),
    "contenteditable": ("contenteditable.html", "#note"),
    "tinymce": ("tinymce.html", None),
    "ckeditor5": ("ckeditor.html", ".ck-editor__editable"),
    "quill": ("quill.html", ".ql-editor"),
}


def synthetic_note(i: int) -> NoteDraft:
    """A SOAP-shaped note of about 1.5 kB of text; distinct per i so no insert is deduplicated."""
    sentences = tuple(
        NoteSentence(
            f"Finding {i}.{k}: blood pressure 150 over 90, metformin 500 mg.", (EvidenceSpan(k, k, k + 3),)
        )
        for k in range(6)
    )
    sections = tuple(NoteSection(key, key.title(), sentences) for key in ("subjective", "objective", "plan"))
    prov = Provenance("bench", "bench", TemplateRef("soap", "1", "0" * 64), None, "1" * 64, "2" * 64, "now")
    return NoteDraft(f"bench-{i}", "SOAP note", sections, prov)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=20, help="deliveries per editor (max 200)")
    args = parser.parse_args()
    count = max(1, min(args.notes, 200))
    if not (PAGES / "node_modules").is_dir():
        print("run `npm ci` in tests/editor_pages first (bash scripts/install.sh --dev)", file=sys.stderr)
        return 2
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    os.environ.setdefault("AMBIENT_HOME", tempfile.mkdtemp(prefix="ambient-bench-"))
    token, _ = load_or_create_token(resolve_paths())
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(PAGES)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{httpd.server_address[1]}"
    bridge = BridgeThread(EditorBridge(token, BridgeSettings(0, (origin,)).policy()), 0)
    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=FLAGS)
        for adapter, (page_file, selector) in EDITORS.items():
            page = browser.new_page()
            page.add_init_script(script=build_userscript(token, bridge.port))
            page.goto(f"{origin}/{page_file}")
            page.wait_for_function("window.editorReady === true", timeout=20000)
            if selector is None:
                page.frame_locator("iframe").locator("body").click()
            else:
                page.locator(selector).click()
            page.keyboard.type("Clinician text. ")
            sink = EditorSink(bridge, wait_s=15, timeout_s=15)
            times_ms, chars = [], []
            for i in range(count):
                start = time.perf_counter()
                sink.deliver(synthetic_note(i))
                times_ms.append((time.perf_counter() - start) * 1000)
                assert sink.last is not None
                chars.append(sink.last.result.inserted_chars)
            page.close()
            q = statistics.quantiles(times_ms, n=20) if len(times_ms) > 1 else times_ms * 19
            rows.append((adapter, statistics.median(times_ms), q[18], statistics.median(chars)))
        browser.close()
    bridge.close()
    httpd.shutdown()
    lines = [
        "## Editor bridge: insert latency (`scripts/bench_editor.py`)",
        "",
        f"`scripts/bench_editor.py --notes {count}` ({datetime.now(UTC).isoformat(timespec='seconds')}; "
        f"{machine()}): Debian chromium headless, userscript build, real editors from `tests/editor_pages`.",
        "Time of the whole `EditorSink.deliver()` call: render the note, send it over the loopback "
        "WebSocket, insert at the caret in the page, receive `insert_result`. Distinct synthetic SOAP "
        "notes (about 1.5 k characters each) one after another into the same editor.",
        "",
        "| editor | deliveries | p50 ms | p95 ms | chars per insert (median) |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {a} | {count} | {p50:.1f} | {p95:.1f} | {ch:.0f} |" for a, p50, p95, ch in rows]
    print("\n".join(lines))
    print(f"wrote {write_section('editor', chr(10).join(lines))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
