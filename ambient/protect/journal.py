"""Sealed encounter journals: audio and words as length-prefixed AES-GCM records, one per append.

Why records and not a sealed file: the journal is appended every ~100 ms and must survive
``kill -9``; sealing the whole file would mean rewriting it on every append. Each append becomes::

    length (4 bytes, big-endian) | envelope (ambient.protect.sealed)

and each record's associated data names the encounter, the file and the record's number
(``enc-7/audio/12``), so records cannot be reordered, dropped from the middle, or moved to
another encounter's journal without failing to open.

A kill leaves at most one torn record at the end of each file: the length, or the envelope, is
short. Readers drop it (``torn_tail``); a journal reopened for appending cuts it off first, so new
records start on a boundary. A *complete* last record that does not open is treated the same way
(a power cut can leave a zero-filled block); one in the middle is tampering and is an error that
names the file and the record.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ambient.atomic import atomic_write_bytes, atomic_write_text
from ambient.protect.sealed import NONCE_BYTES, TAG_BYTES, Protector, SealedDataError, frame, key_id_of

FORMAT = "ambient-journal-2"
AUDIO = "audio.pcm"
WORDS = "words.jsonl"
META = "meta.json"
_LEN = struct.Struct(">I")
KINDS = {AUDIO: "journal.audio", WORDS: "journal.words"}
_PART = {AUDIO: "audio", WORDS: "words"}


def _context(encounter_id: str, name: str, number: int) -> str:
    return f"{encounter_id}/{_PART[name]}/{number}"


@dataclass(frozen=True)
class _Record:
    number: int
    offset: int  # of the length prefix
    envelope: bytes


def _records(data: bytes) -> tuple[list[_Record], int]:
    """Complete records, and the byte offset where the complete ones end (a torn tail after it)."""
    out: list[_Record] = []
    at = 0
    while at + _LEN.size <= len(data):
        (size,) = _LEN.unpack_from(data, at)
        end = at + _LEN.size + size
        if end > len(data):
            break
        out.append(_Record(len(out), at, data[at + _LEN.size : end]))
        at = end
    return out, at


def _open_all(path: Path, encounter_id: str, protector: Protector) -> tuple[list[bytes], bool, int]:
    """Plaintexts of a file's records, whether a torn tail was dropped, and where the good part ends."""
    data = path.read_bytes() if path.exists() else b""
    records, end = _records(data)
    torn = end != len(data)
    plain: list[bytes] = []
    kind = KINDS[path.name]
    for record in records:
        where = f"{path} record {record.number + 1} (byte {record.offset})"
        try:
            plain.append(
                protector.open(
                    record.envelope,
                    kind,
                    where=where,
                    context=_context(encounter_id, path.name, record.number),
                )
            )
        except SealedDataError:
            if record is not records[-1] or torn:
                raise
            return plain, True, record.offset  # a damaged last record: a torn tail, dropped
    return plain, torn, end


class RecordSealer:
    """Seals one journal's appends; numbers records so that they open only in place."""

    def __init__(
        self, encounter_id: str, protector: Protector, audio_records: int, words_records: int
    ) -> None:
        self.encounter_id = encounter_id
        self.protector = protector
        self._next = {AUDIO: audio_records, WORDS: words_records}
        self.audio_bytes = 0

    @classmethod
    def reopen(cls, folder: Path, encounter_id: str, protector: Protector) -> RecordSealer:
        counts = {}
        audio_bytes = 0
        for name in (AUDIO, WORDS):
            path = folder / name
            if not path.exists():
                counts[name] = 0
                continue
            plain, torn, end = _open_all(path, encounter_id, protector)
            if torn:
                os.truncate(path, end)
            counts[name] = len(plain)
            if name == AUDIO:
                audio_bytes = sum(len(p) for p in plain)
        sealer = cls(encounter_id, protector, counts[AUDIO], counts[WORDS])
        sealer.audio_bytes = audio_bytes
        return sealer

    def _record(self, name: str, data: bytes) -> bytes:
        number = self._next[name]
        self._next[name] = number + 1
        return frame(
            self.protector.seal(data, KINDS[name], _context(self.encounter_id, name, number), force=True)
        )

    def audio_record(self, pcm: bytes) -> bytes:
        self.audio_bytes += len(pcm)
        return self._record(AUDIO, pcm)

    def words_record(self, lines: bytes) -> bytes:
        return self._record(WORDS, lines)

    def unwrite(self, name: str, plain_bytes: int = 0) -> None:
        """The last record was not written (the journal rolled it back on a full disk): its number
        is used again by the next record, so the file stays a gapless sequence."""
        self._next[name] -= 1
        if name == AUDIO:
            self.audio_bytes -= plain_bytes


