"""The encounter journal: audio and committed words on disk as they arrive, and recovery.

A live encounter must survive a crash, ``kill -9`` or a power cut. Each encounter gets a folder
under ``<data dir>/encounters/<encounter id>/``::

    meta.json       written once at the start (atomically): id, start time, model, format
    audio.pcm       16-bit little-endian PCM, 16 kHz mono, appended chunk by chunk
    words.jsonl     one JSON line per committed-words event, appended as committed
    closed.json     written (atomically) when the encounter ended normally

Appends go straight to the file descriptor (``os.write``, no user-space buffer), so a killed
process loses nothing it had handed to the journal. Both files are ``fsync``'d once at least
``sync_every_s`` of audio has arrived since the last sync (one second by default), so a power
cut loses at most about that much. The counter is audio time, not a wall clock: the journal
stays deterministic under test.

Recovery reads what is there and tolerates the torn tail a kill can leave: a half-written JSON
line is dropped, and audio is cut to whole samples. No transcript text goes to any log.

Sealed journals (format ``ambient-journal-2``, the default; see :mod:`ambient.protect.journal`):
both files hold length-prefixed AES-GCM records instead, one per append, so a kill still tears
at most the last record, which recovery drops (and a reopened journal cuts off before appending).
The encounter metadata in ``meta.json`` is sealed too. Format 1 journals are still read.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ambient import PIPELINE_VERSION
from ambient.asr.whisper import split_sentences
from ambient.atomic import atomic_write_text, ensure_dir
from ambient.config import Paths
from ambient.errors import InputError, OutputError
from ambient.protect import journal as sealed_journal
from ambient.protect.sealed import Protector
from ambient.streaming.events import CommittedWords, Event
from ambient.types import ModelRef, Segment, Transcript, TranscriptHeader, Word

SAMPLE_RATE_HZ = 16000
_BYTES_PER_SAMPLE = 2
META = "meta.json"
AUDIO = "audio.pcm"
WORDS = "words.jsonl"
CLOSED = "closed.json"
AUDIO_RELEASED = "audio_released.json"  # [retention]: the audio was deleted after delivery
FORMAT = "ambient-journal-1"  # plain files
SEALED_FORMAT = sealed_journal.FORMAT  # length-prefixed sealed records


def encounters_dir(paths: Paths) -> Path:
    return paths.data_dir / "encounters"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class EncounterJournal:
    """Appends one encounter's audio and committed words; one writer per encounter."""

    def __init__(self, folder: Path, sync_every_s: float = 1.0, protector: Protector | None = None) -> None:
        self.folder = folder
        self.sync_every_s = sync_every_s
        meta = _read_meta(folder) if (folder / META).exists() else {}
        self._sealer: sealed_journal.RecordSealer | None = None
        if meta.get("format") == SEALED_FORMAT:
            # Reopened after a crash: cut a torn last record off, so appends start on a boundary.
            self._sealer = sealed_journal.RecordSealer.reopen(
                folder, str(meta["encounter_id"]), protector or Protector.for_paths()
            )
        else:
            _end_torn_line(folder / WORDS)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        try:
            self._audio_fd = os.open(folder / AUDIO, flags, 0o600)
            self._words_fd = os.open(folder / WORDS, flags, 0o600)
        except OSError as exc:
            raise OutputError(f"cannot write the encounter journal in {folder}: {exc.strerror}") from None
        if self._sealer is not None:
            self.audio_samples = self._sealer.audio_bytes // _BYTES_PER_SAMPLE
        else:
            self.audio_samples = os.fstat(self._audio_fd).st_size // _BYTES_PER_SAMPLE
        self._unsynced = 0
        self.syncs = 0
        self._closed = False

    @classmethod
    def create(
        cls,
        root: Path,
        encounter_id: str,
        model: ModelRef | None = None,
        metadata: dict[str, str] | None = None,
        sync_every_s: float = 1.0,
        protector: Protector | None = None,
    ) -> EncounterJournal:
        """Start a new encounter's journal; an id that already has one is refused.

        Sealed unless ``[protect] encrypt = false``: the metadata (patient references) goes into
        ``meta.json`` sealed, and audio and words are appended as sealed records.
        """
        if not encounter_id or "/" in encounter_id or encounter_id.startswith("."):
            raise InputError(f"encounter id {encounter_id!r} cannot name a folder; use letters, digits, '-'")
        folder = root / encounter_id
        if (folder / META).exists():
            raise InputError(
                f"encounter {encounter_id} already has a journal in {folder}; use another id, "
                "or recover it (`ambient listen --recover`)"
            )
        ensure_dir(folder)
        protector = protector or Protector.for_paths()
        meta: dict[str, Any] = {
            "format": SEALED_FORMAT if protector.seal_new else FORMAT,
            "encounter_id": encounter_id,
            "started_at": _now(),
            "sample_rate_hz": SAMPLE_RATE_HZ,
            "sample_format": "s16le",
            "model": None if model is None else model.__dict__,
            "metadata": metadata or {},
        }
        if protector.seal_new:
            meta = sealed_journal.seal_meta(meta, protector)
        atomic_write_text(folder / META, json.dumps(meta, indent=2))
        return cls(folder, sync_every_s, protector)

    def append_audio(self, samples: npt.NDArray[np.float32]) -> None:
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()
        try:
            _write_all(self._audio_fd, pcm if self._sealer is None else self._sealer.audio_record(pcm))
        except OutputError:
            if self._sealer is not None:
                self._sealer.unwrite(AUDIO, len(pcm))
            raise
        self.audio_samples += len(samples)
        self._unsynced += len(samples)
        if self._unsynced >= self.sync_every_s * SAMPLE_RATE_HZ:
            self.sync()

    def append_events(self, events: list[Event]) -> None:
        """Journal committed words (partials are not journaled: they will change)."""
        lines = [
            json.dumps({"words": [[w.word, w.start_s, w.end_s, w.probability] for w in e.words]}) + "\n"
            for e in events
            if isinstance(e, CommittedWords)
        ]
        if lines:
            data = "".join(lines).encode("utf-8")
            try:
                _write_all(self._words_fd, data if self._sealer is None else self._sealer.words_record(data))
            except OutputError:
                if self._sealer is not None:
                    self._sealer.unwrite(WORDS)
                raise

    def sync(self) -> None:
        os.fsync(self._audio_fd)
        os.fsync(self._words_fd)
        self._unsynced = 0
        self.syncs += 1

    def close(self) -> None:
        """The encounter ended normally: sync, and mark it closed so recovery leaves it alone."""
        if self._closed:
            return
        self.sync()
        os.close(self._audio_fd)
        os.close(self._words_fd)
        atomic_write_text(self.folder / CLOSED, json.dumps({"closed_at": _now()}))
        self._closed = True


