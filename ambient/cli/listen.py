"""``ambient listen``: live transcription from the microphone or a replayed file.

    ambient listen --list-devices
    ambient listen [--device N]                       # microphone
    ambient listen --replay FILE [--speed 1.0] --events jsonl
    ambient listen --journal [--encounter-id ID]      # crash-safe: audio + words on disk
    ambient listen --recover                          # rebuild interrupted encounters

``--events jsonl`` prints one JSON object per event: ``kind`` (``partial`` or ``committed``),
``emitted_at_s`` (wall seconds since the stream started) and the words with their audio times;
``--events text`` (the default) prints committed words as lines and partials on a terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from ambient.cli.common import add_asr_flags, settings_from_args
from ambient.config import resolve_paths
from ambient.errors import UsageError
from ambient.protect.outputs import write_output
from ambient.protect.sealed import Protector
from ambient.streaming.events import CommittedWords, event_to_dict
from ambient.streaming.journal import (
    EncounterJournal,
    encounters_dir,
    find_interrupted,
    mark_recovered,
    rebuild_transcript,
)
from ambient.streaming.live import (
    STREAM_LEFT_CONTEXT_S,
    STREAM_MIN_CHUNK_S,
    STREAM_MIN_SILENCE_S,
    STREAM_WINDOW,
    LiveOptions,
    LiveRecognizer,
    tuned_options,
)
from ambient.streaming.runtime import StreamReport, TimedEvent, run_stream
from ambient.streaming.sources import MicrophoneSource, ReplaySource, check_speed, list_input_devices
from ambient.streaming.whisper import WINDOWS
from ambient.transcript.serialise import transcript_to_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "listen",
        help="transcribe live: microphone, or a file replayed in real time",
        description="Transcribe as the talk goes on; print partial and committed words.",
    )
    source = parser.add_argument_group("audio source")
    source.add_argument("--replay", type=Path, metavar="FILE", help="replay a recording instead of the mic")
    source.add_argument("--speed", type=float, default=1.0, help="replay speed (1.0 = real time)")
    source.add_argument("--device", help="input device: index or part of its name (default: system default)")
    source.add_argument("--list-devices", action="store_true", help="list audio input devices and exit")
    parser.add_argument(
        "--events",
        "--format",
        dest="events",
        choices=["jsonl", "text"],
        default="text",
        help="jsonl: one JSON event per line; text: committed words for people (default)",
    )
    journal = parser.add_argument_group("journal (crash safety)")
    journal.add_argument(
        "--journal",
        action="store_true",
        help="write audio and committed words to <data dir>/encounters/<id>/ as they arrive",
    )
    journal.add_argument("--encounter-id", help="journal folder name (default: live-<UTC time>)")
    journal.add_argument(
        "--recover",
        action="store_true",
        help="rebuild the transcript of every interrupted journal, then exit",
    )
    parser.add_argument(
        "--min-silence",
        type=float,
        help=f"seconds of silence that end an utterance (default {STREAM_MIN_SILENCE_S})",
    )
    parser.add_argument(
        "--min-chunk", type=float, help=f"seconds of new audio per decode (default {STREAM_MIN_CHUNK_S})"
    )
    parser.add_argument(
        "--left-context",
        type=float,
        help=f"seconds of earlier speech decoded before each utterance (default {STREAM_LEFT_CONTEXT_S})",
    )
    parser.add_argument(
        "--window",
        choices=WINDOWS,
        help=f"Whisper's encoder window: spliced (short window's cost, full window's accuracy), "
        f"short, full (30 s) or adaptive (full unless audio waits behind a decode); default {STREAM_WINDOW}",
    )
    add_asr_flags(parser)
    parser.set_defaults(func=run)


def live_options(args: argparse.Namespace) -> tuple[LiveOptions, Path]:
    settings, paths = settings_from_args(args)
    min_silence = STREAM_MIN_SILENCE_S if args.min_silence is None else args.min_silence
    if not 0.1 <= min_silence <= 10:
        raise UsageError(f"--min-silence must be between 0.1 and 10 seconds, got {min_silence}")
    if args.left_context is not None and not 0 <= args.left_context <= 10:
        raise UsageError(f"--left-context must be between 0 and 10 seconds, got {args.left_context}")
    if args.min_chunk is not None and not 0.05 <= args.min_chunk <= 10:
        raise UsageError(f"--min-chunk must be between 0.05 and 10 seconds, got {args.min_chunk}")
    options = tuned_options(
        settings.asr.model,
        language=settings.asr.language,
        cpu_threads=settings.asr.cpu_threads,
        vad=settings.asr.vad_filter,
        clinical_prompt=settings.asr.clinical_prompt,
        beam_size=args.beam_size,
        min_chunk_s=args.min_chunk,
        min_silence_s=min_silence,
        left_context_s=args.left_context,
        window=args.window,
    )
    return options, paths.model_cache


def run(args: argparse.Namespace) -> int:
    if args.list_devices:
        devices = list_input_devices()
        if not devices:
            print("no audio input devices found", file=sys.stderr)
            return 0
        for d in devices:
            mark = "*" if d.default else " "
            print(f"{mark} {d.index:3d}  {d.name}  ({d.channels} ch, {d.default_rate_hz} Hz)")
        return 0
    if args.recover:
        return _recover()
    check_speed(args.speed)
    if args.replay is not None and args.device is not None:
        raise UsageError("--device is for the microphone; leave it out with --replay")
    # open the source first: a bad file or a missing microphone is reported before the model loads
    source = ReplaySource(args.replay, args.speed) if args.replay else MicrophoneSource(args.device)
    options, cache = live_options(args)
    live = LiveRecognizer(options, cache)
    journal = None
    if args.journal:
        encounter_id = args.encounter_id or "live-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        journal = EncounterJournal.create(encounters_dir(resolve_paths()), encounter_id, live.producer.model)
        print(f"ambient listen: journaling encounter {encounter_id} in {journal.folder}", file=sys.stderr)
    printer = _Printer(args.events)
    report = asyncio.run(run_stream(source, live.new_stream(), printer, journal=journal))
    if journal is not None:
        journal.close()
    printer.close()
    _summary(report)
    return 0


def _recover() -> int:
    """Rebuild each interrupted encounter's committed transcript next to its journal."""
    interrupted = find_interrupted(resolve_paths())
    if not interrupted:
        print("no interrupted encounters", file=sys.stderr)
    for found in interrupted:
        transcript = rebuild_transcript(found)
        target = found.folder / "transcript.json"  # sealed like the journal it comes from
        text = json.dumps(transcript_to_json(transcript), indent=2, ensure_ascii=False)
        write_output(Protector.for_paths(), target, text, plain=False)
        mark_recovered(found)
        print(
            f"{found.encounter_id}: {found.audio_s:.1f} s of audio, {len(found.words)} committed words, "
            f"{found.untranscribed_s:.1f} s after the last word; wrote {target}"
        )
    return 0


class _Printer:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.tty = sys.stderr.isatty()
        self._partial_shown = False

    def __call__(self, timed: TimedEvent) -> None:
        if self.kind == "jsonl":
            line = {"kind": "", "emitted_at_s": timed.emitted_at_s, **event_to_dict(timed.event)}
            sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
            sys.stdout.flush()
            return
        event = timed.event
        if isinstance(event, CommittedWords):
            self._clear()
            first, last = event.words[0], event.words[-1]
            sys.stdout.write(f"[{first.start_s:8.2f} – {last.end_s:8.2f}] {event.text}\n")
            sys.stdout.flush()
        elif self.tty and event.text:
            sys.stderr.write("\r\033[K… " + event.text[-100:])
            sys.stderr.flush()
            self._partial_shown = True

    def _clear(self) -> None:
        if self._partial_shown:
            sys.stderr.write("\r\033[K")
            self._partial_shown = False

    def close(self) -> None:
        self._clear()


def _summary(report: StreamReport) -> None:
    print(
        f"ambient listen: {report.audio_s:.1f} s of audio in {report.wall_s:.1f} s; decoding busy "
        f"{report.busy_s:.1f} s; largest backlog {report.max_backlog_s:.2f} s",
        file=sys.stderr,
    )
