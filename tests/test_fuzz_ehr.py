"""What EHR peers answer, fuzzed: HL7 ACKs and MLLP byte streams, FHIR status codes, headers, bodies.

HL7: the ACK parser and the MLLP framer are sans-I/O, so hypothesis feeds them directly (random
text, mutated real ACKs, any split of the byte stream). FHIR: the real sekmet server sits behind the
fault proxy, which answers the sink's requests with hypothesis-drawn statuses, headers and bodies
(not FHIR, FHIR of the wrong shape, truncated, a Location with no id, a Retry-After in any form).
Every answer must end as an outbox state (delivered, pending or dead) with a reason: never an
exception out of ``drain``, which would stop the agent's delivery loop.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ambient.ehr.context import ContextFormatError, context_from_dict
from ambient.ehr.errors import PermanentDeliveryError
from ambient.ehr.fhir_resources import composition, document_reference, review_task
from ambient.ehr.hl7v2 import mdm_t02, parse_ack
from ambient.ehr.mllp import END_BLOCK, START_BLOCK, MllpFramer
from ambient.ehr.options import DeliveryOptions
from ambient.ehr.outbox import Outbox
from ambient.errors import AmbientError
from ambient.types import EncounterContext, NoteDraft
from tests.ehr_peers import SekmetServer, context_for, make_note
from tests.fault_proxy import HttpFault, HttpFaultProxy
from tests.reliability import record

pytestmark = pytest.mark.reliability

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
COUNTS: dict[str, int] = {"ack": 0, "framer": 0, "fhir": 0, "context": 0}

ACK = (
    "MSH|^~\\&|EHR|EHR|AMBIENT|AMBIENT|20261125120000||ACK^T02^ACK|ACK1|P|2.5\rMSA|AA|0123456789abcdef0123\r"
)


@st.composite
def mutated_acks(draw: st.DrawFn) -> str:
    segments = ACK.split("\r")
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(segments) - 1))
        action = draw(st.sampled_from(["drop", "cut", "insert", "sep"]))
        if action == "drop":
            del segments[at]
        elif action == "cut":
            segments[at] = segments[at][: draw(st.integers(0, len(segments[at])))]
        elif action == "sep":
            segments[at] = segments[at].replace("|", draw(st.sampled_from(["", "^", "\n", "||||", "\x00"])))
        else:
            segments.insert(
                at, draw(st.sampled_from(["ERR|||||||", "MSA", "MSA|", "MSH", "ERR" + "|x" * 20]))
            )
        if not segments:
            break
    return "\r".join(segments)


@FUZZ
@given(text=mutated_acks() | st.text(max_size=200))
def test_any_ack_parses_or_is_refused(text: str) -> None:
    COUNTS["ack"] += 1
    try:
        ack = parse_ack(text)
    except PermanentDeliveryError:
        return
    assert isinstance(ack.code, str) and isinstance(ack.control_id, str) and isinstance(ack.text, str)


@FUZZ
@given(
    messages=st.lists(
        st.binary(max_size=200).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b"")), max_size=5
    ),
    noise=st.binary(max_size=20).map(lambda b: b.replace(b"\x0b", b"")),
    cuts=st.lists(st.integers(0, 2000), max_size=8),
)
def test_framer_finds_every_message_however_the_stream_is_split(
    messages: list[bytes], noise: bytes, cuts: list[int]
) -> None:
    """Line noise before a frame is dropped; any split of the stream yields the same messages."""
    COUNTS["framer"] += 1
    stream = noise + b"".join(MllpFramer.frame(m) for m in messages)
    framer = MllpFramer()
    found: list[bytes] = []
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    for start, end in itertools.pairwise(bounds):
        found += framer.feed(stream[start:end])
    assert found == messages


@settings(max_examples=80, deadline=None, derandomize=True)
@given(data=st.binary(max_size=3000))
def test_framer_on_random_bytes_never_grows_past_its_limit(data: bytes) -> None:
    COUNTS["framer"] += 1
    framer = MllpFramer(max_bytes=1000)
    try:
        out = framer.feed(data)
    except ValueError:
        assert len(data) > 1000  # only an unterminated frame over the limit is refused
        return
    assert all(START_BLOCK not in m and END_BLOCK not in m for m in out)


# ---- encounter metadata into the messages we build ----------------------------------------------

CONTEXT_FIELDS = sorted(f.name for f in dataclasses.fields(EncounterContext))
context_values = st.text(max_size=30) | st.sampled_from(
    ["Patient/1", "Patient/", "a|b^c~d\\e&f", "\r\n", "", " ", "x" * 5000, "Doe, Jane", "<b>x</b>"]
)


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    values=st.dictionaries(
        st.sampled_from(CONTEXT_FIELDS), context_values | st.none() | st.booleans() | st.integers()
    )
)
def test_any_encounter_metadata_builds_valid_messages_or_is_refused(values: dict[str, Any]) -> None:
    """``NAME.context.json`` beside the audio is user input: it reaches FHIR resources and HL7."""
    COUNTS["context"] += 1
    values.setdefault("encounter_id", "enc-ctx")
    try:
        context = context_from_dict(values, "visit.context.json")
    except ContextFormatError as exc:
        assert "visit.context.json" in str(exc)
        return
    note = context_note()
    built: dict[str, Any] = {}
    for name, build in (
        ("fhir", lambda: document_reference(note, context, ())),
        ("composition", lambda: composition(note, context)),
        ("task", lambda: review_task(note, context, "doc-1")),
        ("hl7", lambda: mdm_t02(note, context)),
    ):
        try:
            built[name] = build()
        except AmbientError:  # e.g. no patient identifier: the sink refuses, with the reason
            continue
    if "hl7" in built:  # every value escaped into its field: no segment broken by a line feed
        assert "\n" not in built["hl7"] and built["hl7"].count("\rPID|") == 1


@functools.cache
def context_note() -> NoteDraft:
    return make_note(Path(tempfile.mkdtemp(prefix="fuzz-context-")), "enc-ctx")


# ---- FHIR answers ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fhir(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[SekmetServer, HttpFaultProxy, NoteDraft]]:
    root = tmp_path_factory.mktemp("fuzz-fhir")
    server = SekmetServer(root / "sekmet")
    server.start()
    proxy = HttpFaultProxy(f"http://127.0.0.1:{server.port}")
    proxy.start()
    try:
        yield server, proxy, make_note(root, "enc-fuzz-fhir")
    finally:
        proxy.stop()
        server.stop()


json_any = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
resource_like = st.fixed_dictionaries(
    {},
    optional={
        "resourceType": st.sampled_from(["Bundle", "DocumentReference", "OperationOutcome", "Patient", ""]),
        "id": json_any | st.text(max_size=8),
        "status": st.sampled_from(["current", "superseded"]) | json_any,
        "entry": json_any
        | st.lists(
            st.fixed_dictionaries(
                {}, optional={"resource": json_any, "search": json_any, "fullUrl": json_any}
            ),
            max_size=3,
        ),
        "issue": json_any
        | st.lists(st.dictionaries(st.sampled_from(["diagnostics", "code"]), json_any), max_size=2),
        "identifier": json_any,
    },
)


def as_body(value: Any, cut: int | None) -> bytes:
    raw = json.dumps(value).encode()
    return raw if cut is None else raw[:cut]


bodies = (
    st.builds(as_body, resource_like | json_any, st.none() | st.integers(0, 40))
    | st.binary(max_size=200)
    | st.just(b"[" * 50_000)
)
headers = st.lists(
    st.tuples(
        st.sampled_from(["Retry-After", "Location", "Content-Type", "ETag", "X-Junk"]),
        st.sampled_from(
            ["0", "2", "-1", "99999999999999", "soon", "Wed, 21 Oct 2015 07:28:00 GMT", "DocumentReference/",
             "/fhir/DocumentReference/abc/_history/1", "application/fhir+json", "text/html", ""]
        ),
    ),
    max_size=3,
)  # fmt: skip
statuses = st.sampled_from([200, 201, 204, 301, 400, 401, 404, 409, 412, 422, 429, 500, 503]) | st.integers(
    200, 599
)
OUTCOMES: dict[str, int] = {}
_ids = itertools.count()


@settings(FUZZ, max_examples=80)
@given(status=statuses, headers=headers, body=bodies, on_request=st.integers(0, 2))
def test_any_fhir_answer_ends_in_an_outbox_state(
    tmp_path_factory: pytest.TempPathFactory,
    fhir: tuple[SekmetServer, HttpFaultProxy, NoteDraft],
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
    on_request: int,
) -> None:
    """The fuzzed answer replaces the real one on the search (0), the create (1) or later (2)."""
    _server, proxy, note = fhir
    COUNTS["fhir"] += 1
    folder = tmp_path_factory.getbasetemp() / "fuzz-fhir-outboxes"
    folder.mkdir(exist_ok=True)
    options = DeliveryOptions(max_attempts=2, backoff_base_s=0.01, backoff_max_s=0.01, fhir_timeout_s=5)
    outbox = Outbox(folder / f"o{next(_ids)}.sqlite3", options)
    outbox.enqueue(note, context_for(note.encounter_id), f"fhir:{proxy.base_url}")
    proxy.faults.clear()
    proxy.faults.extend(
        [HttpFault()] * on_request + [HttpFault(status=status, headers=tuple(headers), body=body)]
    )
    try:
        [item] = outbox.drain()
    finally:
        proxy.faults.clear()
        outbox.close()
    assert item.state in ("delivered", "pending", "dead")
    assert item.state == "delivered" or item.last_error
    OUTCOMES[item.state] = OUTCOMES.get(item.state, 0) + 1


def test_ehr_fuzz_recorded() -> None:
    record("fuzz", "HL7 ACKs", inputs_fuzzed=COUNTS["ack"])
    record("fuzz", "MLLP byte streams", inputs_fuzzed=COUNTS["framer"])
    record("fuzz", "encounter metadata into FHIR/HL7", inputs_fuzzed=COUNTS["context"])
    record(
        "fuzz",
        "FHIR server answers",
        inputs_fuzzed=COUNTS["fhir"],
        detail=", ".join(f"{k} {v}" for k, v in sorted(OUTCOMES.items())),
    )
