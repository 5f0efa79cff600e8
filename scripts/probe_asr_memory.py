"""RSS and Intel MKL's buffer pool after every 5-minute piece of one long transcription.

    python scripts/probe_asr_memory.py LONG.flac                   # as shipped
    python scripts/probe_asr_memory.py LONG.flac --keep-mkl-pool   # without emptying MKL's pool

Cheaper than ``scripts/bench_batch_memory.py`` (one process, the transcriber only, no note) and
finer: it prints, after each piece, the RSS and what MKL's memory manager holds
(``mkl_serv_mem_stat`` in CTranslate2's library), so a growth can be pinned on MKL, glibc or
neither. Use it on a long input (e.g. CAR0002 concatenated with sox, as bench_batch_memory makes).
"""

from __future__ import annotations

import argparse
import ctypes
import resource
import time
from dataclasses import replace
from pathlib import Path

import ambient.asr.whisper as asr_whisper
from ambient.config import load_settings, resolve_paths
from ambient.pipeline import Pipeline


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("audio", type=Path)
    parser.add_argument("--keep-mkl-pool", action="store_true", help="do not call mkl_free_buffers")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    free = asr_whisper._mkl_free_buffers()
    stat = None
    if free is not None:
        import ctranslate2

        libs = Path(ctranslate2.__file__).resolve().parent.parent / "ctranslate2.libs"
        lib = ctypes.CDLL(str(sorted(libs.glob("libctranslate2*.so*"))[0]))
        stat = lib.mkl_serv_mem_stat
        stat.restype = ctypes.c_int64

    def pool_mib() -> str:
        if stat is None:
            return "no MKL"
        buffers = ctypes.c_int(0)
        return f"{stat(ctypes.byref(buffers)) / 2**20:.0f} MiB in {buffers.value} buffers"

    began = time.perf_counter()
    pieces = 0

    def release() -> None:
        nonlocal pieces
        pieces += 1
        before = pool_mib()
        if free is not None and not args.keep_mkl_pool:
            free()
        trim = asr_whisper._malloc_trim()
        if trim is not None:
            trim(0)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"piece {pieces}: t={time.perf_counter() - began:.0f} s  MKL pool {before} -> {pool_mib()}"
            f"  RSS {rss_mib():.0f} MiB  peak {peak:.0f} MiB",
            flush=True,
        )

    asr_whisper.release_free_memory = release  # the transcriber calls it after every piece
    paths = resolve_paths()
    settings = load_settings(paths, env={})
    pipeline = Pipeline(replace(settings, asr=replace(settings.asr, cpu_threads=args.threads)), paths)
    _ = pipeline.transcriber
    print(f"model loaded: RSS {rss_mib():.0f} MiB", flush=True)
    transcript = pipeline.transcribe_audio(args.audio)
    print(
        f"done: {len(transcript.segments)} segments, {transcript.header.duration_s / 60:.1f} min", flush=True
    )


if __name__ == "__main__":
    main()
