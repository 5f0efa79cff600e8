"""``ambient eval asr``: transcribe each file through the product's batch path and score it.

The transcription is ``Pipeline.transcribe_audio`` — what ``ambient transcribe`` and
``ambient batch`` run — so a site measures the recogniser it will deploy, with its own
``ambient.toml`` settings. Speed is reported as the project does everywhere: audio seconds ÷ wall
seconds (× real time, higher is faster), model loading excluded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

from ambient.evaluation.data import EvalItem
from ambient.evaluation.wer import EMPTY, WerScore, WerScorer
from ambient.pipeline import Pipeline

SYNTHETIC_LABEL = "synthetic speech (espeak-ng)"


@dataclass(frozen=True)
class FileResult:
    name: str
    audio_s: float
    wall_s: float
    score: WerScore
    synthetic: bool
    hypothesis: str

    @property
    def x_real_time(self) -> float | None:
        return self.audio_s / self.wall_s if self.wall_s > 0 else None


@dataclass(frozen=True)
class ModelResult:
    model: str
    files: tuple[FileResult, ...]

    @property
    def total(self) -> WerScore:
        return reduce(lambda a, b: a + b, (f.score for f in self.files), EMPTY)

    @property
    def audio_s(self) -> float:
        return sum(f.audio_s for f in self.files)

    @property
    def wall_s(self) -> float:
        return sum(f.wall_s for f in self.files)

    @property
    def x_real_time(self) -> float | None:
        return self.audio_s / self.wall_s if self.wall_s > 0 else None


def speech_label(synthetic: Iterable[bool]) -> str:
    flags = set(synthetic)
    if flags == {True}:
        return SYNTHETIC_LABEL
    return "mixed: real and " + SYNTHETIC_LABEL if True in flags else "recorded speech"


def evaluate_asr(
    items: Sequence[EvalItem],
    pipeline: Pipeline,
    scorer: WerScorer,
    progress: Callable[[str], None] | None = None,
) -> ModelResult:
    """Transcribe and score every item with one loaded model."""
    _ = pipeline.transcriber  # load (and sha256-check) the model before any clock starts
    files = []
    for item in items:
        started = time.perf_counter()
        transcript = pipeline.transcribe_audio(item.audio)
        wall = time.perf_counter() - started
        hypothesis = transcript.text
        files.append(
            FileResult(
                item.name,
                transcript.header.duration_s,
                wall,
                scorer.score(item.reference.text, hypothesis),
                item.reference.synthetic,
                hypothesis,
            )
        )
        if progress:
            progress(item.name)
    return ModelResult(pipeline.transcriber.model.name, tuple(files))


def _r(x: float | None, digits: int = 2) -> float | None:
    return None if x is None else round(x, digits)


def results_json(results: Sequence[ModelResult], data: str) -> dict[str, Any]:
    """Everything a machine needs: per model, per file and total, with the speech kind labelled."""
    return {
        "data": data,
        "speech": speech_label(f.synthetic for r in results for f in r.files),
        "x_real_time": "audio seconds ÷ wall seconds (higher is faster), model loading excluded",
        "wer": "medwer protocol (Whisper English normaliser, numbers folded); wer_ok_equals_okay counts "
        "'OK' and 'okay' as one word",
        "models": [
            {
                "model": r.model,
                "total": {
                    **r.total.as_dict(),
                    "files": len(r.files),
                    "audio_s": round(r.audio_s, 2),
                    "wall_s": round(r.wall_s, 2),
                    "x_real_time": _r(r.x_real_time),
                },
                "files": [
                    {
                        "name": f.name,
                        **f.score.as_dict(),
                        "audio_s": round(f.audio_s, 2),
                        "wall_s": round(f.wall_s, 3),
                        "x_real_time": _r(f.x_real_time),
                        "synthetic": f.synthetic,
                    }
                    for f in r.files
                ],
            }
            for r in results
        ],
    }
