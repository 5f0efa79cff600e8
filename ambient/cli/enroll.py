"""``ambient enroll VOICE.wav``: store the clinician's voice print for speaker attribution."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ambient.cli.common import settings_from_args
from ambient.errors import UsageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "enroll",
        help="enrol the clinician's voice for --speakers",
        description="Store a voice print of this workstation's clinician from a recording of them "
        "speaking alone (30 s of ordinary talk is best; at least 5 s of speech). With a voice "
        "print, `--speakers` names the voice nearer to it the clinician.",
    )
    parser.add_argument("audio", type=Path, nargs="?", help="a recording of the clinician alone")
    parser.add_argument("--remove", action="store_true", help="delete the stored voice print instead")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ambient.diarize.attribute import shared_encoder
    from ambient.diarize.enroll import make_voiceprint, save_voiceprint, voiceprint_path

    _, paths = settings_from_args(args)
    target = voiceprint_path(paths)
    if args.remove:
        target.unlink(missing_ok=True)
        print(f"removed the voice print {target}", file=sys.stderr)
        return 0
    if args.audio is None:
        raise UsageError("give a recording of the clinician: ambient enroll VOICE.wav (or --remove)")
    voiceprint = make_voiceprint(shared_encoder(), args.audio)
    save_voiceprint(voiceprint, target)
    print(f"enrolled {voiceprint.speech_s:.1f} s of speech; voice print saved to {target}", file=sys.stderr)
    return 0
