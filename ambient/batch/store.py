"""Where a batch run's outputs live: a local folder, or any fsspec URL (``s3://…``, ``file:///…``).

Every writer and reader of a run's outputs — the batch runner, its Ray actors, replay, diff, key
rotation — goes through an :class:`OutputStore`, so the rules that make a run resumable hold on
both kinds of store:

* **Each file is written whole.** A local folder gets temp + fsync + rename (``ambient.atomic``),
  exactly as before this module existed. An object store gets one PUT per object, which object
  stores make atomic: a reader sees the old object, the new one, or none, never half. Filesystems
  reached through fsspec that are not object stores (``file://``, ``sftp://``…) have no atomic
  PUT, so there the object is written under a hidden temp name and moved over the real one.
* **The done marker is written last.** A resume check (keyed by the audio's sha256) that finds
  ``.ambient/done/<sha256>.json`` finds every file of that encounter already whole; an encounter
  interrupted before its marker is simply done again, overwriting what it had written.
* **Nothing appends.** Object stores cannot append, so on a URL store each failure is its own
  object under ``.ambient/failures/`` as it happens (durable even if the driver is killed), and
  ``failures.jsonl`` is rewritten whole from them at the end of the run. A local folder keeps its
  fsync'd appends to ``failures.jsonl``.

Credentials never pass through ambient: fsspec and the store's package (``s3fs``, ``gcsfs``,
``adlfs``) read them from the environment.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from ambient.atomic import atomic_write_bytes, ensure_dir
from ambient.errors import InputError, OutputError, UsageError

STATE_DIR = ".ambient"
DONE_DIR = f"{STATE_DIR}/done"
FAILED_DIR = f"{STATE_DIR}/failures"  # URL stores only: one object per failure of this run
FAILURES_FILE = "failures.jsonl"
# Schemes whose PUT replaces an object atomically (S3 and its look-alikes, GCS, Azure blob/ADLS).
# Anything else reached through fsspec is written to a temp name and moved over the target.
ATOMIC_PUT_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl", "oss", "r2"})


def is_url(location: str | os.PathLike[str]) -> bool:
    return "://" in str(location)


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem and the path within it, or a usage error saying what to install."""
    try:
        from fsspec.core import url_to_fs
    except ImportError:
        raise UsageError(
            f"{url}: URLs need fsspec, an optional extra: pip install 'ambient[remote]'"
        ) from None
    try:
        fs, root = url_to_fs(url)
    except (ImportError, ValueError) as exc:
        scheme = url.split("://", 1)[0]
        raise UsageError(
            f"{url}: no filesystem for '{scheme}://' ({exc}); install its fsspec package "
            "(s3fs, gcsfs, adlfs…) or mount the store and give the folder"
        ) from None
    return fs, str(root)


