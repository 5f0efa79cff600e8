"""Delivery errors raised by the editor sink.

These mirror ``ambient/ehr/errors.py`` from the delivery branch (same names, codes and exit code)
so the outbox can tell *retry later* from *never works*. TODO(merge): when that module lands,
replace this file's classes with ``from ambient.ehr.errors import ...`` and delete them here.
"""

from __future__ import annotations

from ambient.errors import AmbientError


class DeliveryError(AmbientError):
    exit_code = 7
    code = "AMB-E600"


class RetryableDeliveryError(DeliveryError):
    """No editor connected or focused, or it did not answer in time: try again later."""

    code = "AMB-E601"


class PermanentDeliveryError(DeliveryError):
    """The editor refused the insert (read-only, unknown editor): retrying would not help."""

    code = "AMB-E602"
