"""Peers side by side, one invocation, same audio, same machine, same model weights.

    python scripts/bench_peers.py               # all peers; rewrites its section of docs/benchmarks.md
    python scripts/bench_peers.py --no-doc      # print the table only

Systems (each in its own subprocess, so each peak RSS is its own — ``ru_maxrss`` of that process,
imports and model load included — and so is its CPU time):

- ``ambient batch path``: :meth:`Pipeline.transcribe_audio`, what ``ambient transcribe``/``batch`` run.
- ``ambient streaming path``: the agent's live recogniser (same options as ``ambient agent``), fed
  one second at a time as fast as it decodes (a replay with no pacing), committed words only.
- ``faster-whisper (defaults)``: ``WhisperModel(folder).transcribe(file)`` with nothing changed
  (compute type "default": the model's float16 becomes float32 on CPU), and the same with int8
  (our compute type) to separate the effect of quantisation from the rest.
- ``openai-whisper``: the reference implementation on CPU torch 2.13.0, ``transcribe`` defaults
  (``fp16=False``: CPU), from a checkpoint converted from our packaged weights.
- ``whisper.cpp`` through ``pywhispercpp``: its default parameters, from a ggml file converted from
  the same weights (``scripts/peer_weights.py``; nothing is downloaded).

Audio: ../shared/data/realspeech — the clinical interview CAR0002 (8.8 min, real speech) and the
longest general clip (VoxPopuli, 69 s). openai-whisper and whisper.cpp get the audio as the float
array PyAV decodes (they would otherwise need an ffmpeg binary); decoding is inside their timing,
as it is for ours and faster-whisper. WER: the medwer protocol (Whisper's English normaliser), and
with "OK" ≡ "okay" as in ``scripts/bench_asr.py``. A missing peer package stops the run with the
command to install it (``pip install -e '.[peers]'``).

Speed is audio seconds per CPU second of the system's process (user + system, all threads, while
it transcribes the file), one thread each by default. On a machine shared with other jobs wall time
says more about the neighbours than about the system; CPU time much less. So the systems run side
by side (``--serial`` on a quiet machine) and wall time is shown only for context.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_asr import SHARED, Clip, load_clips, score
from benchdoc import machine, write_section
from peer_weights import peer_models

REPO = Path(__file__).resolve().parents[1]
CLIPS = ("CAR0002.mp3", "voxpopuli-en-000.ogg")
OURS = "ambient batch path"
SYSTEMS = {  # name → (worker, the packages it needs)
    OURS: ("ours_batch", ()),
    "ambient streaming path": ("ours_streaming", ()),
    "faster-whisper (defaults)": ("faster_whisper_default", ("faster_whisper",)),
    "faster-whisper (defaults, int8)": ("faster_whisper_int8", ("faster_whisper",)),
    "openai-whisper": ("openai_whisper", ("whisper", "torch")),
    "whisper.cpp (pywhispercpp)": ("whisper_cpp", ("pywhispercpp",)),
}


# ---- workers: each runs in its own process -------------------------------------------------------


def _settings(threads: int) -> tuple[Any, Any]:
    from ambient.config import load_settings, resolve_paths

    home = Path(tempfile.mkdtemp(prefix="bench-peers-home-"))
    paths = resolve_paths({"AMBIENT_HOME": str(home)})
    settings = load_settings(paths, env={})
    return replace(settings, asr=replace(settings.asr, cpu_threads=threads)), paths


def _array(path: Path) -> Any:
    from faster_whisper.audio import decode_audio  # PyAV, 16 kHz mono float32

    return decode_audio(str(path))


def ours_batch(models: dict[str, Any], threads: int) -> Any:
    from ambient.pipeline import Pipeline

    settings, paths = _settings(threads)
    pipeline = Pipeline(settings, paths)
    _ = pipeline.transcriber
    return lambda path: pipeline.transcribe_audio(path).text


def ours_streaming(models: dict[str, Any], threads: int) -> Any:
    from ambient.agent.runner import live_options
    from ambient.audio.decode import iter_blocks
    from ambient.streaming.events import CommittedWords
    from ambient.streaming.live import LiveRecognizer

    settings, paths = _settings(threads)
    live = LiveRecognizer(live_options(settings), paths.model_cache)

    def transcribe(path: Path) -> str:
        core = live.new_stream()
        events = []
        for block in iter_blocks(path, 1.0):
            events += core.feed(block.samples)
        events += core.flush()
        return " ".join(w.word.strip() for e in events if isinstance(e, CommittedWords) for w in e.words)

    return transcribe


def _faster_whisper(models: dict[str, Any], threads: int, compute_type: str) -> Any:
    from faster_whisper import WhisperModel

    model = WhisperModel(models["ct2_folder"], device="cpu", compute_type=compute_type, cpu_threads=threads)
    return lambda path: " ".join(s.text.strip() for s in model.transcribe(str(path))[0])


def faster_whisper_default(models: dict[str, Any], threads: int) -> Any:
    return _faster_whisper(models, threads, "default")


def faster_whisper_int8(models: dict[str, Any], threads: int) -> Any:
    return _faster_whisper(models, threads, "int8")


def openai_whisper(models: dict[str, Any], threads: int) -> Any:
    import torch
    import whisper

    torch.set_num_threads(threads)
    model = whisper.load_model(models["paths"]["openai-whisper"], device="cpu")
    return lambda path: str(model.transcribe(_array(path), fp16=False)["text"])


def whisper_cpp(models: dict[str, Any], threads: int) -> Any:
    from pywhispercpp.model import Model

    ggml = models["paths"]["whisper.cpp"]
    model = Model(ggml, n_threads=threads, print_progress=False, print_realtime=False)
    return lambda path: " ".join(s.text.strip() for s in model.transcribe(_array(path)))


def run_worker(worker: str, models: dict[str, Any], threads: int, files: list[str]) -> dict[str, Any]:
    began = time.perf_counter()
    transcribe = globals()[worker](models, threads)
    load_s = time.perf_counter() - began
    texts, walls, cpus = [], [], []
    for file in files:
        started, cpu = time.perf_counter(), _cpu_s()
        texts.append(transcribe(Path(file)))
        walls.append(time.perf_counter() - started)
        cpus.append(_cpu_s() - cpu)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"texts": texts, "wall_s": walls, "cpu_s": cpus, "load_s": load_s, "peak_rss_mib": peak_kib / 1024}


def _cpu_s() -> float:
    """User + system CPU seconds of this process, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---- the parent: one subprocess per system -------------------------------------------------------


