"""The one interface every road into the EHR implements, and the registry that picks one.

A sink takes a drafted note plus the encounter's EHR context and returns a receipt, or raises
:class:`~ambient.ehr.errors.RetryableDeliveryError` (try later) or
:class:`~ambient.ehr.errors.PermanentDeliveryError` (dead-letter). Sinks are synchronous and
blocking: the outbox (or the agent's runtime, through ``asyncio.to_thread``) owns scheduling.

Targets are strings a person can type: ``inbox:DIR``, ``fhir:https://host/fhir``,
``mllp://HOST:PORT``, ``editor``. The registry maps the scheme to ``module:function`` and imports
it only when used, so ``ambient note`` never pays for httpx or the FHIR models. Adding a road is one
line in :data:`SINKS`; each factory is ``open_sink(rest: str, options: DeliveryOptions) -> Sink``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ambient.ehr.errors import TargetError
from ambient.ehr.options import DeliveryOptions
from ambient.types import DeliveryReceipt, EncounterContext, NoteDraft


@runtime_checkable
class Sink(Protocol):
    name: str

    def deliver(self, note: NoteDraft, context: EncounterContext) -> DeliveryReceipt: ...


class SinkFactory(Protocol):
    def __call__(self, rest: str, options: DeliveryOptions) -> Sink: ...


SINKS: dict[str, str] = {
    "inbox": "ambient.ehr.inbox:open_sink",
    "fhir": "ambient.ehr.fhir:open_sink",
    "mllp": "ambient.ehr.mllp:open_sink",
    "editor": "ambient.ehr.editor_bridge.sink:open_sink",
}

TARGET_HELP = "inbox:DIR, fhir:https://HOST/fhir, mllp://HOST:PORT" + (
    ", editor" if "editor" in SINKS else ""
)


def split_target(target: str) -> tuple[str, str]:
    """``"fhir:https://x/fhir"`` → ``("fhir", "https://x/fhir")``; ``"editor"`` → ``("editor", "")``."""
    scheme, _, rest = target.partition(":")
    scheme = scheme.strip().lower()
    if scheme not in SINKS:
        raise TargetError(f"unknown delivery target {target!r}; use one of: {TARGET_HELP}")
    return scheme, rest


def canonical_target(target: str) -> str:
    """One spelling per destination: the outbox's idempotency key is (note sha, this)."""
    scheme, rest = split_target(target)
    if scheme == "inbox":
        if not rest:
            raise TargetError("inbox target needs a folder: inbox:DIR")
        return f"inbox:{Path(rest).expanduser().resolve()}"
    if scheme == "fhir":
        return f"fhir:{rest.rstrip('/')}"
    return f"{scheme}:{rest}" if rest else scheme


if TYPE_CHECKING:  # mypy proves that every built-in road satisfies the protocol
    from ambient.ehr.editor_bridge.sink import EditorSink
    from ambient.ehr.fhir import FhirSink
    from ambient.ehr.inbox import InboxSink
    from ambient.ehr.mllp import MllpSink

    def _roads(inbox: InboxSink, fhir: FhirSink, mllp: MllpSink, editor: EditorSink) -> tuple[Sink, ...]:
        return (inbox, fhir, mllp, editor)


def open_sink(target: str, options: DeliveryOptions | None = None) -> Sink:
    scheme, rest = split_target(target)
    module_name, _, func_name = SINKS[scheme].partition(":")
    factory: SinkFactory = getattr(importlib.import_module(module_name), func_name)
    return factory(rest, options or DeliveryOptions())