class OutputStore(ABC):
    """A run's output root; ``rel`` paths below are POSIX, relative to it (``folder/note.json``)."""

    location: str  # as the user named it, for messages

    def join(self, rel: str) -> str:
        """``rel`` as the user would name it: a path or a URL."""
        return self.location.rstrip("/") + "/" + rel

    @abstractmethod
    def write(self, rel: str, data: bytes) -> None:
        """Write one file whole (see the module docstring for how each store makes that so)."""

    @abstractmethod
    def read(self, rel: str) -> bytes:
        """One file's bytes; :class:`InputError` naming it when it is missing or unreadable."""

    @abstractmethod
    def exists(self, rel: str) -> bool: ...

    @abstractmethod
    def size(self, rel: str) -> int: ...

    @abstractmethod
    def is_dir(self, rel: str) -> bool:
        """A folder (on an object store: a prefix some object lies under)."""

    @abstractmethod
    def names(self, rel_dir: str, suffix: str = "", *, hidden: bool = False) -> list[str]:
        """File names directly under ``rel_dir`` ending in ``suffix``, sorted; hidden ones (temp
        files mid-write) only when asked for."""

    @abstractmethod
    def folders(self) -> list[str]:
        """Encounter folder names directly under the root (hidden ones left out), sorted."""

    @abstractmethod
    def remove(self, rel: str) -> None:
        """Remove one file; a missing one is not an error."""

    @abstractmethod
    def remove_folder(self, rel: str) -> None:
        """Remove an encounter folder and everything in it (``ambient purge``)."""

    @abstractmethod
    def prepare(self) -> None:
        """Create the root and state folders; tidy what a killed run left mid-write."""

    @abstractmethod
    def same_as(self, other: OutputStore) -> bool: ...

    @abstractmethod
    def tidy_attempt(self, folder: str, sha256: str) -> None:
        """Remove temp files a killed attempt at one encounter left in its folder and marker name."""

    # ---- done markers ----------------------------------------------------------------------

    def marker_rel(self, sha256: str) -> str:
        return f"{DONE_DIR}/{sha256}.json"

    def done_shas(self) -> set[str]:
        """Every finished encounter, from one listing of the done folder (one LIST on a store)."""
        return {name[: -len(".json")] for name in self.names(DONE_DIR, ".json")}

    def read_marker(self, sha256: str) -> dict[str, Any] | None:
        """The marker of a finished encounter, or None when there is none (or it is unreadable)."""
        try:
            data = json.loads(self.read(self.marker_rel(sha256)))
        except (InputError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_marker(self, sha256: str, marker: dict[str, Any]) -> None:
        self.write(self.marker_rel(sha256), (json.dumps(marker, indent=2) + "\n").encode("utf-8"))

    # ---- failures of this run ------------------------------------------------------------

    @abstractmethod
    def reset_failures(self) -> None:
        """Start this run's failures list empty (a re-run lists only its own failures)."""

    @abstractmethod
    def add_failure(self, line: dict[str, Any]) -> None:
        """Record one failure durably, now."""

    @abstractmethod
    def close_failures(self) -> None:
        """Make ``failures.jsonl`` whole (URL stores rewrite it from the failure objects)."""


class LocalStore(OutputStore):
    """A local folder or a shared mount: POSIX renames and appends, exactly as local mode always did."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def join(self, rel: str) -> str:
        return str(self.root / rel)

    def write(self, rel: str, data: bytes) -> None:
        atomic_write_bytes(self.root / rel, data)

    def read(self, rel: str) -> bytes:
        path = self.root / rel
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise InputError(f"{path} is missing; run `ambient batch` again for this encounter") from None
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None

    def exists(self, rel: str) -> bool:
        return (self.root / rel).is_file()

    def size(self, rel: str) -> int:
        return (self.root / rel).stat().st_size

    def is_dir(self, rel: str) -> bool:
        return (self.root / rel).is_dir()

    def names(self, rel_dir: str, suffix: str = "", *, hidden: bool = False) -> list[str]:
        folder = self.root / rel_dir
        if not folder.is_dir():
            return []
        return sorted(
            p.name
            for p in folder.iterdir()
            if p.is_file() and p.name.endswith(suffix) and (hidden or not p.name.startswith("."))
        )

    def folders(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def remove(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.root / rel).unlink()

    def remove_folder(self, rel: str) -> None:
        shutil.rmtree(self.root / rel, ignore_errors=False)

    def prepare(self) -> None:
        ensure_dir(self.root)
        ensure_dir(self.root / DONE_DIR)
        # Temp files a killed run left mid-write (``.NAME.*.tmp``, never read as results): tidy them.
        for stale in self.root.rglob(".*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()

    def same_as(self, other: OutputStore) -> bool:
        return isinstance(other, LocalStore) and self.root.resolve() == other.root.resolve()

    def tidy_attempt(self, folder: str, sha256: str) -> None:
        marker = self.root / self.marker_rel(sha256)
        stale = [*marker.parent.glob(f".{marker.name}.*.tmp")]
        if folder and (self.root / folder).is_dir():
            stale += (self.root / folder).glob(".*.tmp")
        for path in stale:
            with contextlib.suppress(OSError):
                path.unlink()

    def reset_failures(self) -> None:
        (self.root / FAILURES_FILE).write_text("", encoding="utf-8")

    def add_failure(self, line: dict[str, Any]) -> None:
        with (self.root / FAILURES_FILE).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def close_failures(self) -> None:
        """Nothing to do: every failure was appended and fsync'd as it happened."""


class UrlStore(OutputStore):
    """Outputs behind an fsspec URL: whole-object writes, no renames of results, no appends."""

    def __init__(self, url: str) -> None:
        self.location = url.rstrip("/")
        self.fs, root = filesystem(url)
        self.root = root.rstrip("/") or "/"
        self.scheme = url.split("://", 1)[0].lower()
        self.atomic_put = self.scheme in ATOMIC_PUT_SCHEMES
        self._failures: list[dict[str, Any]] = []

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if self.root != "/" else f"/{rel}"

    def _oserror(self, verb: str, rel: str, exc: Exception) -> str:
        return f"cannot {verb} {self.join(rel)}: {exc}"

    def write(self, rel: str, data: bytes) -> None:
        target = self._path(rel)
        try:
            if self.atomic_put:
                self.fs.pipe_file(target, data)  # one PUT: the whole object or nothing
                return
            parent = str(PurePosixPath(target).parent)
            self.fs.makedirs(parent, exist_ok=True)
            temp = f"{parent}/.{PurePosixPath(target).name}.{secrets.token_hex(4)}.tmp"
            try:
                self.fs.pipe_file(temp, data)
                self.fs.mv(temp, target)  # a rename on file:// and sftp://
            finally:
                with contextlib.suppress(OSError):
                    if self.fs.exists(temp):
                        self.fs.rm_file(temp)
        except (OSError, ValueError) as exc:
            raise OutputError(self._oserror("write", rel, exc)) from None

    def read(self, rel: str) -> bytes:
        try:
            data: bytes = self.fs.cat_file(self._path(rel))
        except FileNotFoundError:
            raise InputError(
                f"{self.join(rel)} is missing; run `ambient batch` again for this encounter"
            ) from None
        except (OSError, ValueError) as exc:
            raise InputError(self._oserror("read", rel, exc)) from None
        return data

    def exists(self, rel: str) -> bool:
        try:
            return bool(self.fs.isfile(self._path(rel)))
        except OSError:
            return False

    def size(self, rel: str) -> int:
        try:
            return int(self.fs.size(self._path(rel)))
        except (OSError, ValueError) as exc:
            raise InputError(self._oserror("read", rel, exc)) from None

    def is_dir(self, rel: str) -> bool:
        try:
            return bool(self.fs.isdir(self._path(rel)))
        except OSError:
            return False

    def _entries(self, rel_dir: str, hidden: bool = False) -> Iterator[tuple[str, str]]:
        """(name, type) of what lies directly under ``rel_dir``; nothing when it does not exist."""
        where = self._path(rel_dir) if rel_dir else self.root
        self.fs.invalidate_cache(where)  # s3fs and the like cache listings; markers come and go
        try:
            listed = self.fs.ls(where, detail=True)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise InputError(f"cannot list {self.join(rel_dir)}: {exc}") from None
        for entry in listed:
            name = PurePosixPath(str(entry["name"]).rstrip("/")).name
            if name and (hidden or not name.startswith(".")):
                yield name, str(entry.get("type", "file"))

    def names(self, rel_dir: str, suffix: str = "", *, hidden: bool = False) -> list[str]:
        return sorted(
            n for n, kind in self._entries(rel_dir, hidden) if kind != "directory" and n.endswith(suffix)
        )

    def folders(self) -> list[str]:
        return sorted(n for n, kind in self._entries("") if kind == "directory")

    def remove(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(rel))

    def remove_folder(self, rel: str) -> None:
        try:
            self.fs.rm(self._path(rel), recursive=True)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise OutputError(self._oserror("remove", rel, exc)) from None

    def prepare(self) -> None:
        try:
            # Object stores have no folders (a no-op there); file:// and sftp:// need them.
            self.fs.makedirs(self._path(DONE_DIR), exist_ok=True)
            if not self.atomic_put:  # temp objects a killed run left mid-write
                for stale in self.fs.find(self.root):
                    if PurePosixPath(stale).name.startswith(".") and stale.endswith(".tmp"):
                        with contextlib.suppress(OSError):
                            self.fs.rm_file(stale)
        except OSError as exc:
            raise OutputError(f"cannot create output location {self.location}: {exc}") from None

    def same_as(self, other: OutputStore) -> bool:
        return isinstance(other, UrlStore) and (self.scheme, self.root) == (other.scheme, other.root)

    def tidy_attempt(self, folder: str, sha256: str) -> None:
        if self.atomic_put:
            return  # a PUT leaves nothing behind when its writer dies
        marker = PurePosixPath(self.marker_rel(sha256)).name
        for rel_dir, prefix in ((DONE_DIR, f".{marker}."), (folder, ".")):
            if not rel_dir:
                continue
            try:
                listed = self.fs.ls(self._path(rel_dir), detail=False)
            except OSError:
                continue
            for path in listed:
                name = PurePosixPath(str(path)).name
                if name.startswith(prefix) and name.endswith(".tmp"):
                    with contextlib.suppress(OSError):
                        self.fs.rm_file(str(path))

    def reset_failures(self) -> None:
        for name in self.names(FAILED_DIR, ".json"):
            self.remove(f"{FAILED_DIR}/{name}")
        self._failures = []
        self.write(FAILURES_FILE, b"")

    def add_failure(self, line: dict[str, Any]) -> None:
        self._failures.append(line)
        body = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
        self.write(f"{FAILED_DIR}/{len(self._failures):08d}.json", body)

    def close_failures(self) -> None:
        lines = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in self._failures)
        self.write(FAILURES_FILE, lines.encode("utf-8"))


@functools.lru_cache(maxsize=32)
def _url_store(url: str) -> UrlStore:
    return UrlStore(url)


def open_store(location: str | os.PathLike[str]) -> OutputStore:
    """The store for a run's output location: a URL through fsspec, anything else a local folder.

    URL stores are cached per process (a Ray actor or pool worker opens each root once); a local
    folder is cheap to open every time.
    """
    text = os.fspath(location)
    if is_url(text):
        return _url_store(text.rstrip("/"))
    return LocalStore(Path(text))