@dataclass
class Result:
    system: str
    texts: list[str]
    wall_s: list[float]
    cpu_s: list[float]
    load_s: float
    peak_rss_mib: float


def missing(packages: tuple[str, ...]) -> list[str]:
    return [p for p in packages if importlib.util.find_spec(p) is None]


def run_system(system: str, models: dict[str, Any], threads: int, clips: list[Clip]) -> Result:
    worker, _ = SYSTEMS[system]
    files = [str(c.path) for c in clips]
    spec = json.dumps({"worker": worker, "models": models, "threads": threads, "files": files})
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", spec], capture_output=True, text=True, env=env, cwd=REPO
    )
    if proc.returncode != 0:
        raise SystemExit(f"{system} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return Result(system, data["texts"], data["wall_s"], data["cpu_s"], data["load_s"], data["peak_rss_mib"])


def table(results: list[Result], clips: list[Clip]) -> list[str]:
    ours = next(r for r in results if r.system == OURS)
    audio_s = sum(c.duration_s for c in clips)
    names = [c.path.stem for c in clips]
    lines = [
        "| system | "
        + " | ".join(f"{n} WER (OK≡okay)" for n in names)
        + " | audio s / CPU s | theirs CPU ÷ ours | wall | peak RSS | ÷ ours |",
        "|---|" + "---|" * len(clips) + "---|---|---|---|---|",
    ]
    for r in results:
        wers = [score([c.reference], [t]) for c, t in zip(clips, r.texts, strict=True)]
        cells = " | ".join(f"{100 * w[0]:.1f} % ({100 * w[1]:.1f} %)" for w in wers)
        lines.append(
            f"| {r.system} | {cells} | {audio_s / sum(r.cpu_s):.1f} | {sum(r.cpu_s) / sum(ours.cpu_s):.2f} "
            f"| {sum(r.wall_s):.0f} s | {r.peak_rss_mib:.0f} MiB | {r.peak_rss_mib / ours.peak_rss_mib:.2f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for every system (default 1)")
    parser.add_argument("--serial", action="store_true", help="one system at a time (a quiet machine)")
    workers = ",".join(w for w, _ in SYSTEMS.values())
    parser.add_argument("--systems", default=workers, help=f"comma-separated subset of {workers}")
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument(
        "--clips", default=",".join(CLIPS), help=f"realspeech file names (default {','.join(CLIPS)})"
    )
    parser.add_argument("--doc-key", default="peers", help="section of docs/benchmarks.md to rewrite")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(run_worker(spec["worker"], spec["models"], spec["threads"], spec["files"])))
        return
    if not SHARED.is_dir():
        raise SystemExit(f"no evaluation data at {SHARED}: put ../shared/data beside the repository")
    by_worker = {w: name for name, (w, _) in SYSTEMS.items()}
    wanted = [s.strip() for s in args.systems.split(",") if s.strip()]
    if unknown := [s for s in wanted if s not in by_worker]:
        raise SystemExit(f"unknown systems {unknown}; choose from {workers}")
    chosen = [by_worker[w] for w in wanted]
    for system in chosen:
        if lacking := missing(SYSTEMS[system][1]):
            raise SystemExit(
                f"{system} needs {', '.join(lacking)}, which is not installed: run "
                f"`.venv/bin/python -m pip install -e '.[peers]'`, or leave it out with --systems"
            )
    if OURS not in chosen:
        chosen.insert(0, OURS)  # every ratio is against our batch path
    names = [n.strip() for n in args.clips.split(",") if n.strip()]
    clips = [c for name in names for c in load_clips() if c.path.name == name]
    if len(clips) != len(names):
        raise SystemExit(f"--clips: some of {names} are not in {SHARED}")
    models = peer_models(Path(tempfile.gettempdir()) / "ambient-bench-peers")
    print(f"running {', '.join(chosen)} …", file=sys.stderr, flush=True)
    with ThreadPoolExecutor(1 if args.serial else len(chosen)) as pool:
        results = list(pool.map(lambda s: run_system(s, models, args.threads, clips), chosen))
    lines = table(results, clips)
    print("\n".join(lines))
    if not args.no_doc:
        write_doc(lines, models, args, clips)


