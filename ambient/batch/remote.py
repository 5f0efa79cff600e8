"""Inputs behind an fsspec URL (``s3://…``, ``gs://…``, ``abfs://…``, ``file://…``) for batch runs.

``ambient batch s3://bucket/recordings --out OUT`` lists the bucket through fsspec (the
filesystem for the scheme comes from its own package: ``s3fs``, ``gcsfs``, ``adlfs``; pyarrow's
filesystems are reachable the same way), hashes each object as a stream, and keys encounters by
that sha256 exactly like local files. The speech pipeline reads local files (PyAV seeks), so the
worker that runs an encounter — a local process or a Ray actor on any node — copies the object
to a private temp file, processes it, and deletes the copy; the transcript records the URL, not
the temp path. No credentials pass through ambient: fsspec reads them from the environment.

Outputs may be a folder or a URL too; how outputs are written on a store without renames or
appends is :mod:`ambient.batch.store`'s business.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path, PurePosixPath

from ambient.audio.decode import AUDIO_SUFFIXES
from ambient.batch.runner import BatchItem, ItemResult, Plan, encounter_folder, out_root
from ambient.batch.store import filesystem, open_store
from ambient.batch.store import is_url as is_url  # re-exported: callers import it from here
from ambient.errors import AmbientError, InputError, UsageError
from ambient.pipeline import Pipeline
from ambient.types import Transcript

_CHUNK = 1 << 20


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
        try:
            transcript = pipeline.transcribe_audio(local)
        except AmbientError as exc:
            # A corrupt object's error named the private temp copy; the user knows only the URL.
            if exc.args and isinstance(exc.args[0], str):
                exc.args = (exc.args[0].replace(str(local), url), *exc.args[1:])
            raise
    return replace(transcript, header=replace(transcript.header, source_path=url))


def plan_urls(url: str, out_dir: str | os.PathLike[str]) -> Plan:
    """As :func:`ambient.batch.runner.plan`, for objects behind an fsspec URL."""
    root = out_root(out_dir)
    done = open_store(root).done_shas()
    todo: list[BatchItem] = []
    unreadable: list[ItemResult] = []
    seen: set[str] = set()
    skipped = 0
    for object_url in list_urls(url):
        name = Path(PurePosixPath(object_url.split("://", 1)[1]).name)
        try:
            sha, size = url_sha256_size(object_url)
        except AmbientError as exc:
            item = BatchItem(name, "", root, "", 0, url=object_url)
            unreadable.append(ItemResult(item, False, error_code=exc.code, reason=str(exc)))
            continue
        if sha in seen or sha in done:
            skipped += 1
            continue
        seen.add(sha)
        todo.append(BatchItem(name, sha, root, encounter_folder(name.stem, sha), size, url=object_url))
    return todo, unreadable, skipped
