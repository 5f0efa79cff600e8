"""What every command shares: settings from config + flags, output writing, and messages."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from ambient.atomic import atomic_write_text
from ambient.config import Paths, Settings, load_settings, resolve_paths
from ambient.errors import UsageError


def add_asr_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("speech recognition")
    group.add_argument(
        "--model",
        help="packaged model name (see `ambient models list`), a local "
        "CTranslate2 folder, or a faster-whisper model name",
    )
    group.add_argument("--language", help="language code, or 'auto' to detect (multilingual models)")
    group.add_argument("--beam-size", type=int, help="beam width; 1 is greedy and fastest")
    group.add_argument(
        "--clinical-prompt",
        dest="clinical_prompt",
        action="store_true",
        default=None,
        help="bias decoding with the clinical vocabulary prompt",
    )
    group.add_argument("--no-clinical-prompt", dest="clinical_prompt", action="store_false")
    group.add_argument(
        "--no-vad",
        dest="vad_filter",
        action="store_false",
        default=None,
        help="transcribe silence too (not recommended: Whisper invents text in silence)",
    )
    group.add_argument("--threads", type=int, help="CPU threads for decoding (default: all cores)")


def add_speakers_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--speakers",
        nargs="?",
        const="auto",
        default=None,
        choices=["auto", "channels", "embeddings", "none"],
        help="attribute each word to clinician or patient (audio input): 'channels' for one "
        "speaker per stereo channel, 'embeddings' for one microphone, 'auto' (the default when "
        "the flag has no value) picks; needs the speakers extra (default: [asr] speakers, 'none')",
    )


def add_template_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--template", help="note template name or .toml path (default: soap)")


def settings_from_args(args: argparse.Namespace) -> tuple[Settings, Paths]:
    paths = resolve_paths()
    config_file = Path(args.config) if getattr(args, "config", None) else None
    settings = load_settings(paths, config_file=config_file)
    asr_changes = {
        key: getattr(args, attr)
        for key, attr in (
            ("model", "model"),
            ("beam_size", "beam_size"),
            ("clinical_prompt", "clinical_prompt"),
            ("vad_filter", "vad_filter"),
            ("cpu_threads", "threads"),
        )
        if getattr(args, attr, None) is not None
    }
    language = getattr(args, "language", None)
    if language is not None:
        asr_changes["language"] = None if language == "auto" else language
    if asr_changes.get("beam_size", 1) < 1:
        raise UsageError("--beam-size must be at least 1")
    settings = replace(settings, asr=replace(settings.asr, **asr_changes))
    template = getattr(args, "template", None)
    if template:
        settings = replace(settings, notes=replace(settings.notes, template=template))
    return settings, paths


def write_output(text: str, output: str | None) -> None:
    """Print to stdout, or write ``-o FILE`` atomically (never a half-written file)."""
    if output is None or output == "-":
        sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
        return
    atomic_write_text(Path(output), text if text.endswith("\n") else text + "\n")
    print(f"wrote {output}", file=sys.stderr)
