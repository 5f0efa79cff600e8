"""One envelope for every sealed file, record and database field: AES-256-GCM with the key id inside.

Layout (all of it authenticated)::

    magic  b"\\x89AMB"   4 bytes; 0x89 is not text, so a JSON, Markdown or TOML file never starts so
    version            1 byte (1)
    key id length      1 byte, then the key id (ASCII)
    nonce              12 random bytes
    ciphertext + tag   AES-GCM

The associated data is the header (magic, version, key id) plus the blob's *kind* (``journal.audio``,
``outbox.note``, ``batch.note`` …) and an optional *context* (an encounter id and record number, an
outbox row key, a file name). Opening with another kind or context fails exactly as tampering does,
so a sealed note cannot be passed off as a transcript, nor one patient's journal record moved into
another's journal.

Readers call :meth:`Protector.open` (or :func:`read_bytes`/:func:`read_text` for files): sealed data is
opened, anything without the magic is returned as it is, because files written before encryption
existed, and batch outputs a user asked for in plain, must keep working. Database fields are sealed
as text: ``ambseal1:`` + base64 of the envelope.
"""

from __future__ import annotations

import base64
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ambient.atomic import atomic_write_bytes
from ambient.config import Paths, Settings, load_settings, resolve_paths
from ambient.errors import InputError
from ambient.protect.keys import KeySet, KeyStore, KeyStoreError, key_store

MAGIC = b"\x89AMB"
VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
FIELD_PREFIX = "ambseal1:"
_MIN_BYTES = len(MAGIC) + 2 + NONCE_BYTES + TAG_BYTES


class SealedDataError(InputError):
    """Sealed data failed to open: altered, truncated, another kind, or its key is gone."""

    code = "AMB-E210"


@dataclass(frozen=True)
class Envelope:
    key_id: str
    nonce: bytes
    ciphertext: bytes
    header: bytes  # magic + version + key id: part of the associated data


def is_sealed(data: bytes) -> bool:
    return data[: len(MAGIC)] == MAGIC


def parse(data: bytes, where: str) -> Envelope:
    if len(data) < _MIN_BYTES or not is_sealed(data):
        raise SealedDataError(f"{where} is truncated: too short to be sealed data; restore it from a backup")
    if data[4] != VERSION:
        raise SealedDataError(f"{where} is sealed in format version {data[4]}; upgrade ambient to read it")
    id_len = data[5]
    id_end = 6 + id_len
    if len(data) < id_end + NONCE_BYTES + 16:
        raise SealedDataError(f"{where} is truncated; restore it from a backup")
    try:
        key_id = data[6:id_end].decode("ascii")
    except UnicodeDecodeError:
        raise SealedDataError(f"{where} has a damaged header; restore it from a backup") from None
    return Envelope(key_id, data[id_end : id_end + NONCE_BYTES], data[id_end + NONCE_BYTES :], data[:id_end])


def key_id_of(data: bytes) -> str | None:
    """The key a blob is sealed with (None for plain data); no key needed."""
    if not is_sealed(data) or len(data) < 6 + data[5]:
        return None
    try:
        return data[6 : 6 + data[5]].decode("ascii")
    except UnicodeDecodeError:
        return None


def _aad(header: bytes, kind: str, context: str) -> bytes:
    return header + b"\x00" + kind.encode("utf-8") + b"\x00" + context.encode("utf-8")


