"""``ambient eval asr|stream|speakers DATA``: a site measures the recogniser on its own recordings.

DATA is a folder of ``NAME.<audio>`` + ``NAME.txt`` (or ``.TextGrid``, or the
``.reference.json`` that ``scripts/render_dialogues.py`` writes), or a JSON/CSV manifest of audio
and reference paths; see ``ambient.evaluation.data``. Figures on rendered (espeak-ng) audio are
labelled "synthetic speech" in the table and in ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ambient.cli.common import settings_from_args
from ambient.config import Paths, Settings
from ambient.errors import InputError, UsageError

_DATA_HELP = "folder of NAME.<audio> + NAME.txt/.TextGrid/.reference.json, or a JSON/CSV manifest"


def _common(parser: argparse.ArgumentParser, models: bool) -> None:
    parser.add_argument("data", type=Path, metavar="DATA", help=_DATA_HELP)
    parser.add_argument("--json", action="store_true", help="print per-file figures and totals as JSON")
    parser.add_argument("--limit", type=int, help="only the first N files (sorted by name)")
    if models:
        parser.add_argument(
            "--model",
            action="append",
            dest="models",
            metavar="MODEL",
            help="packaged model name or CTranslate2 folder; repeat to compare (default: the configured one)",
        )
    else:
        parser.add_argument("--model", help="packaged model name or CTranslate2 folder")
    parser.add_argument("--threads", type=int, help="CPU threads for decoding (default: all cores)")
    parser.add_argument("--beam-size", type=int, help="beam width for the batch path; 1 is greedy")
    parser.add_argument("--clinical-prompt", dest="clinical_prompt", action="store_true", default=None)
    parser.add_argument("--no-clinical-prompt", dest="clinical_prompt", action="store_false")


def register_speech(kinds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    asr = kinds.add_parser(
        "asr",
        help="WER, medical-term WER, S/I/D and speed of the batch recogniser",
        description="Transcribe every file in DATA and score it against its reference.",
    )
    _common(asr, models=True)
    asr.set_defaults(func=run_asr)
    stream = kinds.add_parser(
        "stream",
        help="commit latency (median/p95) and streaming-vs-batch WER",
        description="Replay every file in DATA through the live path the agent uses and score it.",
    )
    _common(stream, models=False)
    stream.add_argument("--speed", type=float, default=1.0, help="replay speed (1.0 = real time)")
    stream.add_argument("--no-batch", action="store_true", help="skip the batch transcription")
    stream.set_defaults(func=run_stream)
    speakers = kinds.add_parser(
        "speakers",
        help="word-level clinician/patient attribution accuracy",
        description="Transcribe with speaker attribution and score who said each word against the "
        "reference turns (timed turns score by time; untimed turns by word alignment).",
    )
    _common(speakers, models=False)
    speakers.add_argument(
        "--speakers",
        default="auto",
        choices=["auto", "channels", "embeddings"],
        help="attribution mode (default auto: channels for stereo, embeddings for one microphone)",
    )
    speakers.set_defaults(func=run_speakers)


def _items(args: argparse.Namespace) -> list[Any]:
    from ambient.evaluation.data import load_items

    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {args.limit}")
    return load_items(args.data)[: args.limit]


def _scorer() -> Any:
    try:
        from ambient.evaluation.wer import WerScorer

        return WerScorer()
    except ImportError as exc:  # medwer lives in the [eval] extra
        raise UsageError(
            f"`ambient eval` needs the eval extra: pip install 'ambient[eval]' ({exc})"
        ) from None


def _settings(args: argparse.Namespace, model: str | None) -> tuple[Settings, Paths]:
    args = argparse.Namespace(**{**vars(args), "model": model})
    return settings_from_args(args)


def _progress(args: argparse.Namespace) -> Any:
    return None if args.json else (lambda name: print(f"  scored {name}", file=sys.stderr))


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def run_asr(args: argparse.Namespace) -> int:
    from ambient.evaluation.asr import evaluate_asr, results_json
    from ambient.pipeline import Pipeline

    items = _items(args)
    scorer = _scorer()
    results = []
    for model in args.models or [None]:
        settings, paths = _settings(args, model)
        pipeline = Pipeline(replace(settings, asr=replace(settings.asr, speakers="none")), paths)
        results.append(evaluate_asr(items, pipeline, scorer, _progress(args)))
    report = results_json(results, str(args.data))
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    console = Console()
    table = Table(title=f"ambient eval asr · {args.data.name} · {len(items)} files · {report['speech']}")
    for column in ("model", "file", "WER (medwer)", "WER (OK≡okay)", "medical WER", "S / I / D",
                   "ref words", "audio (s)", "× real time"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("model", "file") else "right")
    for model in report["models"]:
        rows = (
            [*model["files"], {"name": "TOTAL", **model["total"]}]
            if len(model["files"]) > 1
            else [{"name": model["files"][0]["name"], **model["files"][0]}]
        )
        for row in rows:
            speed = "–" if row["x_real_time"] is None else f"{row['x_real_time']:.1f}"
            table.add_row(
                model["model"], row["name"] + (" (synthetic)" if row.get("synthetic") else ""),
                _pct(row["wer"]), _pct(row["wer_ok_equals_okay"]), _pct(row["medical_wer"]),
                f"{row['substitutions']} / {row['insertions']} / {row['deletions']}",
                str(row["reference_words"]), f"{row['audio_s']:.1f}", speed,
                end_section=row["name"] == "TOTAL" or len(model["files"]) == 1,
            )  # fmt: skip
    console.print(table)
    console.print(
        "WER: medwer protocol (Whisper normaliser, numbers folded); 'OK≡okay' counts OK and okay as one "
        "word. × real time = audio ÷ wall seconds, model loading excluded."
    )
    return 0


def run_stream(args: argparse.Namespace) -> int:
    from ambient.evaluation.stream import StreamEvaluator, stream_json

    items = _items(args)
    scorer = _scorer()
    settings, paths = _settings(args, args.model)
    settings = replace(settings, asr=replace(settings.asr, speakers="none"))
    evaluator = StreamEvaluator(settings, paths, args.speed, batch=not args.no_batch)
    results = evaluator.evaluate(items, scorer, _progress(args))
    report = stream_json(results, evaluator.model, args.speed)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    console = Console()
    table = Table(
        title=f"ambient eval stream · {args.data.name} · {evaluator.model} · speed {args.speed:g} · "
        f"{report['speech']}"
    )
    for column in ("file", "words", "latency median", "latency p95", "WER streaming", "WER batch",
                   "streaming − batch", "WER streaming (OK≡okay)"):  # fmt: skip
        table.add_column(column, justify="left" if column == "file" else "right")
    rows = [*report["files"], {"name": "TOTAL", **report["total"]}] if len(results) > 1 else report["files"]
    for row in rows:
        lat, wer = row["commit_latency"], row["wer"]
        gap = wer["streaming_minus_batch"]
        table.add_row(
            row["name"], str(lat["words"]),
            "–" if lat["median_s"] is None else f"{lat['median_s']:.2f} s",
            "–" if lat["p95_s"] is None else f"{lat['p95_s']:.2f} s",
            _pct(wer["streaming"]["wer"]), _pct(wer["batch"]["wer"] if wer["batch"] else None),
            "–" if gap is None else f"{100 * gap:+.1f} points", _pct(wer["streaming"]["wer_ok_equals_okay"]),
        )  # fmt: skip
    console.print(table)
    console.print("Latency: wall seconds from a word's last sample arriving to its commit.")
    return 0


def run_speakers(args: argparse.Namespace) -> int:
    from ambient.evaluation.asr import speech_label
    from ambient.evaluation.speakers import evaluate_speakers, speakers_json
    from ambient.pipeline import Pipeline

    items = _items(args)
    unlabelled = [i.name for i in items if not i.reference.has_roles]
    if unlabelled:
        raise InputError(
            f"{args.data}: the reference of {', '.join(unlabelled[:5])} has no speaker turns; "
            "`eval speakers` needs D:/P: or [doctor]/[patient] turns, a TextGrid tier per speaker, or a "
            "rendered .reference.json"
        )
    settings, paths = _settings(args, args.model)
    pipeline = Pipeline(replace(settings, asr=replace(settings.asr, speakers=args.speakers)), paths)
    results = evaluate_speakers(items, pipeline, _progress(args))
    report = {"speech": speech_label(r.synthetic for r in results), "mode": args.speakers,
              **speakers_json(results)}  # fmt: skip
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    console = Console()
    table = Table(title=f"ambient eval speakers · {args.data.name} · {len(items)} files · {report['speech']}")
    for column in ("file", "scored by", "words scored", "coverage", "accuracy", "oracle roles", "roles"):
        table.add_column(column, justify="left" if column in ("file", "scored by") else "right")
    for row in report["files"]:
        table.add_row(
            row["name"], row["method"], str(row["words_scored"]), _pct(row["coverage"]),
            _pct(row["accuracy"]), _pct(row["oracle_roles_accuracy"]),
            "right" if row["roles_right"] else "SWAPPED",
        )  # fmt: skip
    t = report["total"]
    if len(results) > 1:
        table.add_row("TOTAL", "", str(t["words_scored"]), _pct(t["coverage"]), _pct(t["accuracy"]),
                      _pct(t["oracle_roles_accuracy"]), "")  # fmt: skip
    console.print(table)
    console.print(
        "Accuracy: share of scored words given the right role; oracle roles: the better of the two "
        "voice→role mappings (clustering alone)."
    )
    return 0
