"""What sealing costs: journal appends and reads, sealed vs plain, and `ambient keys rotate` time.

Synthetic audio (a tone) and words: the cost is AES-GCM and framing, which do not depend on what
was said. Runs in a throwaway AMBIENT_HOME; prints a Markdown table for docs/benchmarks.md.

    .venv/bin/python scripts/bench_protect.py [--minutes 15] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="encounter length (default 15)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--files", type=int, default=200, help="batch output files to rotate")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-protect-"))
    os.environ["AMBIENT_HOME"] = str(home)

    from ambient.config import load_settings, resolve_paths
    from ambient.protect.outputs import remember_batch_dir, write_output
    from ambient.protect.rotate import rotate
    from ambient.protect.sealed import Protector
    from ambient.streaming.events import CommittedWords
    from ambient.streaming.journal import EncounterJournal, encounters_dir, read_journal
    from ambient.types import Word

    paths = resolve_paths()
    sealed = Protector.for_paths(paths)
    plain = Protector(sealed.store, seal_new=False)
    chunk = (0.2 * np.sin(np.arange(1600) / 7)).astype(np.float32)  # 100 ms, as the agent receives it
    chunks = int(args.minutes * 600)
    rows: dict[str, dict[str, list[float]]] = {"sealed": {}, "plain": {}}
    for run in range(args.repeats):
        for name, protector in (("sealed", sealed), ("plain", plain)):
            journal = EncounterJournal.create(encounters_dir(paths), f"{name}-{run}", protector=protector)
            began = time.perf_counter()
            for i in range(chunks):
                journal.append_audio(chunk)
                if i % 10 == 9:  # about one committed phrase a second
                    journal.append_events([CommittedWords((Word("word", i / 10, i / 10 + 0.1, 0.9),))])
            journal.close()
            append_s = time.perf_counter() - began
            began = time.perf_counter()
            found = read_journal(journal.folder, protector)
            read_s = time.perf_counter() - began
            assert len(found.words) == chunks // 10
            stats = rows[name]
            stats.setdefault("append_us", []).append(append_s / chunks * 1e6)
            stats.setdefault("read_s", []).append(read_s)
            size = sum(p.stat().st_size for p in journal.folder.iterdir())
            stats.setdefault("mib", []).append(size / 2**20)
    out = home / "batch-out"
    for i in range(args.files):
        write_output(sealed, out / f"visit-{i}.x" / "note.md", "# Note\n" + "text " * 400, plain=False)
    remember_batch_dir(paths, out)
    began = time.perf_counter()
    report = rotate(paths, load_settings(paths))
    rotate_s = time.perf_counter() - began
    journals = 2 * args.repeats

    def med(name: str, key: str) -> float:
        return statistics.median(rows[name][key])

    print(f"{args.minutes:g}-minute encounter, median of {args.repeats} runs (shared machine):\n")
    print("| journal | per 100 ms append | read back (recovery) | on disk |")
    print("|---|---|---|---|")
    for name in ("plain", "sealed"):
        append, read, mib = med(name, "append_us"), med(name, "read_s"), med(name, "mib")
        print(f"| {name} | {append:.0f} µs | {read:.3f} s | {mib:.1f} MiB |")
    ratio = med("sealed", "append_us") / med("plain", "append_us")
    print(f"\nsealed / plain append time: {ratio:.2f}×")
    print(
        f"\n`keys rotate`: {journals} journals ({report.journal_records} records) + {report.batch_files} "
        f"batch files re-sealed in {rotate_s:.2f} s; complete: {report.complete}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
