"""SMART Backend Services tokens: client_credentials with a private_key_jwt client assertion.

The assertion is signed RS384 (or ES384), lives at most 5 minutes (SMART servers reject longer;
Authlib's default of one hour is refused) and carries a fresh ``jti`` each time so a replayed
assertion is rejected. The access token is cached until shortly before it expires.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import jwt

from ambient.ehr.errors import PermanentDeliveryError, RetryableDeliveryError, short_reason
from ambient.ehr.options import SmartAuth

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_EARLY_REFRESH_S = 30.0


def client_assertion(auth: SmartAuth, token_url: str, key_pem: bytes, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": auth.client_id,
        "sub": auth.client_id,
        "aud": token_url,
        "iat": issued,
        "exp": issued + min(auth.assertion_lifetime_s, 300),
        "jti": uuid.uuid4().hex,
    }
    headers = {"kid": auth.kid} if auth.kid else None
    return jwt.encode(claims, key_pem, algorithm=auth.alg, headers=headers)


class SmartTokenSource:
    def __init__(self, auth: SmartAuth, fhir_base: str, client: httpx.Client) -> None:
        self.auth = auth
        self.fhir_base = fhir_base.rstrip("/")
        self.client = client
        self._token: str | None = None
        self._expires_at = 0.0
        self._token_url = auth.token_url

    def _key(self) -> bytes:
        try:
            return Path(self.auth.private_key_path).expanduser().read_bytes()
        except OSError as exc:
            raise PermanentDeliveryError(
                f"cannot read SMART private key {self.auth.private_key_path}: {exc.strerror or exc}"
            ) from None

    def token_url(self) -> str:
        if not self._token_url:
            url = f"{self.fhir_base}/.well-known/smart-configuration"
            try:
                response = self.client.get(url, headers={"Accept": "application/json"})
            except httpx.HTTPError as exc:
                raise RetryableDeliveryError(
                    f"SMART discovery at {url} failed: {type(exc).__name__}"
                ) from None
            if response.status_code != 200:
                raise PermanentDeliveryError(
                    f"SMART discovery at {url} answered {response.status_code}; set [fhir.smart] token_url"
                )
            endpoint = response.json().get("token_endpoint")
            if not isinstance(endpoint, str) or not endpoint:
                raise PermanentDeliveryError(f"{url} names no token_endpoint; set [fhir.smart] token_url")
            self._token_url = endpoint
        return self._token_url

    def invalidate(self) -> None:
        self._token = None

    def token(self) -> str:
        if self._token and time.monotonic() < self._expires_at:
            return self._token
        url = self.token_url()
        form = {
            "grant_type": "client_credentials",
            "scope": self.auth.scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(self.auth, url, self._key()),
        }
        try:
            response = self.client.post(url, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise RetryableDeliveryError(
                f"SMART token request to {url} failed: {type(exc).__name__}"
            ) from None
        if response.status_code >= 500 or response.status_code == 429:
            raise RetryableDeliveryError(f"SMART token endpoint {url} answered {response.status_code}")
        body = (
            response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        )
        if response.status_code != 200 or "access_token" not in body:
            reason = short_reason(f"{body.get('error', '')} {body.get('error_description', '')}")
            raise PermanentDeliveryError(
                f"SMART token endpoint {url} refused client {self.auth.client_id} "
                f"({response.status_code} {reason}); check the registered key and scopes"
            )
        self._token = str(body["access_token"])
        lifetime = float(body.get("expires_in", 300))
        self._expires_at = time.monotonic() + max(lifetime - _EARLY_REFRESH_S, 1.0)
        return self._token
