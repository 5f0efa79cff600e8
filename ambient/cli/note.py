"""``ambient note INPUT``: a drafted note from audio, our transcript JSON, or a dialogue text."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from ambient.cli.common import (
    add_asr_flags,
    add_speakers_flag,
    add_template_flag,
    settings_from_args,
    write_output,
)
from ambient.notes.render import note_to_json, note_to_markdown
from ambient.pipeline import Pipeline


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "note",
        help="draft a note from an encounter",
        description="Draft a clinical note from audio, from an `ambient transcribe --format json` "
        "file, or from a dialogue text with [doctor]/[patient] or D:/P: turns.",
    )
    parser.add_argument("input", type=Path)
    parser.add_argument("--format", choices=["markdown", "json"], default="markdown")
    parser.add_argument("-o", "--output", help="write to this file instead of stdout")
    parser.add_argument("--encounter-id", help="encounter id to record (default: from the input hash)")
    parser.add_argument(
        "--llm-url",
        help="draft with the site's OpenAI-compatible chat endpoint (llama.cpp server, vLLM, Ollama), "
        "e.g. http://127.0.0.1:8080/v1; the transcript is sent there, so it must be inside the site",
    )
    add_template_flag(parser)
    add_asr_flags(parser)
    add_speakers_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings, paths = settings_from_args(args)
    if args.llm_url:
        settings = replace(settings, notes=replace(settings.notes, llm_url=args.llm_url))
    pipeline = Pipeline(settings, paths, speakers=args.speakers)
    _ = pipeline.template  # a wrong --template fails before minutes of transcription
    transcript = pipeline.load_input(args.input, args.encounter_id)
    note = pipeline.draft(transcript)
    if args.format == "json":
        text = json.dumps(note_to_json(note), indent=2, ensure_ascii=False)
    else:
        text = note_to_markdown(note)
    write_output(text, args.output)
    return 0
