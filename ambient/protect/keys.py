"""Data keys: AES-256 keys with ids, kept in the OS keyring where a real one exists, else a 0600 file.

Why ids and several keys: every sealed blob names the key that sealed it, so ``ambient keys rotate``
can make a new key, re-seal everything at its own pace, and retire the old key only once nothing
needs it. A crash half-way leaves data under both keys, and both are still here to read it.

Layout (``<config dir>/keys.json``, 0600, rewritten atomically)::

    {"format": "ambient-keys-1", "active": "k20261125T133400-1a2b3c",
     "keys": [{"id": ..., "created_at": ..., "state": "active" | "retiring",
               "store": "file" | "keyring", "material": "<base64, only when store is file>"}]}

The file itself never holds key material when the keyring does: then it holds only ids and states,
and the 32 key bytes live in the keyring under service ``ambient`` and user ``<config dir>:<id>``.
Which store each key lives in is recorded per key, so a keyring that goes away later is reported
("key X is in the OS keyring, which is not available") instead of a new key being made silently and
the old data becoming unreadable.

A real keyring is a backend with positive priority that is neither keyring's ``fail``/``null``
backend nor a plaintext file backend (``keyrings.alt``): those would only add a second, weaker copy.
Writers create keys under an exclusive ``flock`` so an agent and a CLI command starting together
do not each make a "first" key.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ambient.atomic import atomic_write_text, ensure_dir
from ambient.errors import AmbientError, ConfigError

KEYS_FILE = "keys.json"
FORMAT = "ambient-keys-1"
KEYRING_SERVICE = "ambient"
KEY_BYTES = 32  # AES-256
STORES = ("auto", "keyring", "file")


class KeyStoreError(AmbientError):
    """A data key is missing, unreadable or its store is unavailable (exit 9)."""

    exit_code = 9
    code = "AMB-E800"


@dataclass(frozen=True)
class DataKey:
    key_id: str
    material: bytes = field(repr=False)
    created_at: str
    state: str  # "active" | "retiring"
    store: str  # "file" | "keyring"


@dataclass(frozen=True)
class KeySet:
    """The keys as loaded at one moment: the active one seals, all of them open."""

    active: DataKey | None
    keys: Mapping[str, DataKey]

    def get(self, key_id: str) -> DataKey | None:
        return self.keys.get(key_id)

    @property
    def retiring(self) -> tuple[DataKey, ...]:
        return tuple(k for k in self.keys.values() if k.state == "retiring")


def real_keyring() -> Any | None:
    """The OS keyring backend when a real one is configured, else None (fail/null/plaintext refused)."""
    try:
        import keyring
        from keyring.backends import chainer
    except ImportError:  # pragma: no cover - keyring is a core dependency
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:  # a broken keyring configuration is "no keyring", not a crash
        return None
    candidates = list(backend.backends) if isinstance(backend, chainer.ChainerBackend) else [backend]
    real = [b for b in candidates if _acceptable(b)]
    return backend if real else None


def _acceptable(backend: Any) -> bool:
    module = type(backend).__module__
    name = type(backend).__name__.lower()
    try:
        priority = float(backend.priority)
    except Exception:
        return False
    if priority <= 0:
        return False
    if module.startswith(("keyring.backends.fail", "keyring.backends.null", "keyrings.alt")):
        return False
    return "plaintext" not in name and "uncrypted" not in name


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_key_id() -> str:
    return "k" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


class KeyStore:
    """One config dir's keys. Loads are cached and refreshed when ``keys.json`` changes on disk."""

    def __init__(self, config_dir: Path, store: str = "auto") -> None:
        if store not in STORES:
            raise ConfigError(f"[protect] key_store must be one of {', '.join(STORES)}, got {store!r}")
        self.config_dir = config_dir
        self.path = config_dir / KEYS_FILE
        self.lock_path = config_dir / "keys.lock"
        self.store = store
        self._cache: tuple[tuple[int, int, int], KeySet] | None = None

    # ---- reading ------------------------------------------------------------------------------

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeyStoreError(
                f"cannot read key file {self.path} ({exc.strerror or exc}); run ambient as the user "
                "who owns it"
            ) from None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def load(self) -> KeySet:
        """The current keys (possibly none yet). Cheap when nothing changed: one ``stat``."""
        stamp = self._stamp()
        if stamp is None:
            return KeySet(None, {})
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        keys = self._read()
        self._cache = (stamp, keys)
        return keys

    def _read_doc(self) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"format": FORMAT, "active": None, "keys": []}
        except (OSError, ValueError) as exc:
            raise KeyStoreError(
                f"key file {self.path} is unreadable ({exc}); restore it from your backup — "
                "without it sealed data cannot be opened"
            ) from None
        if doc.get("format") != FORMAT or not isinstance(doc.get("keys"), list):
            raise KeyStoreError(f"key file {self.path} has an unknown format; restore it from your backup")
        return doc

    def _read(self) -> KeySet:
        doc = self._read_doc()
        keys: dict[str, DataKey] = {}
        for entry in doc["keys"]:
            key_id = str(entry["id"])
            keys[key_id] = DataKey(
                key_id=key_id,
                material=self._material(entry),
                created_at=str(entry.get("created_at", "")),
                state=str(entry.get("state", "retiring")),
                store=str(entry.get("store", "file")),
            )
        active = keys.get(str(doc.get("active"))) if doc.get("active") else None
        return KeySet(active, keys)

    def _keyring_user(self, key_id: str) -> str:
        return f"{self.config_dir}:{key_id}"

    def _material(self, entry: Mapping[str, Any]) -> bytes:
        key_id = str(entry["id"])
        if entry.get("store") == "keyring":
            backend = real_keyring()
            if backend is None:
                raise KeyStoreError(
                    f"data key {key_id} is kept in the OS keyring, which is not available now "
                    f"(see {self.path}); unlock or start the keyring service and try again"
                )
            value = backend.get_password(KEYRING_SERVICE, self._keyring_user(key_id))
            if not value:
                raise KeyStoreError(
                    f"data key {key_id} is missing from the OS keyring (service {KEYRING_SERVICE!r}); "
                    "restore it from your keyring backup"
                )
            encoded = str(value)
        else:
            encoded = str(entry.get("material", ""))
        try:
            material = base64.b64decode(encoded, validate=True)
        except ValueError:
            material = b""
        if len(material) != KEY_BYTES:
            raise KeyStoreError(f"data key {key_id} in {self.path} is damaged; restore it from your backup")
        return material

    # ---- writing ------------------------------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive across processes: key creation, rotation and retirement."""
        ensure_dir(self.config_dir)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _write_doc(self, doc: dict[str, Any]) -> None:
        atomic_write_text(self.path, json.dumps(doc, indent=2) + "\n")  # mkstemp: 0600
        self._cache = None

    def _where(self) -> str:
        if self.store == "file":
            return "file"
        if real_keyring() is not None:
            return "keyring"
        if self.store == "keyring":
            raise KeyStoreError(
                '[protect] key_store = "keyring" but no OS keyring is available (only keyring\'s '
                'fail/plaintext backends were found); start one, or set key_store = "auto"'
            )
        return "file"

    def active(self) -> DataKey:
        """The key to seal with; the first call on a fresh install makes it."""
        keys = self.load()
        if keys.active is not None:
            return keys.active
        with self.locked():
            keys = self.load()
            if keys.active is not None:  # another process made it while we waited
                return keys.active
            return self._add_key(self._read_doc())

    def _add_key(self, doc: dict[str, Any]) -> DataKey:
        key_id = new_key_id()
        material = secrets.token_bytes(KEY_BYTES)
        where = self._where()
        encoded = base64.b64encode(material).decode("ascii")
        entry: dict[str, Any] = {"id": key_id, "created_at": _now(), "state": "active", "store": where}
        if where == "keyring":
            backend = real_keyring()
            assert backend is not None
            backend.set_password(KEYRING_SERVICE, self._keyring_user(key_id), encoded)
        else:
            entry["material"] = encoded
        for old in doc["keys"]:
            old["state"] = "retiring"
        doc["keys"].append(entry)
        doc["active"] = key_id
        self._write_doc(doc)
        return self.load().keys[key_id]

    def begin_rotation(self) -> DataKey:
        """A new active key; the old ones stay (``retiring``) until :meth:`retire` after re-sealing."""
        with self.locked():
            return self._add_key(self._read_doc())

    def retire(self, key_ids: list[str]) -> None:
        """Forget keys nothing is sealed with any more (the caller has checked that)."""
        with self.locked():
            doc = self._read_doc()
            gone = [e for e in doc["keys"] if e["id"] in key_ids and e["id"] != doc.get("active")]
            doc["keys"] = [e for e in doc["keys"] if e not in gone]
            self._write_doc(doc)
            for entry in gone:
                if entry.get("store") == "keyring":
                    backend = real_keyring()
                    if backend is not None:
                        with contextlib.suppress(Exception):  # already gone: nothing to forget
                            backend.delete_password(KEYRING_SERVICE, self._keyring_user(str(entry["id"])))


_STORES: dict[tuple[Path, str], KeyStore] = {}


def key_store(config_dir: Path, store: str = "auto") -> KeyStore:
    """One cached :class:`KeyStore` per config dir, so a process reads ``keys.json`` once."""
    cached = _STORES.get((config_dir, store))
    if cached is None:
        cached = _STORES[(config_dir, store)] = KeyStore(config_dir, store)
    return cached
