"""Delivery errors raised by the editor sink: the shared classes of :mod:`ambient.ehr.errors`.

Re-exported here so the bridge's modules keep their imports; the outbox tells *retry later* from
*never works* by these exact classes, so there must be only one of each.
"""

from __future__ import annotations

from ambient.ehr.errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError

__all__ = ["DeliveryError", "PermanentDeliveryError", "RetryableDeliveryError"]
