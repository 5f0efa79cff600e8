"""Delivery settings: ``<config dir>/delivery.toml`` → one typed, frozen options object.

Kept apart from ``ambient.toml`` because it holds integration details (token URLs, key paths,
HL7 application names) that an integrator owns and a clinician never edits. Sections::

    [fhir]    timeout_s, ca_file, task (also route the draft with a FHIR Task), composition (also
              write a Composition with LOINC-coded sections)
    [fhir.smart]  client_id, private_key_path, token_url (empty: discovered), scope, kid
    [hl7]     sending_application, sending_facility, receiving_application, receiving_facility,
              timeout_s
    [outbox]  max_attempts, backoff_base_s, backoff_max_s

TLS verification is always on; ``ca_file`` adds a site CA, it never turns checking off.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ambient.config import Paths
from ambient.errors import ConfigError


@dataclass(frozen=True)
class SmartAuth:
    """SMART Backend Services: client_credentials with a private_key_jwt client assertion."""

    client_id: str
    private_key_path: str
    token_url: str = ""
    scope: str = "system/DocumentReference.cruds system/Task.cruds"
    kid: str = ""
    alg: str = "RS384"
    assertion_lifetime_s: int = 240  # servers reject more than 300 s


@dataclass(frozen=True)
class DeliveryOptions:
    fhir_timeout_s: float = 10.0
    ca_file: str = ""
    fhir_task: bool = False
    fhir_composition: bool = False
    smart: SmartAuth | None = None
    sending_application: str = "AMBIENT"
    sending_facility: str = "AMBIENT"
    receiving_application: str = "EHR"
    receiving_facility: str = "EHR"
    hl7_timeout_s: float = 10.0
    max_attempts: int = 10
    backoff_base_s: float = 2.0
    backoff_max_s: float = 900.0


_FLAT = {
    "fhir": {
        "timeout_s": "fhir_timeout_s",
        "ca_file": "ca_file",
        "task": "fhir_task",
        "composition": "fhir_composition",
    },
    "hl7": {
        "sending_application": "sending_application",
        "sending_facility": "sending_facility",
        "receiving_application": "receiving_application",
        "receiving_facility": "receiving_facility",
        "timeout_s": "hl7_timeout_s",
    },
    "outbox": {
        "max_attempts": "max_attempts",
        "backoff_base_s": "backoff_base_s",
        "backoff_max_s": "backoff_max_s",
    },
}
_DEFAULTS = DeliveryOptions()


def _typed(value: Any, default: Any, where: str) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where}: expected a positive whole number, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{where}: expected a positive number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected text, got {value!r}")
    return value


def options_from_dict(data: dict[str, Any], origin: str) -> DeliveryOptions:
    values: dict[str, Any] = {}
    for section, table in data.items():
        if section not in _FLAT or not isinstance(table, dict):
            raise ConfigError(f"unknown section [{section}] in {origin}; known: fhir, hl7, outbox")
        for key, value in table.items():
            where = f"[{section}] {key} in {origin}"
            if section == "fhir" and key == "smart":
                values["smart"] = _smart(value, origin)
                continue
            if key not in _FLAT[section]:
                raise ConfigError(f"unknown setting {where}; known: {', '.join(sorted(_FLAT[section]))}")
            attr = _FLAT[section][key]
            values[attr] = _typed(value, getattr(_DEFAULTS, attr), where)
    return DeliveryOptions(**values)


def _smart(table: Any, origin: str) -> SmartAuth:
    if not isinstance(table, dict):
        raise ConfigError(f"[fhir.smart] in {origin} must be a table")
    known = {f.name for f in fields(SmartAuth)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"unknown setting [fhir.smart] {unknown[0]} in {origin}; known: {', '.join(sorted(known))}"
        )
    for key in ("client_id", "private_key_path"):
        if not isinstance(table.get(key), str) or not table[key]:
            raise ConfigError(f"[fhir.smart] {key} in {origin} is required")
    smart = SmartAuth(**table)
    if smart.alg not in {"RS384", "ES384"}:
        raise ConfigError(f"[fhir.smart] alg in {origin} must be RS384 or ES384 (SMART backend services)")
    if not 0 < smart.assertion_lifetime_s <= 300:
        raise ConfigError(f"[fhir.smart] assertion_lifetime_s in {origin} must be 1..300 seconds")
    return smart


def load_delivery_options(paths: Paths, file: Path | None = None) -> DeliveryOptions:
    """Options from ``file``, ``$AMBIENT_DELIVERY_CONFIG`` or ``<config dir>/delivery.toml``."""
    explicit = file or (
        Path(os.environ["AMBIENT_DELIVERY_CONFIG"]) if os.environ.get("AMBIENT_DELIVERY_CONFIG") else None
    )
    path = explicit or paths.config_dir / "delivery.toml"
    if not path.is_file():
        if explicit is not None:
            raise ConfigError(f"delivery config {path} does not exist")
        return DeliveryOptions()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix or remove it") from None
    return options_from_dict(data, str(path))
