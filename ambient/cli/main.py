"""The ``ambient`` command: parse, dispatch, and turn expected errors into messages and exit codes.

Exit codes: 0 success; 1 some work failed (batch); 2 usage; 3 bad input; 4 model integrity;
5 template; 6 output; 130 interrupted. See :mod:`ambient.errors`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ambient import __version__
from ambient.cli import agent as agent_command
from ambient.cli import audit, batch, deliver, demo, editor, enroll, models, note, outbox, transcribe
from ambient.cli import encounter as encounter_command
from ambient.cli import eval as eval_cmd
from ambient.cli import keys as keys_command
from ambient.cli import listen as listen_command
from ambient.cli import purge as purge_command
from ambient.errors import AmbientError, InputError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"ambient: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ambient", description="Local-first ambient clinical documentation.")
    parser.add_argument("--version", action="version", version=f"ambient {__version__}")
    parser.add_argument("--config", help="settings file (default: <config dir>/ambient.toml)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for module in (transcribe, note, batch, models, demo, enroll, editor, deliver, outbox, audit, eval_cmd):
        module.register(sub)
    for module in (listen_command, agent_command, encounter_command):
        module.register(sub)
    for module in (keys_command, purge_command):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    umask = os.umask(0o077)  # what ambient creates (logs, SQLite, audit trail) is the user's alone
    try:
        return _main(argv)
    finally:
        os.umask(umask)  # in-process callers (tests, embedding) get their own umask back


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except AmbientError as exc:
        print(f"ambient: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ambient: interrupted", file=sys.stderr)
        return 130
    except PermissionError as exc:  # ambient's state is 0700: another user's cannot be looked into
        where = exc.filename or "a file"
        message = f"permission denied: {where}; run ambient as the user who owns it"
        print(f"ambient: error: {message}", file=sys.stderr)
        return InputError.exit_code
    except BrokenPipeError:
        # stdout was closed early (`ambient ... | head`): not an error, and no traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