def write_doc(lines: list[str], models: dict[str, Any], args: argparse.Namespace, clips: list[Clip]) -> None:
    import faster_whisper

    versions = {"faster-whisper": faster_whisper.__version__}
    for name, module in (("openai-whisper", "whisper"), ("pywhispercpp", "pywhispercpp"), ("torch", "torch")):
        if importlib.util.find_spec(module) is not None:
            from importlib.metadata import version

            versions[name] = version(name)
    doc = [
        f"## Peers side by side (`scripts/bench_peers.py`): {', '.join(c.path.name for c in clips)}",
        "",
        f"- Run: {datetime.now(UTC).isoformat(timespec='seconds')}, command `python scripts/bench_peers.py"
        f" --threads {args.threads} --clips {args.clips} --systems {args.systems}`, one invocation;"
        f" machine: {machine()}, shared with other jobs while"
        " it ran: the systems ran side by side, and speed is audio seconds per CPU second of each"
        " system's own process (user + system, all threads), which the neighbours disturb far less"
        " than wall time (shown for context only).",
        f"- Model: Whisper tiny.en from `{models['source']}` (model.bin sha256"
        f" {models['source_sha256'][:12]}…)"
        " for every system. openai-whisper's checkpoint and whisper.cpp's ggml file are converted from that"
        " file by `scripts/peer_weights.py` (float16 weights, unquantised, so nothing is lost; sha256 "
        f"{models['sha256']['openai-whisper'][:12]}… and {models['sha256']['whisper.cpp'][:12]}…).",
        "- Audio: " + ", ".join(f"{c.path.name} ({c.duration_s:.0f} s)" for c in clips) + ". "
        "WER: medwer protocol; "
        "OK≡okay as in the ASR section. CPU time covers transcribing the file, audio decoding included,"
        " model load excluded. Peak RSS: `ru_maxrss` of the system's own process (imports and model"
        " included). *theirs CPU ÷ ours*: how many times our batch path's CPU time the system needs.",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
        *lines,
        "",
        "Each system runs with its own defaults except the thread count: faster-whisper beam 5 without VAD"
        " (the defaults: float32 on CPU, and int8 as ours), openai-whisper greedy with temperature"
        " fallback and conditioning on previous text, whisper.cpp with pywhispercpp's default"
        " parameters. Our batch path: Silero VAD windows decoded by faster-whisper's batched pipeline,"
        " int8; the streaming path commits words by LocalAgreement-2 with a short encoder window.",
    ]
    write_section(args.doc_key, "\n".join(doc))


if __name__ == "__main__":
    main()
