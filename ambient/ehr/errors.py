"""Delivery errors: the one split every sink must make is *retry later* versus *never works*.

::

    AmbientError
    └── DeliveryError               exit 7: a note could not be delivered (it stays in the outbox)
        ├── RetryableDeliveryError  the peer is down, slow or overloaded: back off and try again
        └── PermanentDeliveryError  the peer said no (HL7 AE/AR, FHIR 4xx): dead-letter with the reason
    UsageError
    └── TargetError                 a --to target or delivery setting cannot be understood

The outbox decides what to do from the class alone, so a sink must never raise a bare exception
for a network problem: wrap it in :class:`RetryableDeliveryError`. Messages carry ids, status codes
and the peer's short reason, never note text.
"""

from __future__ import annotations

from ambient.errors import AmbientError, UsageError


class DeliveryError(AmbientError):
    exit_code = 7
    code = "AMB-E600"


class RetryableDeliveryError(DeliveryError):
    """``retry_after_s``: the peer said when to come back (HTTP ``Retry-After``); the outbox waits at
    least that long, because retrying an overloaded server sooner only prolongs the overload."""

    code = "AMB-E601"

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermanentDeliveryError(DeliveryError):
    code = "AMB-E602"


class TargetError(UsageError):
    code = "AMB-E104"


def short_reason(text: str, limit: int = 300) -> str:
    """A peer's reason, one line and bounded: it ends up in the outbox and on a terminal."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
