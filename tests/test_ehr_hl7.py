"""HL7 v2 MDM^T02 over MLLP: hl7apy strict validation, and a real ``hl7`` asyncio MLLP listener."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import hl7
import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from ambient.ehr.errors import PermanentDeliveryError, RetryableDeliveryError, TargetError
from ambient.ehr.hl7v2 import document_number, escape, mdm_t02, parse_ack
from ambient.ehr.mllp import MllpFramer, MllpSink
from ambient.ehr.options import DeliveryOptions
from ambient.ehr.sink import Sink, open_sink
from ambient.notes.render import note_to_text
from tests.ehr_peers import MllpListener, context_for, free_port, make_note

TRICKY = "[patient] My wife & I use the pharmacy at 5|7 Main St ^ corner ~ east, path C:\\meds.\n"


@pytest.fixture
def listener(request: pytest.FixtureRequest) -> Iterator[MllpListener]:
    peer = MllpListener(mode=getattr(request, "param", "AA"))
    peer.start()
    yield peer
    peer.stop()


def test_framer_reassembles_split_and_joined_messages() -> None:
    framer = MllpFramer()
    wire = b"noise" + MllpFramer.frame(b"MSH|one") + MllpFramer.frame(b"MSH|two")
    got: list[bytes] = []
    for i in range(0, len(wire), 3):
        got += framer.feed(wire[i : i + 3])
    assert got == [b"MSH|one", b"MSH|two"]
    assert framer.feed(b"\x0bMSH|partial") == [] and framer.feed(b"\x1c\x0d") == [b"MSH|partial"]


def test_mdm_t02_passes_hl7apy_strict_validation(tmp_path: Path) -> None:
    note = make_note(tmp_path, "enc-hl7", TRICKY)
    text = mdm_t02(note, context_for("enc-hl7"))
    message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert message.validate() is True
    assert message.msh.msh_9.to_er7() == "MDM^T02^MDM_T02"
    assert message.txa.txa_12.to_er7() == f"{document_number(note)}^AMBIENT"
    assert message.txa.txa_17.to_er7() == "IP"
    assert message.pid.pid_3.to_er7() == "MRN12345^^^HOSP^MR"
    assert message.pv1.pv1_19.to_er7() == "enc-hl7"
    # The note survives the trip: unescaped OBX-5 lines are its plain text, delimiters and all.
    parsed = hl7.parse(text)
    lines = [parsed.unescape(str(seg[5])) for seg in parsed.segments("OBX")]
    assert lines == note_to_text(note).rstrip("\n").split("\n")
    assert any("5|7 Main St ^ corner ~ east" in line for line in lines)


def test_document_numbers_differ_between_drafts(tmp_path: Path) -> None:
    first = make_note(tmp_path, "enc-n")
    second = make_note(tmp_path, "enc-n", "[patient] It also hurts at night.\n")
    assert document_number(first) != document_number(second)
    assert escape("a|b^c&d~e\\f") == "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f"


def test_delivered_on_aa(tmp_path: Path, listener: MllpListener) -> None:
    note = make_note(tmp_path, "enc-aa")
    sink = open_sink(f"mllp://127.0.0.1:{listener.port}")
    assert isinstance(sink, Sink)
    receipt = sink.deliver(note, context_for("enc-aa"))
    assert len(listener.received) == 1
    received = hl7.parse(listener.received[0])
    assert str(received.segment("TXA")[12]) == f"{document_number(note)}^AMBIENT"
    assert receipt.locations[1] == f"TXA-12:{document_number(note)}"


@pytest.mark.parametrize("listener", ["AE", "AR"], indirect=True)
def test_rejections_are_permanent_with_the_reason(tmp_path: Path, listener: MllpListener) -> None:
    note = make_note(tmp_path, "enc-ae")
    with pytest.raises(PermanentDeliveryError, match=f"{listener.mode}: Unknown patient"):
        MllpSink("127.0.0.1", listener.port).deliver(note, context_for("enc-ae"))


@pytest.mark.parametrize("listener", ["silent"], indirect=True)
def test_no_answer_is_retryable(tmp_path: Path, listener: MllpListener) -> None:
    note = make_note(tmp_path, "enc-silent")
    sink = MllpSink("127.0.0.1", listener.port, DeliveryOptions(hl7_timeout_s=0.5))
    with pytest.raises(RetryableDeliveryError, match="no ACK"):
        sink.deliver(note, context_for("enc-silent"))
    assert len(listener.received) == 1


def test_no_listener_is_retryable_and_missing_pid_is_permanent(tmp_path: Path) -> None:
    note = make_note(tmp_path, "enc-down")
    with pytest.raises(RetryableDeliveryError, match="cannot connect"):
        MllpSink("127.0.0.1", free_port()).deliver(note, context_for("enc-down"))
    with pytest.raises(PermanentDeliveryError, match="patient_identifier"):
        MllpSink("127.0.0.1", 1).deliver(note, replace(context_for("enc-down"), patient_identifier=None))
    with pytest.raises(TargetError):
        open_sink("mllp://host-without-port")


def test_parse_ack_reads_msa_and_err() -> None:
    ack = parse_ack("MSH|^~\\&|EHR|EHR|A|A|20260101||ACK|1|P|2.5\rMSA|AE|abc|bad\rERR||||E|||oops\r")
    assert (ack.code, ack.control_id, ack.accepted) == ("AE", "abc", False)
    assert "bad" in ack.text and "oops" in ack.text
