"""Inputs behind an fsspec URL (``s3://…``, ``gs://…``, ``abfs://…``, ``file://…``) for batch runs.

``ambient batch s3://bucket/recordings --out OUT`` lists the bucket through fsspec (the
filesystem for the scheme comes from its own package: ``s3fs``, ``gcsfs``, ``adlfs``; pyarrow's
filesystems are reachable the same way), hashes each object as a stream, and keys encounters by
that sha256 exactly like local files. The speech pipeline reads local files (PyAV seeks), so the
worker that runs an encounter — a local process or a Ray actor on any node — copies the object
to a private temp file, processes it, and deletes the copy; the transcript records the URL, not
the temp path. No credentials pass through ambient: fsspec reads them from the environment.

Outputs stay a folder (local, or a shared mount every Ray worker sees): done markers, atomic
renames and failures.jsonl rely on a POSIX rename, which object stores do not have.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from ambient.audio.decode import AUDIO_SUFFIXES
from ambient.batch.runner import BatchItem, ItemResult, Plan, done_marker
from ambient.ehr.inbox import safe_name
from ambient.errors import AmbientError, InputError, UsageError
from ambient.pipeline import Pipeline
from ambient.types import Transcript

_CHUNK = 1 << 20


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


def list_urls(url: str) -> list[str]:
    """Audio objects under ``url`` (recursively), stable order, hidden names skipped, as URLs."""
    fs, root = filesystem(url)
    try:
        if not fs.exists(root):
            raise UsageError(f"input location {url} does not exist")
        if not fs.isdir(root):
            raise UsageError(
                f"{url} is not a folder; for one file use `ambient note` or `ambient transcribe`"
            )
        found = sorted(fs.find(root))
    except OSError as exc:
        raise InputError(f"cannot list {url}: {exc}") from None
    base = PurePosixPath(root)
    urls = []
    for path in found:
        rel = PurePosixPath(path).relative_to(base)
        if rel.suffix.lower() in AUDIO_SUFFIXES and not any(part.startswith(".") for part in rel.parts):
            urls.append(url.rstrip("/") + "/" + rel.as_posix())
    return urls


def url_sha256_size(url: str) -> tuple[str, int]:
    """sha256 and byte size of one object, read as a stream (never whole into memory)."""
    fs, path = filesystem(url)
    digest = hashlib.sha256()
    size = 0
    try:
        with fs.open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise InputError(f"cannot read {url}: {exc}") from None
    return digest.hexdigest(), size


@contextlib.contextmanager
def staged(url: str) -> Iterator[Path]:
    """A private local copy of ``url`` for the length of the block; removed even on failure."""
    fs, path = filesystem(url)
    suffix = PurePosixPath(path).suffix
    fd, name = tempfile.mkstemp(prefix="ambient-stage-", suffix=suffix)
    os.close(fd)
    local = Path(name)
    try:
        try:
            fs.get_file(path, str(local))
        except (OSError, AmbientError) as exc:
            raise InputError(f"cannot fetch {url}: {exc}") from None
        yield local
    finally:
        with contextlib.suppress(OSError):
            local.unlink()


def transcribe_url(pipeline: Pipeline, url: str) -> Transcript:
    """Transcribe a staged copy of ``url``; the transcript names the URL as its source."""
    with staged(url) as local:
        transcript = pipeline.transcribe_audio(local)
    return replace(transcript, header=replace(transcript.header, source_path=url))


def plan_urls(url: str, out_dir: Path) -> Plan:
    """As :func:`ambient.batch.runner.plan`, for objects behind an fsspec URL."""
    todo: list[BatchItem] = []
    unreadable: list[ItemResult] = []
    seen: set[str] = set()
    skipped = 0
    for object_url in list_urls(url):
        name = Path(PurePosixPath(object_url.split("://", 1)[1]).name)
        try:
            sha, size = url_sha256_size(object_url)
        except AmbientError as exc:
            item = BatchItem(name, "", out_dir, 0, url=object_url)
            unreadable.append(ItemResult(item, False, error_code=exc.code, reason=str(exc)))
            continue
        if sha in seen or done_marker(out_dir, sha).is_file():
            skipped += 1
            continue
        seen.add(sha)
        folder = out_dir / f"{safe_name(name.stem)}.{sha[:12]}"
        todo.append(BatchItem(name, sha, folder, size, url=object_url))
    return todo, unreadable, skipped
