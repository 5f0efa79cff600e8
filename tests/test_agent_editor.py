"""The agent hosts the editor bridge: Debian's chromium (Playwright) on a local textarea page, a
real ``ambient agent`` process, the real model.

One port owner: the page connects to the bridge the agent serves. The page's encounter start
starts an encounter in the agent (replaying an espeak clip, as ``[agent] editor_source`` says),
its stop makes the note, and the note goes into the page's editor through the agent's own bridge
(``[delivery] targets = editor``). Then ``ambient deliver --to editor`` from another process
inserts a second note through the same agent instead of binding the port itself.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from ambient.agent.client import AgentClient
from ambient.cli.main import main
from ambient.config import resolve_paths
from ambient.ehr.editor_bridge.assets import build_userscript
from ambient.ehr.editor_bridge.render import note_to_plain_text
from ambient.localsock import load_or_create_token
from ambient.notes.render import load_note_file, note_to_json
from tests.test_agent import free_port, start_agent, stop_agent
from tests.test_editor_bridge import MARKER, browser, make_note, pages_url, playwright  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.model, pytest.mark.espeak]


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_page_starts_and_stops_an_encounter_and_gets_its_note_through_the_agent(
    browser: Any,  # noqa: F811
    pages_url: str,  # noqa: F811
    ambient_home: Path,
    speech_wav: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    agent_port, bridge_port = free_port(), free_port()
    env = {
        "AMBIENT_EDITOR_PORT": str(bridge_port),
        "AMBIENT_EDITOR_ORIGINS": pages_url,
        "AMBIENT_AGENT_EDITOR_SOURCE": f"replay:{speech_wav}",
        "AMBIENT_DELIVERY_TARGETS": "editor",
    }
    agent = start_agent(ambient_home, agent_port, env)
    page = browser.new_page()
    try:
        assert f"editor bridge on 127.0.0.1:{bridge_port}" in agent.log.read_text()
        token, _ = load_or_create_token(resolve_paths())  # the bridge's token, as the page holds it
        page.add_init_script(script=build_userscript(token, bridge_port))
        page.goto(f"{pages_url}/textarea.html")
        page.wait_for_function("window.editorReady === true", timeout=20000)
        page.wait_for_function("window.__ambientEditorBridge.connected()", timeout=10000)
        page.locator("#note").click()
        page.keyboard.type("Seen today.")
        page.evaluate(
            """() => { window.__acks = [];
                document.addEventListener('ambient-editor-bridge', e => {
                  if (e.detail.type === 'encounter_ack') window.__acks.push(e.detail); }); }"""
        )
        # start from the page: the agent's encounter control starts recording
        page.evaluate("window.__ambientEditorBridge.encounter('start')")
        page.wait_for_function("window.__acks.length === 1", timeout=20000)
        assert page.evaluate("window.__acks[0].ok") is True
        with AgentClient(resolve_paths(), agent_port) as client:
            status = client.request({"type": "status"}, "status")
        assert status["encounter"]["source"] == "replay" and status["editor_bridge_port"] == bridge_port
        duration_s = speech_wav.stat().st_size / 32000
        time.sleep(duration_s + 3)  # the clip plays in real time
        # stop from the page: the note is drafted and inserted into this page's editor
        page.evaluate("window.__ambientEditorBridge.encounter('stop')")
        page.wait_for_function("window.__acks.length === 2 && window.__acks[1].ok", timeout=20000)
        page.wait_for_function("window.editorText().length > 40", timeout=60000)
        inbox_note = next((ambient_home / "data" / "inbox").glob("*.note.json"))
        note = load_note_file(inbox_note)
        text = page.evaluate("window.editorText()")
        assert text.startswith("Seen today.")
        assert _flat(note_to_plain_text(note)) in _flat(text)  # the whole draft, after the clinician's text

        # `ambient deliver --to editor` in another process goes through the agent (one port owner)
        other = make_note("enc-cli")
        note_file = ambient_home / "enc-cli.note.json"
        note_file.write_text(json.dumps(note_to_json(other)))
        monkeypatch.setenv("AMBIENT_AGENT_PORT", str(agent_port))
        monkeypatch.setenv("AMBIENT_EDITOR_PORT", str(bridge_port))
        assert main(["deliver", str(note_file), "--to", "editor", "--wait", "60"]) == 0, capsys.readouterr()
        assert f"editor:textarea:{pages_url}" in capsys.readouterr().out
        assert page.evaluate("window.editorText()").count(MARKER) == 1
    finally:
        page.close()
        stop_agent(agent)
