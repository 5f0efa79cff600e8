"""Structured logs that cannot carry a patient's words: events, ids, hashes, durations and counts.

Why a module of its own: a log file is copied, shipped to a log server and read by people who
must never see a transcript, a note, a name or a medical record number. The guarantee is made at
the call sites, which pass only an event name (a constant such as ``encounter.stopped``), an
optional constant template and *fields* that are numbers, booleans or short id-like strings::

    log = event_log("agent")
    log.info("encounter.stopped", "encounter {encounter_id} stopped: {audio_s} s audio",
             encounter_id=enc.id, audio_s=12.5, words=31, note_sha256=sha[:12])

Every record then passes :class:`PhiGuard`, a safety net for mistakes: a field whose name says
it holds free text or a patient identifier (``text``, ``name``, ``patient_*``, ``mrn`` …), a
string field with whitespace or longer than an id, or a record that is not an event (a plain
``logging`` call with formatted text, e.g. from a library) is replaced by ``[refused]`` and
counted (:func:`refused_count`, also in the agent's status), never written.

Two formats, one per line: ``text`` (``13:04:05 ambient agent: <rendered template> k=v …``) for a
terminal, ``json`` (``{"time", "level", "logger", "event", "msg", ...fields}``) for a collector;
chosen with ``[logging] format`` or ``--log-json``. :func:`append_event` writes the same JSON
line to a file of its own (the outbox log) through the same guard.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Final

from ambient.atomic import ensure_dir
from ambient.errors import ConfigError

Field = str | int | float | bool | None

ROOT = "ambient"
FORMATS: Final = ("text", "json")
REFUSED: Final = "[refused]"
_EVENT = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*")
_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
# ids, hashes, error codes, targets and paths without spaces: nothing a sentence fits in
_SAFE_TEXT = re.compile(r"[A-Za-z0-9._:/@+=#%~-]{0,200}")
# field names that announce free text or a patient identifier: refused whatever their value
_PHI_KEY_PARTS: Final = (
    "text",
    "transcript",
    "note_body",
    "sentence",
    "word_list",
    "name",
    "patient",
    "mrn",
    "birth",
    "dob",
    "identifier",
    "address",
    "phone",
    "message",
)
_RESERVED: Final = frozenset({"time", "level", "logger", "event", "msg"})

_refused = 0
_refused_lock = threading.Lock()


def refused_count() -> int:
    """How many fields or records the guard has refused in this process (a canary for bugs)."""
    return _refused


def _count_refusal() -> None:
    global _refused
    with _refused_lock:
        _refused += 1


def _key_is_phi(key: str) -> bool:
    return any(part in key for part in _PHI_KEY_PARTS)


def clean_fields(fields: dict[str, object]) -> dict[str, Field]:
    """The fields as they may be written: unsafe names or values become ``[refused]`` (counted)."""
    clean: dict[str, Field] = {}
    for key, value in fields.items():
        if not isinstance(key, str) or not _KEY.fullmatch(key) or key in _RESERVED:
            _count_refusal()
            continue
        if _key_is_phi(key):
            _count_refusal()
            clean[key] = REFUSED
        elif value is None or isinstance(value, bool | int):
            clean[key] = value
        elif isinstance(value, float):
            clean[key] = round(value, 3)
        elif isinstance(value, str) and _SAFE_TEXT.fullmatch(value):
            clean[key] = value
        else:
            _count_refusal()
            clean[key] = REFUSED
    return clean


def _render(template: str, fields: dict[str, Field]) -> str:
    try:
        return template.format(**fields) if template else ""
    except (KeyError, IndexError, ValueError):
        return template  # a template naming a field that was not given: show it unfilled


class PhiGuard(logging.Filter):
    """Rewrites every record into (event, guarded fields, rendered constant template)."""

    def filter(self, record: logging.LogRecord) -> bool:
        event = getattr(record, "event", None)
        if event is None:  # a plain logging call: its message may be anything
            if record.args or not isinstance(record.msg, str) or not _EVENT.fullmatch(record.msg):
                _count_refusal()
                record.event, record.fields, record.msg = "refused.free_text", {}, "refused.free_text"
            else:
                record.event, record.fields = record.msg, {}
            record.args = None
            return True
        given = getattr(record, "fields", {})
        fields = clean_fields(given if isinstance(given, dict) else {})
        record.fields = fields
        record.msg = _render(getattr(record, "template", ""), fields) or event
        record.args = None
        return True


def _short_logger(name: str) -> str:
    return name[len(ROOT) + 1 :] if name.startswith(ROOT + ".") else name


class TextFormatter(logging.Formatter):
    """``HH:MM:SS ambient <part>: <rendered> k=v …``: fields not in the template are appended."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        fields: dict[str, Field] = getattr(record, "fields", {})
        template = getattr(record, "template", "")
        extra = " ".join(f"{k}={v}" for k, v in fields.items() if "{" + k not in template)
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        line = f"{stamp} ambient {_short_logger(record.name)}: {level}{record.getMessage()}"
        return f"{line} {extra}" if extra else line


def json_line(level: str, logger: str, event: str, msg: str, fields: dict[str, Field], created: float) -> str:
    stamp = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    row: dict[str, Field] = {"time": stamp, "level": level, "logger": logger, "event": event, "msg": msg}
    return json.dumps(row | fields, sort_keys=False)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for a log collector."""

    def format(self, record: logging.LogRecord) -> str:
        return json_line(
            record.levelname.lower(),
            _short_logger(record.name),
            str(getattr(record, "event", "")),
            record.getMessage(),
            getattr(record, "fields", {}),
            record.created,
        )


class EventLog:
    """A logger that takes an event name, a constant template and id/number fields only."""

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(f"{ROOT}.{name}")

    def _emit(self, level: int, event: str, template: str, fields: dict[str, Field]) -> None:
        if not _EVENT.fullmatch(event):
            raise ValueError(f"log event names are constants like 'encounter.started', not {event!r}")
        self.logger.log(level, event, extra={"event": event, "template": template, "fields": fields})

    def info(self, event: str, template: str = "", /, **fields: Field) -> None:
        self._emit(logging.INFO, event, template, fields)

    def warning(self, event: str, template: str = "", /, **fields: Field) -> None:
        self._emit(logging.WARNING, event, template, fields)

    def error(self, event: str, template: str = "", /, **fields: Field) -> None:
        self._emit(logging.ERROR, event, template, fields)


def event_log(name: str) -> EventLog:
    return EventLog(name)


def configure(fmt: str = "text", stream: IO[str] | None = None, level: int = logging.INFO) -> None:
    """Send every ``ambient.*`` record through the guard to ``stream`` (stderr) in ``fmt``.

    Called once by a long-running command (the agent). Calling it again replaces the handler, so
    tests and ``--log-json`` can switch formats.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"[logging] format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    root = logging.getLogger(ROOT)
    for old in [h for h in root.handlers if getattr(h, "_ambient", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(PhiGuard())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler._ambient = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def unconfigure() -> None:
    """Remove what :func:`configure` installed (tests), so records propagate as before."""
    root = logging.getLogger(ROOT)
    for old in [h for h in root.handlers if getattr(h, "_ambient", False)]:
        root.removeHandler(old)
    root.propagate = True


def append_event(path: Path, event: str, /, **fields: Field) -> None:
    """One guarded JSON line appended to ``path`` (a log of its own, such as ``outbox.log``)."""
    if not _EVENT.fullmatch(event):
        raise ValueError(f"log event names are constants like 'queued', not {event!r}")
    import time

    line = json_line("info", "file", event, event, clean_fields(dict(fields)), time.time())
    ensure_dir(path.parent)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
