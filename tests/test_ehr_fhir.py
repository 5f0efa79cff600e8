"""FHIR R4 delivery against a real sekmet-fhir server on loopback: counted on the server."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ambient.ehr.errors import PermanentDeliveryError, RetryableDeliveryError, TargetError
from ambient.ehr.fhir import FhirSink
from ambient.ehr.fhir_resources import DRAFT_SYSTEM, SERIES_SYSTEM, document_reference
from ambient.ehr.options import DeliveryOptions, SmartAuth
from ambient.ehr.sink import Sink, canonical_target, open_sink
from ambient.ehr.smart import client_assertion
from ambient.notes.render import note_to_markdown
from ambient.types import EncounterContext
from tests.ehr_peers import SekmetServer, context_for, free_port, make_note, sekmet


@pytest.fixture(scope="module")
def fhir_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SekmetServer]:
    yield from sekmet(tmp_path_factory.mktemp("sekmet"))


def test_document_reference_is_valid_r4_with_the_note_inside(tmp_path: Path) -> None:
    note = make_note(tmp_path, "enc-build")
    resource = document_reference(note, context_for("enc-build"), replaces=("old-1",))
    from fhir.resources.R4B.documentreference import DocumentReference

    DocumentReference.model_validate(resource)
    assert resource["status"] == "current" and resource["docStatus"] == "preliminary"
    assert resource["type"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "11506-3",
        "display": "Progress note",
    }
    assert resource["subject"]["reference"] == "Patient/pat-1"
    assert resource["context"]["encounter"][0]["reference"] == "Encounter/enc-build"
    assert resource["author"][0]["reference"] == "Practitioner/dr-1"
    assert resource["relatesTo"] == [{"code": "replaces", "target": {"reference": "DocumentReference/old-1"}}]
    markdown = base64.b64decode(resource["content"][0]["attachment"]["data"]).decode()
    assert resource["content"][0]["attachment"]["contentType"] == "text/markdown"
    assert markdown == note_to_markdown(note)
    xhtml = base64.b64decode(resource["content"][1]["attachment"]["data"]).decode()
    assert xhtml.startswith('<div xmlns="http://www.w3.org/1999/xhtml">')
    systems = {i["system"] for i in resource["identifier"]}
    assert systems == {DRAFT_SYSTEM, SERIES_SYSTEM}


def test_sinks_satisfy_the_protocol_and_targets_parse(tmp_path: Path) -> None:
    assert isinstance(open_sink(f"inbox:{tmp_path}"), Sink)
    assert isinstance(open_sink("fhir:http://127.0.0.1:1/fhir"), Sink)
    assert canonical_target("fhir:http://x/fhir/") == "fhir:http://x/fhir"
    with pytest.raises(TargetError, match="unknown delivery target"):
        open_sink("ftp://x")
    with pytest.raises(TargetError, match="http"):
        open_sink("fhir:ftp://x")


def test_conditional_create_makes_one_copy_however_often_it_is_retried(
    tmp_path: Path, fhir_server: SekmetServer
) -> None:
    note = make_note(tmp_path, "enc-once")
    sink = FhirSink(fhir_server.base_url)
    receipts = [sink.deliver(note, context_for("enc-once")) for _ in range(3)]
    docs = fhir_server.search("DocumentReference", encounter="Encounter/enc-once")
    assert len(docs) == 1
    assert {r.locations[0] for r in receipts} == {f"{fhir_server.base_url}/DocumentReference/{docs[0]['id']}"}
    assert docs[0]["docStatus"] == "preliminary"


def test_a_new_draft_replaces_the_earlier_one(tmp_path: Path, fhir_server: SekmetServer) -> None:
    sink = FhirSink(fhir_server.base_url)
    first = make_note(tmp_path, "enc-redo")
    second = make_note(tmp_path, "enc-redo", "[patient] The pain also wakes me at night.\n")
    r1 = sink.deliver(first, context_for("enc-redo"))
    r2 = sink.deliver(second, context_for("enc-redo"))
    sink.deliver(second, context_for("enc-redo"))  # a retry of the newer draft changes nothing
    docs = {d["id"]: d for d in fhir_server.search("DocumentReference", encounter="Encounter/enc-redo")}
    old_id, new_id = r1.locations[0].rsplit("/", 1)[1], r2.locations[0].rsplit("/", 1)[1]
    assert set(docs) == {old_id, new_id}
    assert docs[old_id]["status"] == "superseded"
    assert docs[new_id]["status"] == "current"
    assert docs[new_id]["relatesTo"][0]["target"]["reference"] == f"DocumentReference/{old_id}"


def test_review_task_routes_the_draft(tmp_path: Path, fhir_server: SekmetServer) -> None:
    note = make_note(tmp_path, "enc-task")
    sink = FhirSink(fhir_server.base_url, DeliveryOptions(fhir_task=True))
    receipt = sink.deliver(note, context_for("enc-task"))
    sink.deliver(note, context_for("enc-task"))
    tasks = fhir_server.search("Task", encounter="Encounter/enc-task")
    assert len(tasks) == 1 and tasks[0]["owner"]["reference"] == "Practitioner/dr-1"
    assert tasks[0]["focus"]["reference"] == "DocumentReference/" + receipt.locations[0].rsplit("/", 1)[1]


def test_errors_are_split_into_retryable_and_permanent(tmp_path: Path, fhir_server: SekmetServer) -> None:
    note = make_note(tmp_path, "enc-err")
    with pytest.raises(RetryableDeliveryError, match="unreachable"):
        FhirSink(f"http://127.0.0.1:{free_port()}/fhir").deliver(note, context_for("enc-err"))
    with pytest.raises(PermanentDeliveryError, match="404"):
        FhirSink(fhir_server.base_url.replace("/fhir", "/nothing")).deliver(note, context_for("enc-err"))
    with pytest.raises(PermanentDeliveryError, match="patient_reference"):
        FhirSink(fhir_server.base_url).deliver(note, EncounterContext(encounter_id="enc-err"))
    assert fhir_server.search("DocumentReference", encounter="Encounter/enc-err") == []


def _rsa_pem(folder: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = folder / "client.pem"
    public = folder / "client.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def test_client_assertion_is_short_lived_rs384_with_unique_jti(tmp_path: Path) -> None:
    private, public = _rsa_pem(tmp_path)
    auth = SmartAuth(client_id="ambient", private_key_path=str(private), kid="k1")
    tokens = [client_assertion(auth, "https://ehr/token", private.read_bytes()) for _ in range(2)]
    claims = [
        jwt.decode(t, public.read_bytes(), algorithms=["RS384"], audience="https://ehr/token") for t in tokens
    ]
    assert jwt.get_unverified_header(tokens[0]) == {"alg": "RS384", "kid": "k1", "typ": "JWT"}
    assert all(c["exp"] - c["iat"] <= 300 and c["iss"] == c["sub"] == "ambient" for c in claims)
    assert claims[0]["jti"] != claims[1]["jti"]


def test_smart_backend_services_against_a_server_that_requires_it(tmp_path: Path) -> None:
    private, public = _rsa_pem(tmp_path)
    settings = (
        "server_auth:\n  types: [smart]\n  smart_clients:\n"
        f"    - client_id: ambient-agent\n      public_key_path: {public}\n      scopes: system/*.*\n"
    )
    server = SekmetServer(tmp_path / "smart", extra_settings=settings)
    server.start()
    try:
        note = make_note(tmp_path, "enc-smart")
        with pytest.raises(PermanentDeliveryError, match="401"):
            FhirSink(server.base_url).deliver(note, context_for("enc-smart"))
        auth = SmartAuth(client_id="ambient-agent", private_key_path=str(private))
        sink = FhirSink(server.base_url, DeliveryOptions(smart=auth))
        receipt = sink.deliver(note, context_for("enc-smart"))
        token = sink.tokens.token() if sink.tokens else ""
        server.auth_headers = {"Authorization": f"Bearer {token}"}
        docs = server.search("DocumentReference", encounter="Encounter/enc-smart")
        assert [f"{server.base_url}/DocumentReference/{d['id']}" for d in docs] == list(receipt.locations)
        wrong = SmartAuth(client_id="someone-else", private_key_path=str(private))
        with pytest.raises(PermanentDeliveryError, match="refused client someone-else"):
            FhirSink(server.base_url, DeliveryOptions(smart=wrong)).deliver(note, context_for("enc-smart"))
    finally:
        server.stop()


def _self_signed(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return folder / "cert.pem"


def test_tls_is_verified_and_a_site_ca_can_be_added(tmp_path: Path) -> None:
    cert = _self_signed(tmp_path / "https" / "tls")
    server = SekmetServer(tmp_path / "https", scheme="https")
    server.start()
    try:
        note = make_note(tmp_path, "enc-tls")
        with pytest.raises(PermanentDeliveryError, match="not trusted"):
            FhirSink(server.base_url).deliver(note, context_for("enc-tls"))
        FhirSink(server.base_url, DeliveryOptions(ca_file=str(cert))).deliver(note, context_for("enc-tls"))
        assert len(server.search("DocumentReference", encounter="Encounter/enc-tls")) == 1
    finally:
        server.stop()


def test_inbox_writes_fhir_json_beside_markdown_and_json(tmp_path: Path) -> None:
    note = make_note(tmp_path, "enc-inbox")
    receipt = open_sink(f"inbox:{tmp_path / 'inbox'}").deliver(note, context_for("enc-inbox"))
    names = sorted(p.name for p in (tmp_path / "inbox").iterdir())
    assert names == ["enc-inbox.fhir.json", "enc-inbox.note.json", "enc-inbox.note.md"]
    resource = json.loads((tmp_path / "inbox" / "enc-inbox.fhir.json").read_text())
    assert (
        resource["resourceType"] == "DocumentReference"
        and resource["subject"]["reference"] == "Patient/pat-1"
    )
    assert len(receipt.locations) == 3


def test_composition_with_loinc_sections_exists_once(tmp_path: Path, fhir_server: SekmetServer) -> None:
    note = make_note(tmp_path, "enc-comp")
    sink = FhirSink(fhir_server.base_url, DeliveryOptions(fhir_composition=True))
    receipts = [sink.deliver(note, context_for("enc-comp")) for _ in range(2)]
    location = receipts[0].locations[1]
    assert receipts[1].locations[1] == location and "/Composition/" in location
    found = [c for c in fhir_server.search("Composition") if c["id"] == location.rsplit("/", 1)[1]]
    assert len(found) == 1 and found[0]["status"] == "preliminary"
    codes = [s["code"]["coding"][0]["code"] for s in found[0]["section"]]
    assert codes == ["61150-9", "61149-1", "51848-0", "18776-5"]
    with pytest.raises(PermanentDeliveryError, match="author_reference"):
        sink.deliver(note, EncounterContext(encounter_id="enc-comp", patient_reference="Patient/pat-1"))
