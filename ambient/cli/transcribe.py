"""``ambient transcribe AUDIO``: the transcript, as text, JSON, WebVTT or SRT."""

from __future__ import annotations

import argparse
from pathlib import Path

from ambient.cli.common import add_asr_flags, add_speakers_flag, settings_from_args, write_output
from ambient.pipeline import Pipeline
from ambient.transcript.serialise import render


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "transcribe",
        help="transcribe a recorded encounter",
        description="Transcribe one audio file (wav, flac, mp3, ogg, m4a, webm).",
    )
    parser.add_argument("audio", type=Path)
    parser.add_argument("--format", choices=["text", "json", "vtt", "srt"], default="text")
    parser.add_argument("-o", "--output", help="write to this file instead of stdout")
    parser.add_argument("--encounter-id", help="encounter id to record (default: from the audio hash)")
    add_asr_flags(parser)
    add_speakers_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings, paths = settings_from_args(args)
    pipeline = Pipeline(settings, paths, speakers=args.speakers)
    transcript = pipeline.transcribe_audio(args.audio, args.encounter_id)
    write_output(render(transcript, args.format), args.output)
    return 0
