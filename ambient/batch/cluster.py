"""Batch results from a Ray cluster: ``ambient batch IN --out OUT --ray [ADDRESS]``.

Only *where* each encounter runs changes. Listing, content-hash keys, the resumable skip,
failures.jsonl, the summary and the progress bar stay in :mod:`ambient.batch.runner`, which takes
the results this module yields exactly as it takes those of the local process pool.

Each Ray actor holds one loaded :class:`~ambient.pipeline.Pipeline` (loading Whisper costs more
than transcribing a short clip) and runs the same :func:`~ambient.batch.runner.process_item` as
a local worker. Writes are idempotent: every file is written whole (temp + rename in a folder,
one PUT behind a URL), the folder and the done marker are keyed by the audio's sha256, and the
marker is written last. So when a worker dies
(a node lost, an OOM kill, ``kill -9``) its encounters are simply given to a fresh actor: an
encounter whose marker was already written is reported done from the marker, never redone; one
that kills its worker every time is listed in failures.jsonl after ``max_attempts``.

Input and output folders must be visible at the same path on every node (a local folder on a
one-machine cluster, or a shared mount), or be fsspec URLs every node can reach (each actor
opens the store itself, with credentials from its own environment); workers need ``ambient``
installed, as the driver does.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ambient.batch.runner import BatchItem, ItemResult, ResultSource, process_item
from ambient.config import Paths, Settings
from ambient.errors import UsageError
from ambient.pipeline import Pipeline

IN_FLIGHT_PER_ACTOR = 2  # one running, one queued: the actor never waits for the driver between files
DIED_CODE = "AMB-E998"  # as for a local worker process that died


@dataclass(frozen=True)
class RayOptions:
    """How to reach the cluster.

    ``address`` None means Ray's own default: the cluster in ``RAY_ADDRESS`` or one started on this
    machine by ``ray start --head``, else a new local one for this run. ``num_cpus`` and
    ``object_store_bytes`` apply only when this run starts its own local cluster.
    """

    address: str | None = None
    num_cpus: int | None = None
    object_store_bytes: int = 256 * 1024 * 1024  # results are small dataclasses, never audio
    max_attempts: int = 2


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(
            "--ray needs Ray, which is an optional extra: pip install 'ambient[cluster]'"
        ) from None
    return ray


class EncounterWorker:
    """The body of one Ray actor: one loaded pipeline, one encounter at a time."""

    def __init__(self, settings: Settings, paths: Paths) -> None:
        self.pipeline = Pipeline(settings, paths)
        _ = self.pipeline.transcriber  # load the model once, before the first file

    def pid(self) -> int:
        return os.getpid()

    def process(self, item: BatchItem) -> ItemResult:
        finished = result_from_marker(item)
        if finished is not None:  # a retry whose first attempt got as far as the marker
            return finished
        return process_item(self.pipeline, item)


def result_from_marker(item: BatchItem) -> ItemResult | None:
    """The result recorded by an earlier attempt at ``item``, if it finished."""
    data = item.store.read_marker(item.sha256)
    if data is None:
        return None
    return ItemResult(item, True, float(data.get("audio_s") or 0.0), float(data.get("elapsed_s") or 0.0))


def tidy_attempt(item: BatchItem) -> None:
    """Temp files a killed attempt left mid-write in this item's own folder and marker name.

    Nothing else writes there (folders and markers are keyed by the audio's sha256), so once the
    item has a result, any ``.NAME.*.tmp`` left there belongs to the dead attempt.
    """
    item.store.tidy_attempt(item.folder, item.sha256)


def ray_source(options: RayOptions) -> ResultSource:
    """A :data:`~ambient.batch.runner.ResultSource` that runs encounters on Ray actors."""
    ray = import_ray()  # fail before listing, with the install hint, when Ray is missing

    def results(
        settings: Settings, paths: Paths, items: list[BatchItem], workers: int
    ) -> Iterator[ItemResult]:
        started_here = not ray.is_initialized()
        if started_here:
            connect(ray, options)
        try:
            yield from _run_on_actors(ray, options, settings, paths, items, workers)
        finally:
            if started_here:
                ray.shutdown()

    return results


def connect(ray: Any, options: RayOptions) -> None:
    """Join the cluster at ``options.address``; without one, the cluster in RAY_ADDRESS or the one
    ``ray start`` left on this machine, else start a local one sized by ``options``."""
    common: dict[str, Any] = {"log_to_driver": False, "logging_level": "ERROR"}
    try:
        if options.address is not None:
            ray.init(address=options.address, **common)
            return
        try:
            ray.init(address="auto", **common)  # ConnectionError when no cluster is running here
        except ConnectionError:
            local: dict[str, Any] = {
                "include_dashboard": False,
                "object_store_memory": options.object_store_bytes,
            }
            if options.num_cpus is not None:
                local["num_cpus"] = options.num_cpus
            ray.init(**common, **local)
    except ConnectionError as exc:
        raise UsageError(
            f"cannot reach the Ray cluster at {options.address or os.environ.get('RAY_ADDRESS')}: {exc}; "
            "check the address, and for a cluster with token authentication (Ray's default) set "
            "RAY_AUTH_MODE=token with its token in RAY_AUTH_TOKEN or ~/.ray/auth_token"
        ) from None


def thread_env() -> dict[str, str]:
    """``OMP_NUM_THREADS`` for the actors: what a local worker process would have.

    Ray sets ``OMP_NUM_THREADS`` to an actor's CPU count when it is not set, so a 1-CPU actor ran
    on one thread what a local worker, with the variable unset, ran on every core: a library that
    reads it when loaded (numpy's BLAS, most likely; setting it after import changes nothing).
    Float sums in another order gave other word probabilities and word times (the same words),
    so the same audio had another transcript sha256 on Ray than in local mode (measured: 16
    fields of one FLEURS clip's transcript; none with this). The driver's own setting is passed
    on when it has one; else the OpenMP default, one thread per core (of the driver's machine: a
    cluster of other nodes gets the same count, set the variable to choose). Decoding threads are
    ``cpu_threads`` either way.
    """
    return {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS") or str(os.cpu_count() or 1)}


def _cpus_per_actor(ray: Any, settings: Settings, workers: int) -> int:
    total = int(ray.cluster_resources().get("CPU", 0))
    if workers > total:
        raise UsageError(
            f"the Ray cluster has {total} CPU(s), too few for --workers {workers}; "
            "use fewer workers or add nodes"
        )
    return max(1, min(settings.asr.cpu_threads or 1, total // workers))


def _run_on_actors(
    ray: Any, options: RayOptions, settings: Settings, paths: Paths, items: list[BatchItem], workers: int
) -> Iterator[ItemResult]:
    if not items:
        return
    cpus = _cpus_per_actor(ray, settings, workers)
    actor_class = ray.remote(EncounterWorker).options(
        num_cpus=cpus, max_restarts=0, runtime_env={"env_vars": thread_env()}
    )

    def new_actor() -> Any:
        return actor_class.remote(settings, paths)

    actors = [new_actor() for _ in range(workers)]
    pending: deque[BatchItem] = deque(items)
    attempts: dict[str, int] = {}
    in_flight: dict[Any, tuple[int, Any, BatchItem]] = {}  # ref -> (slot, actor, item)
    try:
        while pending or in_flight:
            for slot in range(len(actors)):
                load = sum(1 for s, _, _ in in_flight.values() if s == slot)
                while pending and load < IN_FLIGHT_PER_ACTOR:
                    item = pending.popleft()
                    attempts[item.sha256] = attempts.get(item.sha256, 0) + 1
                    in_flight[actors[slot].process.remote(item)] = (slot, actors[slot], item)
                    load += 1
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                slot, actor, item = in_flight.pop(ref)
                try:
                    result: ItemResult = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    died = not isinstance(exc, ray.exceptions.RayTaskError)
                    if died and actors[slot] is actor:  # replace a dead actor once, not per lost task
                        with contextlib.suppress(Exception):
                            ray.kill(actor)
                        actors[slot] = new_actor()
                    if attempts[item.sha256] < options.max_attempts:
                        pending.appendleft(item)  # idempotent: a retry overwrites or finds the marker
                        continue
                    result = ItemResult(
                        item,
                        False,
                        error_code=DIED_CODE,
                        reason=f"{item.source}: the Ray worker died while processing it "
                        f"({attempts[item.sha256]} attempts; last: {type(exc).__name__})",
                    )
                if attempts[item.sha256] > 1:
                    tidy_attempt(item)
                yield result
    finally:
        for actor in actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
