"""``ambient agent``: the background process that runs live encounters.

ambient agent                 # start in the background (output in <log dir>/agent.log)
ambient agent --foreground    # run here, logs in the terminal, Ctrl-C stops
ambient agent install         # write the systemd user unit; prints how to enable it
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from ambient.cli.common import settings_from_args
from ambient.errors import UsageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "agent",
        help="run the live-encounter agent (loopback WebSocket; see `ambient encounter`)",
        description="Serve live encounters: stream audio in, transcript events out, a note on stop.",
    )
    parser.add_argument("action", nargs="?", choices=["run", "install"], default="run")
    parser.add_argument("--foreground", action="store_true", help="run in this terminal, logs on stderr")
    parser.add_argument("--port", type=int, help="loopback port (default: [agent] port, 47616)")
    parser.add_argument("--log-json", action="store_true", help="log JSON lines (default: [logging] format)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings, paths = settings_from_args(args)
    if args.port is not None and not 1 <= args.port <= 65535:
        raise UsageError(f"--port must be between 1 and 65535, got {args.port}")
    if args.action == "install":
        from ambient.agent.runner import TOKEN_NAME
        from ambient.agent.service import UNIT_NAME, install_unit
        from ambient.localsock import load_or_create_token

        path = install_unit()
        _, token_file = load_or_create_token(paths, TOKEN_NAME)  # clients can be set up before it runs
        print(f"wrote {path}")
        print(f"token for clients (mode 0600): {token_file}")
        print("enable and start it with:")
        print(f"  systemctl --user daemon-reload && systemctl --user enable --now {UNIT_NAME}")
        return 0
    if args.log_json:
        settings = replace(settings, logging=replace(settings.logging, format="json"))
    if args.foreground:
        from ambient.agent.runner import run_agent

        return run_agent(settings, paths, args.port)
    from ambient.agent.service import start_background

    extra = ["--config", args.config] if args.config else []
    env = {} if args.port is None else {"AMBIENT_AGENT_PORT": str(args.port)}  # the child's [agent] port
    if args.log_json:
        env["AMBIENT_LOGGING_FORMAT"] = "json"
    pid, log_file = start_background(paths, extra, env)
    print(f"ambient agent started in the background (pid {pid}); log: {log_file}", file=sys.stderr)
    print(f"stop it with: kill {pid}", file=sys.stderr)
    return 0
