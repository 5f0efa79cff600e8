"""FHIR R4 sink: the note as a DocumentReference in the EHR's inbox, created exactly once.

One delivery is: find earlier *current* drafts of the same encounter and template (series
identifier), conditionally create this draft (``If-None-Exist`` on its draft identifier, so a retry
after a lost reply returns the first copy), mark the earlier drafts ``superseded`` (this one
``relatesTo`` them with ``replaces``), and optionally write a Composition (PUT to an id derived
from the note's sha256, so it too exists once) and create a review Task. Every step is safe to
repeat, which is what lets the outbox retry blindly.

Errors: no connection, timeouts, 408/429/5xx are retryable; any other 4xx is permanent, with the
server's OperationOutcome diagnostics as the reason. TLS certificates are always verified.
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from ambient.ehr.errors import PermanentDeliveryError, RetryableDeliveryError, TargetError, short_reason
from ambient.ehr.fhir_resources import (
    DRAFT_SYSTEM,
    SERIES_SYSTEM,
    composition,
    document_reference,
    draft_identifier,
    review_task,
    series_identifier,
)
from ambient.ehr.options import DeliveryOptions
from ambient.ehr.smart import SmartTokenSource
from ambient.notes.render import note_sha256
from ambient.types import DeliveryReceipt, EncounterContext, NoteDraft

FHIR_JSON = "application/fhir+json"
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return short_reason(response.text or response.reason_phrase)
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        issues = body.get("issue")
        issues = [i for i in issues if isinstance(i, dict)] if isinstance(issues, list) else []
        texts = [str(i.get("diagnostics") or i.get("code", "")) for i in issues]
        return short_reason("; ".join(t for t in texts if t) or response.reason_phrase)
    return short_reason(response.reason_phrase)


def _retry_after_s(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds (delta or HTTP date); None when absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value) if len(value) <= 9 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class _Malformed(RetryableDeliveryError):
    """The server answered 2xx with something that is not the FHIR we asked for (a proxy's HTML
    page, a truncated body). Retrying is safe (every step is idempotent) and bounded by the outbox."""


def _object(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except (ValueError, RecursionError):
        raise _Malformed(f"{what} answered {response.status_code} with a body that is not JSON") from None
    if not isinstance(body, dict):
        raise _Malformed(f"{what} answered {response.status_code} with JSON that is not a resource")
    return body


def _certificate_problem(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class FhirSink:
    name = "fhir"

    def __init__(self, base_url: str, options: DeliveryOptions | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise TargetError(f"FHIR target {base_url!r} must be an http(s) URL, e.g. fhir:https://ehr/fhir")
        self.base_url = base_url.rstrip("/")
        self.options = options or DeliveryOptions()
        verify: ssl.SSLContext | bool = True
        if self.options.ca_file:
            verify = ssl.create_default_context(cafile=self.options.ca_file)
        self.client = httpx.Client(timeout=self.options.fhir_timeout_s, verify=verify)
        self.tokens = (
            SmartTokenSource(self.options.smart, self.base_url, self.client) if self.options.smart else None
        )

    def close(self) -> None:
        self.client.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = f"{self.base_url}/{path}"
        for attempt in (1, 2):
            headers = {"Accept": FHIR_JSON, **kwargs.pop("headers", {})}
            if self.tokens is not None:
                headers["Authorization"] = f"Bearer {self.tokens.token()}"
            try:
                response = self.client.request(method, url, headers=headers, **kwargs)
            except httpx.TransportError as exc:
                if _certificate_problem(exc):
                    raise PermanentDeliveryError(
                        f"the TLS certificate of {self.base_url} is not trusted; install the site CA "
                        "and set [fhir] ca_file in delivery.toml (verification is never turned off)"
                    ) from None
                raise RetryableDeliveryError(
                    f"FHIR server {self.base_url} unreachable ({type(exc).__name__}); will retry"
                ) from None
            if response.status_code == 401 and self.tokens is not None and attempt == 1:
                self.tokens.invalidate()  # expired or revoked token: fetch a new one once
                kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
                continue
            what = f"FHIR {method} {path.split('?')[0]}"
            if response.status_code in _RETRY_STATUS:
                raise RetryableDeliveryError(
                    f"{what} answered {response.status_code} ({_reason(response)})", _retry_after_s(response)
                )
            if response.status_code >= 400:
                raise PermanentDeliveryError(f"{what} refused: {response.status_code} {_reason(response)}")
            return response
        raise AssertionError("unreachable")

    def _search(self, rtype: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """Matching resources that carry an id; a Bundle of any other shape is a server fault."""
        bundle = _object(self._request("GET", f"{rtype}?{urlencode(params)}"), f"FHIR search {rtype}")
        entries = bundle.get("entry", [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise _Malformed(f"FHIR search {rtype} returned a Bundle whose entry is not a list of objects")
        found: list[dict[str, Any]] = []
        for entry in entries:
            search = entry.get("search")
            if isinstance(search, dict) and search.get("mode", "match") != "match":
                continue
            resource = entry.get("resource")
            if not isinstance(resource, dict) or not isinstance(resource.get("id"), str):
                raise _Malformed(f"FHIR search {rtype} returned an entry without a resource id")
            found.append(resource)
        return found

    def _create(self, resource: dict[str, Any], draft: str) -> dict[str, Any]:
        response = self._request(
            "POST",
            resource["resourceType"],
            json=resource,
            headers={
                "Content-Type": FHIR_JSON,
                "If-None-Exist": urlencode({"identifier": f"{DRAFT_SYSTEM}|{draft}"}),
                "Prefer": "return=representation",
            },
        )
        what = f"FHIR POST {resource['resourceType']}"
        created: dict[str, Any] = _object(response, what) if response.content else {}
        if not created.get("id") or not isinstance(created["id"], str):
            location = response.headers.get("Location", "")
            rid = location.split(f"{resource['resourceType']}/", 1)[-1].split("/", 1)[0]
            if not rid:
                raise PermanentDeliveryError(
                    f"FHIR server {self.base_url} returned no id for the created resource"
                )
            created = {**resource, "id": rid}
        return created

    def deliver(self, note: NoteDraft, context: EncounterContext) -> DeliveryReceipt:
        if not context.patient_reference:
            raise PermanentDeliveryError(
                f"encounter {note.encounter_id} has no patient_reference; FHIR delivery needs encounter "
                "metadata (--context META.json with patient_reference, encounter_reference, author_reference)"
            )
        draft = draft_identifier(note)
        earlier = [
            doc["id"]
            for doc in self._search(
                "DocumentReference",
                {"identifier": f"{SERIES_SYSTEM}|{series_identifier(note)}", "status": "current"},
            )
            if not any(
                isinstance(i, dict) and i.get("value") == draft for i in _listed(doc.get("identifier"))
            )
        ]
        created = self._create(document_reference(note, context, tuple(earlier)), draft)
        for rid in earlier:
            old = _object(self._request("GET", f"DocumentReference/{rid}"), "FHIR GET DocumentReference")
            if old.get("status") == "current":
                old["status"] = "superseded"
                self._request(
                    "PUT", f"DocumentReference/{rid}", json=old, headers={"Content-Type": FHIR_JSON}
                )
        locations = [f"{self.base_url}/DocumentReference/{created['id']}"]
        if self.options.fhir_composition:
            resource = composition(note, context)
            self._request(
                "PUT", f"Composition/{resource['id']}", json=resource, headers={"Content-Type": FHIR_JSON}
            )
            locations.append(f"{self.base_url}/Composition/{resource['id']}")
        if self.options.fhir_task:
            task = self._create(review_task(note, context, created["id"]), draft)
            locations.append(f"{self.base_url}/Task/{task['id']}")
        return DeliveryReceipt(
            sink=self.name,
            encounter_id=note.encounter_id,
            note_sha256=note_sha256(note),
            locations=tuple(locations),
            delivered_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )


def _listed(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def open_sink(rest: str, options: DeliveryOptions) -> FhirSink:
    return FhirSink(rest, options)
