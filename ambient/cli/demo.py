"""``ambient demo``: the whole flow on a sample encounter, end to end, on this machine.

It renders a two-voice sample visit with espeak-ng (our own script, no recorded patient), then
transcribes it with the default packaged model, drafts the note and drops it into the local inbox
— the same path a real encounter takes — and says where everything went.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ambient.atomic import atomic_write_text
from ambient.audio.synth import render_sample
from ambient.cli.common import add_asr_flags, add_template_flag, settings_from_args
from ambient.ehr.inbox import InboxSink
from ambient.pipeline import Pipeline
from ambient.transcript.serialise import render


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("demo", help="run the whole flow on a generated sample encounter")
    parser.add_argument("--inbox", type=Path, help="inbox folder (default: from config)")
    add_template_flag(parser)
    add_asr_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings, paths = settings_from_args(args)
    inbox = args.inbox or settings.inbox_dir(paths)
    pipeline = Pipeline(settings, paths)
    _ = pipeline.template
    print("1/4 rendering a two-voice sample encounter with espeak-ng (synthetic speech) ...")
    sample = render_sample(paths.samples_dir)
    print(f"    {sample.audio_path} ({sample.duration_s:.1f} s)")
    print(f"2/4 transcribing with {settings.asr.model} ...")
    started = time.monotonic()
    transcript = pipeline.transcribe_audio(sample.audio_path, "demo-" + sample.audio_path.stem)
    elapsed = time.monotonic() - started
    print(
        f"    {len(transcript.segments)} segments, {elapsed:.1f} s "
        f"({transcript.header.duration_s / max(elapsed, 1e-6):.1f}× real time)"
    )
    print(f"3/4 drafting a {pipeline.template.title} ...")
    note = pipeline.draft(transcript)
    counts = ", ".join(f"{s.title} {len(s.sentences)}" for s in note.sections)
    print(f"    sentences per section: {counts}")
    print("4/4 delivering to the local inbox ...")
    receipt = InboxSink(inbox).deliver(note)
    transcript_path = atomic_write_text(
        sample.audio_path.with_suffix(".transcript.json"), render(transcript, "json")
    )
    print()
    print(f"Note delivered to {receipt.locations[0]}")
    print(f"            JSON: {receipt.locations[1]}")
    print(f"      transcript: {transcript_path}")
    return 0
