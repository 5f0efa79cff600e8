"""A full disk while recording: tell the clinician at once, keep the journal whole, go on when space returns.

Why check before writing instead of only catching ``ENOSPC``: the journal is written by the
streaming runtime after a frame is queued; a write that fails there ends the stream, and
everything the clinician says afterwards would be lost without a word. So the agent asks the
file system (``statvfs``, microseconds) before it accepts each frame: below ``reserve_bytes``
free (room left for the note, the inbox and the audit trail at stop) the frame is dropped, the
encounter shows ``disk_full`` in ``status``, and one ``error`` message (``code: disk_full``) goes
to the sender and subscribers. When space is back the next frame is accepted again and a
``resumed`` message says so. A write that still fails (another program filled the disk between
the check and the write) is rolled back by the journal itself, so it never holds half a frame.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

RESERVE_BYTES = 2 * 1024 * 1024


@dataclass
class DiskGuard:
    folder: Path
    reserve_bytes: int = RESERVE_BYTES
    full: bool = False
    dropped_s: float = 0.0  # audio refused while the disk was full

    def free_bytes(self) -> int:
        stats = os.statvfs(self.folder)
        return stats.f_bavail * stats.f_frsize

    def admit(self, frame_bytes: int) -> str | None:
        """Whether a frame may be journaled; returns ``"full"`` or ``"recovered"`` on a change."""
        try:
            room = self.free_bytes() - frame_bytes >= self.reserve_bytes
        except OSError:
            room = False
        if room == (not self.full):
            return None
        self.full = not room
        return "full" if self.full else "recovered"

    def message(self, encounter_id: str, change: str) -> dict[str, object]:
        if change == "full":
            return {
                "type": "error",
                "code": "disk_full",
                "encounter_id": encounter_id,
                "message": f"the disk holding the encounter journal ({self.folder.parent}) is full: audio is "
                "NOT being recorded; free some space and recording continues by itself",
            }
        return {
            "type": "resumed",
            "encounter_id": encounter_id,
            "reason": "disk_space_returned",
            "dropped_s": round(self.dropped_s, 2),
        }
