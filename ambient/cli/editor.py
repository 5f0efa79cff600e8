"""``ambient editor``: serve the editor bridge, insert a note into the focused editor, and hand out
the browser side (extension folder, userscript, bookmarklet)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from ambient.atomic import atomic_write_text
from ambient.config import resolve_paths
from ambient.ehr.editor_bridge.assets import build_bookmarklet, build_userscript, extension_dir
from ambient.ehr.editor_bridge.bridge import ClientInfo, EditorBridge
from ambient.ehr.editor_bridge.settings import BridgeSettings, bridge_settings
from ambient.ehr.editor_bridge.sink import EditorSink, start_bridge
from ambient.localsock import load_or_create_token
from ambient.notes.render import load_note_file


def _add_bridge_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, help="loopback port (default 47615 or $AMBIENT_EDITOR_PORT)")
    parser.add_argument(
        "--origin",
        action="append",
        default=[],
        metavar="URL",
        help="an EHR page origin allowed to connect, e.g. https://ehr.example.org (repeatable)",
    )
    parser.add_argument(
        "--extension-id",
        action="append",
        default=[],
        metavar="ID",
        help="the installed extension's id from chrome://extensions (repeatable)",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "editor",
        help="put drafts into the EHR's note editor (browser bridge)",
        description="A loopback WebSocket that the browser extension or userscript in the EHR page "
        "connects to; drafts are inserted at the caret of the focused note editor.",
    )
    cmds = parser.add_subparsers(dest="editor_command", required=True, metavar="SUBCOMMAND")

    serve = cmds.add_parser("serve", help="run the bridge in the foreground until Ctrl-C")
    _add_bridge_flags(serve)
    serve.set_defaults(func=run_serve)

    insert = cmds.add_parser("insert", help="wait for a focused editor, insert NOTE.json, exit")
    insert.add_argument("note", type=Path, help="a note from `ambient note --format json`")
    insert.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="seconds to wait for a focused editor"
    )
    _add_bridge_flags(insert)
    insert.set_defaults(func=run_insert)

    script = cmds.add_parser(
        "userscript", help="write the userscript (or bookmarklet) for sites without the extension"
    )
    script.add_argument("-o", "--output", help="file to write (mode 0600: it contains the token)")
    script.add_argument("--bookmarklet", action="store_true", help="a javascript: URL instead")
    _add_bridge_flags(script)
    script.set_defaults(func=run_userscript)

    ext = cmds.add_parser("extension", help="print the extension folder to load in chrome://extensions")
    ext.set_defaults(func=run_extension)


def _settings(args: argparse.Namespace) -> BridgeSettings:
    return bridge_settings(port=args.port, origins=args.origin, extension_ids=args.extension_id)


def _describe(settings: BridgeSettings) -> list[str]:
    allowed = [*settings.page_origins, *(f"chrome-extension://{i}" for i in settings.extension_ids)]
    if not allowed:
        return ["warning: no browser origin is allowed; pass --origin URL or --extension-id ID"]
    return [f"allowed origins: {', '.join(allowed)}"]


def run_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    token, token_file = load_or_create_token(resolve_paths())

    def on_encounter(action: str, client: ClientInfo) -> None:
        # Origins only: never the page's path or title, which can name a patient.
        print(f"encounter {action} requested by a page on {client.page_origin or 'a local tool'}", flush=True)

    async def serve() -> None:
        # The loop's own signal handlers, not asyncio.run's KeyboardInterrupt: they wake the loop
        # through its self-pipe. An idle bridge sleeps in epoll with no timer due, and a Ctrl-C
        # that the kernel hands to the process's other thread set Python's flag without waking
        # it, so `editor serve` hung until killed (two of four full test runs, 2026-12-05).
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        bridge = EditorBridge(token, settings.policy(), on_encounter)
        port = await bridge.start(settings.port)
        print(f"editor bridge listening on ws://127.0.0.1:{port}", flush=True)
        print(f"token file: {token_file}", flush=True)
        for line in _describe(settings):
            print(line, flush=True)
        print("press Ctrl-C to stop", flush=True)
        try:
            await stop.wait()
        finally:
            await bridge.close()

    asyncio.run(serve())
    print("editor bridge stopped", file=sys.stderr)
    return 0


def run_insert(args: argparse.Namespace) -> int:
    note = load_note_file(args.note)
    settings = _settings(args)
    thread = start_bridge(settings)
    try:
        print(
            f"waiting up to {args.timeout:g} s for a focused note editor on ws://127.0.0.1:{thread.port}",
            file=sys.stderr,
            flush=True,
        )
        for line in _describe(settings):
            print(line, file=sys.stderr, flush=True)
        sink = EditorSink(thread, wait_s=args.timeout)
        receipt = sink.deliver(note)
    finally:
        thread.close()
    assert sink.last is not None
    result = sink.last.result
    print(
        f"inserted {result.inserted_chars} characters ({result.where}) into the {result.adapter} editor "
        f"on {sink.last.page_origin or 'a local client'}; undo steps: {result.undo_steps}"
    )
    print(f"receipt: {receipt.locations[0]} note sha256 {receipt.note_sha256[:12]}")
    return 0


def run_userscript(args: argparse.Namespace) -> int:
    settings = _settings(args)
    token, _ = load_or_create_token(resolve_paths())
    if args.bookmarklet:
        text = build_bookmarklet(token, settings.port)
    else:
        text = build_userscript(token, settings.port, settings.page_origins)
    if args.output and args.output != "-":
        atomic_write_text(Path(args.output), text)  # mkstemp + rename: the file is 0600
        print(f"wrote {args.output} (it contains the bridge token: keep it private)", file=sys.stderr)
    else:
        sys.stdout.write(text + ("" if text.endswith("\n") else "\n"))
    return 0


def run_extension(args: argparse.Namespace) -> int:
    token_file = load_or_create_token(resolve_paths())[1]
    print(extension_dir())
    print(
        "Load it in chrome://extensions (Developer mode → Load unpacked), then open its options and "
        f"paste the contents of {token_file} and your EHR origin. Start the bridge with "
        "`ambient editor serve --extension-id ID --origin URL`.",
        file=sys.stderr,
    )
    return 0
