"""``ambient encounter start|pause|resume|stop|status``: control the running agent.

    ambient encounter start [--encounter-id ID] [--patient Patient/1] [--device N | --replay FILE]
    ambient encounter pause | resume
    ambient encounter stop [--wait 60]      # waits for the note; prints where it was written
    ambient encounter status [--json]

The command speaks the agent's WebSocket protocol with the token from the agent's token file;
with no agent running it says so and exits with code 7.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ambient.agent.client import AgentClient
from ambient.config import load_settings, resolve_paths


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "encounter",
        help="start, pause, resume, stop a live encounter in the running agent; show its status",
        description="Control the running agent (`ambient agent`).",
    )
    parser.add_argument("action", choices=["start", "pause", "resume", "stop", "status"])
    parser.add_argument("--port", type=int, help="agent port (default: [agent] port)")
    parser.add_argument("--encounter-id", help="start: encounter id (default: enc-<UTC time>)")
    parser.add_argument("--patient", help="start: patient reference, e.g. Patient/123")
    parser.add_argument("--author", help="start: clinician reference, e.g. Practitioner/7")
    parser.add_argument("--encounter-ref", help="start: EHR encounter reference, e.g. Encounter/456")
    parser.add_argument("--device", help="start: microphone (index or part of its name)")
    parser.add_argument("--replay", type=Path, metavar="FILE", help="start: replay a recording instead")
    parser.add_argument("--speed", type=float, default=1.0, help="start: replay speed (1.0 = real time)")
    parser.add_argument("--wait", type=float, default=120.0, help="stop: seconds to wait for the note")
    parser.add_argument("--json", action="store_true", help="print the agent's reply as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    paths = resolve_paths()
    settings = load_settings(paths, config_file=Path(args.config) if args.config else None)
    port = args.port or settings.agent.port
    with AgentClient(paths, port) as client:
        reply = _act(client, args)
    if args.json:
        print(json.dumps(reply, indent=2))
    else:
        print(_describe(reply))
    return 0


def _act(client: AgentClient, args: argparse.Namespace) -> dict[str, Any]:
    if args.action == "status":
        return client.request({"type": "status"}, "status")
    if args.action in ("pause", "resume"):
        return client.request({"type": args.action}, f"{args.action}d")
    if args.action == "stop":
        return client.request({"type": "stop"}, "note_ready", timeout_s=args.wait)
    message: dict[str, Any] = {"type": "start", "source": "microphone"}
    if args.replay is not None:
        message |= {"source": "replay", "path": str(args.replay.resolve()), "speed": args.speed}
    elif args.device is not None:
        message["device"] = args.device
    for key, value in (
        ("encounter_id", args.encounter_id),
        ("patient_reference", args.patient),
        ("author_reference", args.author),
        ("encounter_reference", args.encounter_ref),
    ):
        if value:
            message[key] = value
    return client.request(message, "started")


def _describe(reply: dict[str, Any]) -> str:
    kind = reply.get("type")
    if kind == "note_ready":
        lines = [
            f"encounter {reply['encounter_id']}: note ready {reply['stop_to_note_s']:.2f} s after stop "
            f"({reply['audio_s']:.1f} s audio, {reply['words']} words)"
        ]
        lines += [f"  {path}" for path in reply["inbox"]]
        lines += [f"  {d['target']}: {d['state']}" for d in reply["deliveries"]]
        return "\n".join(lines)
    if kind == "status":
        enc = reply["encounter"]
        lines = [f"agent pid {reply['pid']} on 127.0.0.1:{reply['port']}, model {reply['model']}"]
        if enc is None:
            lines.append("no encounter running")
        else:
            lines.append(
                f"encounter {enc['encounter_id']}: {enc['state']} ({enc['source']}), "
                f"{enc['audio_s']:.1f} s audio, {enc['committed_words']} committed words"
            )
        for item in reply["recovered"]:
            if "quarantined" in item:
                continue  # listed below with everything else in quarantine
            if "error" in item:
                lines.append(f"interrupted encounter {item['encounter_id']}: NOT finalised: {item['error']}")
            else:
                lines.append(
                    f"interrupted encounter {item['encounter_id']}: finalised, note in {item['inbox'][0]}"
                )
        for held in reply.get("held_for_resume", ()):
            lines.append(f"interrupted encounter {held}: waiting to be resumed (start it again with this id)")
        for q in reply.get("quarantined", []):
            lines.append(f"quarantined {q['kind']} {q['name']} ({q['reason']}): {q['folder']}")
        if reply.get("last_note"):
            last = reply["last_note"]
            lines.append(
                f"last note: encounter {last['encounter_id']} ({last['stop_to_note_s']:.2f} s after stop)"
            )
        return "\n".join(lines)
    return f"encounter {reply.get('encounter_id')}: {kind}"
