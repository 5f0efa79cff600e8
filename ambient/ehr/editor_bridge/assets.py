"""The browser side, shipped as package data: the extension folder and the userscript built from it.

The userscript and the bookmarklet are ``extension/core.js`` (the one file with every editor
adapter) plus a line that connects it to the loopback WebSocket with the token, so the two
deliveries can never drift apart.
"""

from __future__ import annotations

import json
import urllib.parse
from importlib import resources
from pathlib import Path

from ambient.ehr.editor_bridge.settings import DEFAULT_PORT


def extension_dir() -> Path:
    """The unpacked extension (load it from chrome://extensions → Load unpacked)."""
    return Path(str(resources.files("ambient.ehr.editor_bridge") / "extension"))


def core_script() -> str:
    return (extension_dir() / "core.js").read_text(encoding="utf-8")


def _bootstrap(port: int, token: str) -> str:
    config = json.dumps({"url": f"ws://127.0.0.1:{port}", "token": token})
    return f"window.__ambientEditorBridge && window.__ambientEditorBridge.connectWebSocket({config});\n"


def build_userscript(token: str, port: int = DEFAULT_PORT, origins: tuple[str, ...] = ()) -> str:
    """A Tampermonkey/Violentmonkey script for ``origins`` (the token is inside: keep the file private)."""
    matches = "".join(f"// @match        {o}/*\n" for o in origins) or "// @match        https://*/*\n"
    header = (
        "// ==UserScript==\n"
        "// @name         ambient editor bridge\n"
        "// @version      0.1.0\n"
        "// @description  Insert the ambient draft at the caret of the EHR note editor\n"
        f"{matches}"
        "// @grant        none\n"
        "// @run-at       document-idle\n"
        "// ==/UserScript==\n"
    )
    return header + core_script() + _bootstrap(port, token)


def build_bookmarklet(token: str, port: int = DEFAULT_PORT) -> str:
    """A ``javascript:`` URL for sites where neither an extension nor a userscript manager is allowed."""
    return "javascript:" + urllib.parse.quote(core_script() + _bootstrap(port, token) + "void 0;", safe="")