class Protector:
    """Seals new data with the active key (when ``seal_new``) and opens data under any known key."""

    def __init__(self, store: KeyStore, seal_new: bool = True) -> None:
        self.store = store
        self.seal_new = seal_new
        self._ciphers: dict[tuple[str, bytes], AESGCM] = {}

    @classmethod
    def for_paths(cls, paths: Paths | None = None, settings: Settings | None = None) -> Protector:
        paths = paths or resolve_paths()
        settings = settings or load_settings(paths)
        return cls(key_store(paths.config_dir, settings.protect.key_store), settings.protect.encrypt)

    def _cipher(self, key_id: str, material: bytes) -> AESGCM:
        cipher = self._ciphers.get((key_id, material))
        if cipher is None:
            cipher = self._ciphers[(key_id, material)] = AESGCM(material)
        return cipher

    def seal(self, data: bytes, kind: str, context: str = "", *, force: bool = False) -> bytes:
        """Sealed with the active key; plain ``data`` back when sealing is off (unless ``force``)."""
        if not (self.seal_new or force):
            return data
        key = self.store.active()
        kid = key.key_id.encode("ascii")
        header = MAGIC + bytes([VERSION, len(kid)]) + kid
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._cipher(key.key_id, key.material).encrypt(nonce, data, _aad(header, kind, context))
        return header + nonce + sealed

    def keys(self) -> KeySet:
        return self.store.load()

    def open(self, data: bytes, kind: str, *, where: str, context: str = "") -> bytes:
        """The plaintext of sealed ``data``; data without the magic is plain already and returned."""
        if not is_sealed(data):
            return data
        envelope = parse(data, where)
        key = self.store.load().get(envelope.key_id)
        if key is None:
            raise KeyStoreError(
                f"{where} is sealed with data key {envelope.key_id}, which is not in {self.store.path}; "
                "restore the key file (or keyring entry) it was sealed with"
            )
        try:
            return self._cipher(key.key_id, key.material).decrypt(
                envelope.nonce, envelope.ciphertext, _aad(envelope.header, kind, context)
            )
        except InvalidTag:
            raise SealedDataError(
                f"{where} failed its integrity check: it was altered or damaged, or it is not "
                f"{kind} data; restore it from a backup or remove it"
            ) from None

    def needs_reseal(self, data: bytes) -> bool:
        """Sealed under a key other than the active one (rotation's test, no decryption)."""
        kid = key_id_of(data)
        active = self.store.load().active
        return kid is not None and (active is None or kid != active.key_id)

    def reseal(self, data: bytes, kind: str, *, where: str, context: str = "") -> bytes:
        """Open and seal again with the active key (rotation); always sealed, whatever ``seal_new``."""
        return self.seal(self.open(data, kind, where=where, context=context), kind, context, force=True)

    # ---- text fields (database columns) --------------------------------------------------------

    def seal_text(self, text: str, kind: str, context: str = "") -> str:
        if not self.seal_new:
            return text
        return FIELD_PREFIX + base64.b64encode(self.seal(text.encode("utf-8"), kind, context)).decode("ascii")

    def open_text(self, value: str, kind: str, *, where: str, context: str = "") -> str:
        if not value.startswith(FIELD_PREFIX):
            return value
        try:
            raw = base64.b64decode(value[len(FIELD_PREFIX) :], validate=True)
        except ValueError:
            raise SealedDataError(f"{where} is damaged (not base64); restore it from a backup") from None
        return self.open(raw, kind, where=where, context=context).decode("utf-8")

    # ---- files ---------------------------------------------------------------------------------

    def write(
        self, path: Path, data: bytes, kind: str, context: str = "", *, seal: bool | None = None
    ) -> Path:
        """Atomically write ``data`` sealed (or plain when sealing is off or ``seal=False``), 0600."""
        sealed = self.seal(data, kind, context) if (self.seal_new if seal is None else seal) else data
        return atomic_write_bytes(path, sealed)

    def read(self, path: Path, kind: str, context: str = "") -> bytes:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
        return self.open(data, kind, where=str(path), context=context)


def field_key_id(value: str) -> str | None:
    """The key id of a sealed text field, or None (plain)."""
    if not value.startswith(FIELD_PREFIX):
        return None
    head = value[len(FIELD_PREFIX) : len(FIELD_PREFIX) + 128]
    try:
        raw = base64.b64decode(head[: len(head) - len(head) % 4])
    except ValueError:
        return None
    return key_id_of(raw)


def read_bytes(path: Path, kind: str, context: str = "", paths: Paths | None = None) -> bytes:
    """A file's content whether sealed or plain: what eval, replay, diff and batch read through."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    return open_if_sealed(data, kind, where=str(path), context=context, paths=paths)


def open_if_sealed(
    data: bytes, kind: str, *, where: str, context: str = "", paths: Paths | None = None
) -> bytes:
    """Plain data back untouched (no key store, no settings read); sealed data opened."""
    if not is_sealed(data):
        return data
    return Protector.for_paths(paths).open(data, kind, where=where, context=context)


def read_text(path: Path, kind: str, context: str = "", paths: Paths | None = None) -> str:
    return read_bytes(path, kind, context, paths).decode("utf-8")


def frame(record: bytes) -> bytes:
    """A length-prefixed record, for files appended record by record (the journal)."""
    return struct.pack(">I", len(record)) + record
