"""The structured logger writes ids and numbers, and its guard refuses free text it is handed."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from ambient.logs import REFUSED, append_event, configure, event_log, refused_count, unconfigure


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    unconfigure()


def _lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_text_format_renders_the_constant_template_and_the_other_fields() -> None:
    out = io.StringIO()
    configure("text", out)
    event_log("agent").info(
        "encounter.stopped",
        "encounter {encounter_id} stopped",
        encounter_id="enc-1",
        words=31,
        audio_s=1.23456,
    )
    (line,) = _lines(out)
    assert line.endswith("ambient agent: encounter enc-1 stopped words=31 audio_s=1.235")


def test_json_format_is_one_object_per_line_with_the_fields() -> None:
    out = io.StringIO()
    configure("json", out)
    event_log("agent").warning("agent.listening", "listening on 127.0.0.1:{port}", port=4711)
    row = json.loads(_lines(out)[0])
    assert row["event"] == "agent.listening" and row["level"] == "warning" and row["logger"] == "agent"
    assert row["port"] == 4711 and row["msg"] == "listening on 127.0.0.1:4711"


def test_guard_refuses_free_text_phi_named_fields_and_plain_messages() -> None:
    out = io.StringIO()
    configure("json", out)
    before = refused_count()
    log = event_log("agent")
    log.info(
        "encounter.started",
        "encounter {encounter_id}",
        encounter_id="I have chest pain",  # free text in an id field: whitespace gives it away
        patient_name="Zebulon",  # a field whose name says what it is
        mrn="MRN-7731",
        words=3,
    )
    logging.getLogger("ambient.llm").warning("drafting failed for %s: %s", "enc-1", "Zebulon Quart")
    logging.getLogger("ambient.llm").warning("Patient Zebulon Quart said hello")
    text = out.getvalue()
    assert "chest" not in text and "Zebulon" not in text and "7731" not in text and "hello" not in text
    rows = [json.loads(line) for line in _lines(out)]
    assert rows[0]["encounter_id"] == REFUSED and rows[0]["patient_name"] == REFUSED and rows[0]["words"] == 3
    assert rows[1]["event"] == rows[2]["event"] == "refused.free_text"
    assert refused_count() - before == 5


def test_event_names_are_constants() -> None:
    with pytest.raises(ValueError, match="constants"):
        event_log("agent").info("encounter Zebulon stopped")


def test_append_event_writes_a_guarded_json_line(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "outbox.log"
    append_event(path, "dead_lettered", item=3, target="fhir:https://ehr.example/fhir", reason="MRN 12 bad")
    row = json.loads(path.read_text())
    assert row["event"] == "dead_lettered" and row["item"] == 3 and row["reason"] == REFUSED
