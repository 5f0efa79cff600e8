"""Running the agent in the background: a detached process now, a systemd user unit for good.

``ambient agent`` (without ``--foreground``) starts ``ambient agent --foreground`` in its own
session with its output in ``<log dir>/agent.log`` and returns once it listens, so a terminal can
be closed. ``ambient agent install`` writes a systemd *user* unit so the agent starts at login;
it prints the ``systemctl --user`` command rather than running it, because enabling a service is
the clinician's (or the site's) decision.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from ambient.atomic import atomic_write_text, ensure_dir
from ambient.config import Paths
from ambient.errors import OutputError

UNIT_NAME = "ambient-agent.service"


def unit_path(env: dict[str, str] | None = None) -> Path:
    """``~/.config/systemd/user/``, or under ``$AMBIENT_HOME`` when set (tests, portable installs)."""
    env = dict(os.environ) if env is None else env
    home = env.get("AMBIENT_HOME")
    base = Path(home).expanduser() if home else Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "systemd" / "user" / UNIT_NAME


def unit_text(env: dict[str, str] | None = None) -> str:
    env = dict(os.environ) if env is None else env
    command = shlex.join([sys.executable, "-m", "ambient", "agent", "--foreground"])
    keep = [
        f"Environment={shlex.quote(f'{k}={v}')}" for k, v in sorted(env.items()) if k.startswith("AMBIENT_")
    ]
    return "\n".join(
        [
            "[Unit]",
            "Description=ambient: live clinical documentation agent (loopback only)",
            "",
            "[Service]",
            f"ExecStart={command}",
            *keep,
            "Restart=on-failure",
            "RestartSec=2",
            # a stop leaves the running encounter's journal open; the next start finalises it
            "KillSignal=SIGTERM",
            "",
            "[Install]",
            "WantedBy=default.target",
            "",
        ]
    )


def install_unit(env: dict[str, str] | None = None) -> Path:
    path = unit_path(env)
    try:
        ensure_dir(path.parent)
        atomic_write_text(path, unit_text(env))
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def start_background(
    paths: Paths, argv: list[str], env: dict[str, str] | None = None, wait_s: float = 180.0
) -> tuple[int, Path]:
    """Start the agent detached, output to ``agent.log``; return once it listens (or has died)."""
    ensure_dir(paths.log_dir)
    log_file = paths.log_dir / "agent.log"
    start = log_file.stat().st_size if log_file.exists() else 0
    with log_file.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ambient", *argv, "agent", "--foreground"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise OutputError(f"the agent exited at start (code {proc.returncode}); see {log_file}")
        if b"listening on" in log_file.read_bytes()[start:]:
            return proc.pid, log_file
        time.sleep(0.2)
    return proc.pid, log_file
