"""Delivering what a batch drafts: each new note goes through the outbox to the configured targets.

Drafting and delivery stay separate: a note that cannot be delivered now (the FHIR server is down)
is still drafted, written and marked done, and waits in the durable outbox for
``ambient outbox drain`` — a batch never re-transcribes audio because a peer was away. Encounter
metadata for a recording, when a site has it, sits beside the audio as ``NAME.context.json`` (or
``.toml``): same fields as ``ambient deliver --context``.
"""

from __future__ import annotations

from pathlib import Path

from ambient.config import Paths
from ambient.ehr.context import load_context_file
from ambient.ehr.options import load_delivery_options
from ambient.ehr.outbox import Outbox
from ambient.types import EncounterContext, NoteDraft


def context_beside(audio: Path, encounter_id: str) -> EncounterContext:
    """``NAME.context.json``/``.toml`` next to ``NAME.wav``, else just the encounter id."""
    for suffix in (".context.json", ".context.toml"):
        candidate = audio.with_name(audio.stem + suffix)
        if candidate.is_file():
            return load_context_file(candidate, encounter_id)
    return EncounterContext(encounter_id=encounter_id)


class BatchDelivery:
    """One outbox for the whole run; each finished note is queued for every target and tried once."""

    def __init__(self, paths: Paths, targets: tuple[str, ...]) -> None:
        self.targets = targets
        self.outbox = Outbox.for_paths(paths, load_delivery_options(paths, None))
        self.delivered = 0
        self.pending = 0
        self.dead = 0

    def note_done(self, note: NoteDraft, audio: Path) -> None:
        """Queue a finished encounter's note (read back from its output store) for every target."""
        context = context_beside(audio, note.encounter_id)
        ids = [self.outbox.enqueue(note, context, target)[0].id for target in self.targets]
        for item in self.outbox.drain_until_settled(ids, timeout_s=0.0):
            if item.state == "delivered":
                self.delivered += 1
            elif item.state == "dead":
                self.dead += 1
            else:
                self.pending += 1

    def report(self) -> str:
        line = f"delivery to {', '.join(self.targets)}: {self.delivered} delivered"
        if self.pending:
            line += f", {self.pending} queued (peer unavailable; `ambient outbox drain` retries)"
        if self.dead:
            line += f", {self.dead} refused (see `ambient outbox list`)"
        return line

    def close(self) -> None:
        self.outbox.close()