def seal_meta(meta: dict[str, Any], protector: Protector) -> dict[str, Any]:
    """Encounter metadata (patient and encounter references) sealed; ids and times stay readable."""
    body = json.dumps(meta.get("metadata") or {}, sort_keys=True).encode("utf-8")
    sealed = protector.seal(body, "journal.meta", str(meta["encounter_id"]), force=True)
    return {**meta, "metadata": {}, "metadata_sealed": sealed.hex()}


def open_meta(meta: dict[str, Any], folder: Path, protector: Protector) -> dict[str, Any]:
    if not meta.get("metadata_sealed"):
        return meta
    try:
        raw = bytes.fromhex(str(meta["metadata_sealed"]))
    except ValueError:
        raise SealedDataError(
            f"{folder / META}: metadata_sealed is damaged; restore it from a backup"
        ) from None
    body = protector.open(raw, "journal.meta", where=str(folder / META), context=str(meta["encounter_id"]))
    opened = {k: v for k, v in meta.items() if k != "metadata_sealed"}
    opened["metadata"] = json.loads(body)
    return opened


@dataclass(frozen=True)
class Opened:
    meta: dict[str, Any]
    audio_bytes: int
    words: bytes  # the JSON lines, as a plain journal holds them
    torn_tail: bool


def _audio_length(path: Path, encounter_id: str, protector: Protector) -> tuple[int, bool]:
    """PCM bytes in the audio file, from the record sizes; only the last record is opened.

    Reading a journal needs the audio's length, not the audio: recovering a 15-minute encounter
    would otherwise decrypt ~9,000 records to count them. :func:`read_audio` opens every record.
    """
    data = path.read_bytes() if path.exists() else b""
    records, end = _records(data)
    torn = end != len(data)
    if records and not torn:
        last = records[-1]
        try:
            protector.open(
                last.envelope,
                KINDS[AUDIO],
                where=str(path),
                context=_context(encounter_id, AUDIO, last.number),
            )
        except SealedDataError:
            records, torn = records[:-1], True  # a damaged last record: a torn tail, dropped
    size = sum(len(r.envelope) - 6 - r.envelope[5] - NONCE_BYTES - TAG_BYTES for r in records)
    return size, torn


def read(folder: Path, meta: dict[str, Any], protector: Protector) -> Opened:
    encounter_id = str(meta["encounter_id"])
    audio_bytes, torn_audio = _audio_length(folder / AUDIO, encounter_id, protector)
    words, torn_words, _ = _open_all(folder / WORDS, encounter_id, protector)
    return Opened(
        meta=open_meta(meta, folder, protector),
        audio_bytes=audio_bytes,
        words=b"".join(words),
        torn_tail=torn_audio or torn_words,
    )


def read_audio(folder: Path, meta: dict[str, Any], protector: Protector) -> bytes:
    audio, _, _ = _open_all(folder / AUDIO, str(meta["encounter_id"]), protector)
    return b"".join(audio)


def key_ids(folder: Path) -> set[str]:
    """Every key a sealed journal's records and metadata use (no decryption)."""
    found: set[str] = set()
    for name in (AUDIO, WORDS):
        path = folder / name
        if path.exists():
            records, _ = _records(path.read_bytes())
            found.update(k for r in records if (k := key_id_of(r.envelope)) is not None)
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    if meta.get("metadata_sealed"):
        kid = key_id_of(bytes.fromhex(str(meta["metadata_sealed"])))
        if kid is not None:
            found.add(kid)
    return found


def reseal(folder: Path, protector: Protector) -> int:
    """Rewrite a *closed* sealed journal under the active key; returns the records re-sealed.

    Each file is replaced atomically, so an interrupted rotation leaves every file whole, under
    the old key or the new one; both keys are kept until rotation finishes.
    """
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    encounter_id = str(meta["encounter_id"])
    count = 0
    for name in (AUDIO, WORDS):
        path = folder / name
        if not path.exists():
            continue
        records, _ = _records(path.read_bytes())
        if not any(protector.needs_reseal(r.envelope) for r in records):
            continue
        plain, _, _ = _open_all(path, encounter_id, protector)
        out = b"".join(
            frame(protector.seal(p, KINDS[name], _context(encounter_id, name, n), force=True))
            for n, p in enumerate(plain)
        )
        atomic_write_bytes(path, out)
        count += len(plain)
    if meta.get("metadata_sealed") and protector.needs_reseal(bytes.fromhex(str(meta["metadata_sealed"]))):
        atomic_write_text(
            folder / META, json.dumps(seal_meta(open_meta(meta, folder, protector), protector), indent=2)
        )
        count += 1
    return count


def iter_records(path: Path) -> Iterator[bytes]:
    """Envelopes of a journal file's complete records (for tests and tools; no decryption)."""
    records, _ = _records(path.read_bytes() if path.exists() else b"")
    for record in records:
        yield record.envelope
