"""``ambient replay OLD_OUT --model NEW --template NEW --out NEW_OUT``: re-process an earlier run.

A site that gets a better model or template re-drafts what it already recorded, then compares the
two runs with ``ambient diff``. The encounters to replay are the done markers of the earlier run:
each names its input path and the audio's sha256, so the replay needs no listing of the original
folder and keeps the same keys and folder names (which is how ``diff`` pairs encounters).

Per encounter, the cheapest faithful source is chosen:

* the model is unchanged (same sha256 as recorded in the stored transcript) and ``--retranscribe``
  was not asked for: re-draft from the stored transcript (only the template or drafter changed;
  transcribing again would give the same words);
* otherwise, the recorded audio, when it is still there with the same sha256;
* otherwise the encounter cannot be replayed under a new model: one line in failures.jsonl saying
  so. Everything after planning — workers, Ray, resume, failures, summary — is the batch runner's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ambient.asr.models import resolve_model
from ambient.audio.decode import file_sha256
from ambient.batch.outputs import TRANSCRIPT_JSON, read_transcript
from ambient.batch.remote import is_url, url_sha256_size
from ambient.batch.runner import BatchItem, ItemResult, Plan, out_root
from ambient.batch.store import DONE_DIR, OutputStore, open_store
from ambient.config import Paths, Settings
from ambient.errors import AmbientError, InputError, UsageError


@dataclass(frozen=True)
class Recorded:
    """One finished encounter of an earlier run, as its done marker describes it."""

    sha256: str
    input: str  # a path, or an fsspec URL
    folder: str
    marker: dict[str, Any]


def recorded_encounters(out_dir: str | os.PathLike[str] | OutputStore) -> Iterator[Recorded]:
    """Finished encounters of an earlier batch or replay (a folder or a URL), by folder name."""
    store = out_dir if isinstance(out_dir, OutputStore) else open_store(out_dir)
    names = store.names(DONE_DIR, ".json")
    if not names and not store.is_dir(DONE_DIR):
        raise UsageError(
            f"{store.location} holds no finished encounters ({store.join(DONE_DIR)} is missing); "
            "give an OUT_DIR written by `ambient batch` or `ambient replay`"
        )
    found = []
    for name in names:
        where = store.join(f"{DONE_DIR}/{name}")
        try:
            data = json.loads(store.read(f"{DONE_DIR}/{name}"))
            found.append(Recorded(str(data["sha256"]), str(data["input"]), str(data["folder"]), data))
        except (InputError, ValueError, KeyError, TypeError) as exc:
            raise InputError(
                f"done marker {where} is unreadable ({exc}); run `ambient batch` again"
            ) from None
    yield from sorted(found, key=lambda r: r.folder)


def plan_replay(
    old_out: str | os.PathLike[str],
    new_out: str | os.PathLike[str],
    settings: Settings,
    paths: Paths,
    retranscribe: bool = False,
) -> Plan:
    """Items to re-process into ``new_out``, encounters that cannot be, and those already done.

    Either side may be a folder or an fsspec URL.
    """
    old_store, new_store = open_store(old_out), open_store(new_out)
    if old_store.same_as(new_store):
        raise UsageError("--out must be a new folder: a replay never overwrites the run it compares with")
    root = out_root(new_out)
    done = new_store.done_shas()
    asr = settings.asr
    new_model = resolve_model(asr.model, paths.model_cache, asr.compute_type).ref
    todo: list[BatchItem] = []
    failed: list[ItemResult] = []
    skipped = 0
    for rec in recorded_encounters(old_store):
        if rec.sha256 in done:
            skipped += 1
            continue
        url = rec.input if is_url(rec.input) else None
        name = Path(rec.input.split("://", 1)[1]).name if url else rec.input
        item = BatchItem(Path(name), rec.sha256, root, rec.folder, 0, url=url)
        try:
            stored = read_transcript(old_store, rec.folder)
            stored_size = old_store.size(f"{rec.folder}/{TRANSCRIPT_JSON}")
        except (AmbientError, OSError) as exc:
            code = exc.code if isinstance(exc, AmbientError) else InputError.code
            failed.append(ItemResult(replace(item, sha256=""), False, error_code=code, reason=str(exc)))
            continue
        same_model = stored.header.model is not None and stored.header.model.sha256 == new_model.sha256
        if same_model and not retranscribe:
            old_folder = old_store.join(rec.folder)
            todo.append(replace(item, size_bytes=stored_size, transcript_from=old_folder))
            continue
        audio_size = _unchanged_size(rec)
        if audio_size is not None:
            todo.append(replace(item, size_bytes=audio_size))
            continue
        failed.append(
            ItemResult(
                replace(item, sha256=""),  # not part of the planned total the progress bar counts
                False,
                error_code=InputError.code,
                reason=f"{rec.input} is gone or changed since it was recorded (sha256 {rec.sha256[:12]}), "
                "so it cannot be re-transcribed with the new model; restore the audio, or replay with "
                "the recorded model to re-draft from the stored transcript",
            )
        )
    return todo, failed, skipped


def _unchanged_size(rec: Recorded) -> int | None:
    """The recorded audio's size if it is still there with the recorded sha256, else None."""
    try:
        if is_url(rec.input):
            sha, size = url_sha256_size(rec.input)
            return size if sha == rec.sha256 else None
        path = Path(rec.input)
        return path.stat().st_size if path.is_file() and file_sha256(path) == rec.sha256 else None
    except (AmbientError, OSError):
        return None
