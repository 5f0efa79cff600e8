"""delivery.toml: typed options, and one clear message per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from ambient.config import resolve_paths
from ambient.ehr.context import load_context_file
from ambient.ehr.options import DeliveryOptions, load_delivery_options
from ambient.errors import ConfigError, InputError


def test_defaults_without_a_file() -> None:
    assert load_delivery_options(resolve_paths()) == DeliveryOptions()


def test_a_full_file(tmp_path: Path) -> None:
    path = tmp_path / "delivery.toml"
    path.write_text(
        '[fhir]\ntimeout_s = 5\ntask = true\ncomposition = true\nca_file = "/ca.pem"\n'
        '[fhir.smart]\nclient_id = "agent"\nprivate_key_path = "/k.pem"\nkid = "k1"\n'
        '[hl7]\nreceiving_application = "EPIC"\n[outbox]\nmax_attempts = 3\n'
    )
    options = load_delivery_options(resolve_paths(), path)
    assert options.fhir_timeout_s == 5.0 and options.fhir_task and options.fhir_composition
    assert options.smart is not None and options.smart.kid == "k1" and options.smart.alg == "RS384"
    assert options.receiving_application == "EPIC" and options.max_attempts == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[fhir]\ntimeout = 5\n", "unknown setting \\[fhir\\] timeout"),
        ("[smtp]\nx = 1\n", "unknown section \\[smtp\\]"),
        ("[outbox]\nmax_attempts = 0\n", "positive whole number"),
        ('[fhir.smart]\nclient_id = "a"\n', "private_key_path .* is required"),
        ('[fhir.smart]\nclient_id = "a"\nprivate_key_path = "k"\nassertion_lifetime_s = 3600\n', "1..300"),
        ('[fhir.smart]\nclient_id = "a"\nprivate_key_path = "k"\nalg = "HS256"\n', "RS384 or ES384"),
        ("[fhir\n", "not valid TOML"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "delivery.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_delivery_options(resolve_paths(), path)


def test_context_files_json_and_toml(tmp_path: Path) -> None:
    toml = tmp_path / "m.toml"
    toml.write_text('patient_reference = "Patient/1"\nauthor_reference = "Practitioner/2"\n')
    context = load_context_file(toml, encounter_id="enc-1")
    assert (context.encounter_id, context.patient_reference) == ("enc-1", "Patient/1")
    bad = tmp_path / "m.json"
    bad.write_text('{"encounter_id": "e", "patient_reference": 5}')
    with pytest.raises(InputError, match="'patient_reference' must be text"):
        load_context_file(bad)