def _end_torn_line(words: Path) -> None:
    """Plain journal reopened after a crash: a torn last line stays its own (dropped) line."""
    if words.exists() and words.stat().st_size and not words.read_bytes().endswith(b"\n"):
        with words.open("ab") as handle:
            handle.write(b"\n")


def journal_format(folder: Path) -> str:
    """``ambient-journal-2`` (sealed records) or ``ambient-journal-1`` (plain files)."""
    return str(_read_meta(folder).get("format", FORMAT))


def _read_meta(folder: Path) -> dict[str, Any]:
    try:
        meta: dict[str, Any] = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(
            f"{folder / META} is missing or unreadable ({exc}); not an encounter journal"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") not in {FORMAT, SEALED_FORMAT}:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise InputError(f"{folder / META}: not an encounter journal (format {found!r})")
    return meta


def _released(folder: Path) -> dict[str, Any]:
    try:
        found: dict[str, Any] = json.loads((folder / AUDIO_RELEASED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found


def _write_all(fd: int, data: bytes) -> None:
    """All of ``data`` or none of it: a full disk must not leave half a sample or half a line."""
    before = os.lseek(fd, 0, os.SEEK_END)
    view = memoryview(data)
    try:
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, before)  # shrinking needs no space
        raise OutputError(
            f"cannot append to the encounter journal ({exc.strerror}); free disk space, then resume"
        ) from None


@dataclass(frozen=True)
class Recovered:
    """What a journal holds, read back (after a crash or not)."""

    folder: Path
    encounter_id: str
    closed: bool
    audio_s: float
    words: tuple[Word, ...]
    meta: dict[str, Any]
    torn_tail: bool  # a half-written last line or sample was dropped

    @property
    def untranscribed_s(self) -> float:
        """Audio after the last committed word: to transcribe when finalising."""
        return max(0.0, self.audio_s - (self.words[-1].end_s if self.words else 0.0))


def read_journal(folder: Path, protector: Protector | None = None) -> Recovered:
    meta = _read_meta(folder)
    if meta.get("format") == SEALED_FORMAT:
        opened = sealed_journal.read(folder, meta, protector or Protector.for_paths())
        meta, audio_bytes, raw, torn = opened.meta, opened.audio_bytes, opened.words, opened.torn_tail
    else:
        audio_bytes = (folder / AUDIO).stat().st_size if (folder / AUDIO).exists() else 0
        raw = (folder / WORDS).read_bytes() if (folder / WORDS).exists() else b""
        torn = False
    released = _released(folder)
    if released and not (folder / AUDIO).exists():  # how long it was, for the rebuilt transcript
        audio_bytes = int(released.get("audio_bytes", 0))
    torn = torn or audio_bytes % _BYTES_PER_SAMPLE != 0
    words: list[Word] = []
    lines = raw.split(b"\n")
    if lines and lines[-1]:
        torn = True  # the last line has no newline: the writer died inside it
    for line in lines[:-1]:
        try:
            words += [Word(str(t), float(a), float(b), float(p)) for t, a, b, p in json.loads(line)["words"]]
        except (ValueError, KeyError, TypeError):
            torn = True
    return Recovered(
        folder=folder,
        encounter_id=str(meta["encounter_id"]),
        closed=(folder / CLOSED).exists(),
        audio_s=(audio_bytes // _BYTES_PER_SAMPLE) / SAMPLE_RATE_HZ,
        words=tuple(words),
        meta=meta,
        torn_tail=torn,
    )


def read_pcm(folder: Path, protector: Protector | None = None) -> bytes:
    """The journaled audio as 16-bit PCM bytes (whole samples only), sealed journal or plain."""
    meta = _read_meta(folder)
    if meta.get("format") == SEALED_FORMAT:
        data = sealed_journal.read_audio(folder, meta, protector or Protector.for_paths())
    else:
        data = (folder / AUDIO).read_bytes() if (folder / AUDIO).exists() else b""
    return data[: len(data) - len(data) % _BYTES_PER_SAMPLE]


def audio_sha256(folder: Path, protector: Protector | None = None) -> str:
    """sha256 of the journaled PCM (not of the sealed file, which changes when keys rotate)."""
    import hashlib

    if not (folder / AUDIO).exists():
        return str(_released(folder).get("audio_sha256", ""))  # deleted after delivery: as recorded
    return hashlib.sha256(read_pcm(folder, protector)).hexdigest()


def read_audio(folder: Path, protector: Protector | None = None) -> npt.NDArray[np.float32]:
    """The journaled audio as float32 (whole samples only)."""
    data = read_pcm(folder, protector)
    return (np.frombuffer(data, dtype="<i2").astype(np.float32) / 32767.0).astype(np.float32)


def find_interrupted(
    paths: Paths, on_damaged: Callable[[Path, InputError], None] | None = None
) -> list[Recovered]:
    """Encounters whose journal was never closed: the process died mid-encounter.

    A journal that cannot be read at all raises, unless ``on_damaged`` takes it (the agent moves
    it to quarantine, :mod:`ambient.quarantine`, so one damaged folder does not stop the rest).
    """
    root = encounters_dir(paths)
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if (p / META).is_file()):
        if not (folder / CLOSED).exists():
            try:
                found.append(read_journal(folder))
            except InputError as exc:
                if on_damaged is None:
                    raise
                on_damaged(folder, exc)
    return found


def mark_recovered(recovered: Recovered) -> None:
    """Close an interrupted journal once its transcript is safe, so it is not recovered twice."""
    atomic_write_text(recovered.folder / CLOSED, json.dumps({"closed_at": _now(), "recovered": True}))


def rebuild_transcript(recovered: Recovered, protector: Protector | None = None) -> Transcript:
    """The committed transcript of a journal, as the batch path would shape it (sentence segments)."""
    model_data = recovered.meta.get("model")
    model = ModelRef(**model_data) if isinstance(model_data, dict) else None
    audio = recovered.folder / AUDIO
    header = TranscriptHeader(
        encounter_id=recovered.encounter_id,
        source_path=str(audio),
        source_sha256=audio_sha256(recovered.folder, protector),
        source_kind="audio",
        duration_s=round(recovered.audio_s, 3),
        language="en",
        model=model,
        decoding=None,
        pipeline_version=PIPELINE_VERSION,
    )
    segments = tuple(
        Segment(
            id=i, start_s=run[0].start_s, end_s=run[-1].end_s, text=" ".join(w.word for w in run), words=run
        )
        for i, run in enumerate(split_sentences(recovered.words), start=1)
    )
    return Transcript(header, segments)
