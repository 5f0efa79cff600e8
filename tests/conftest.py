"""Shared fixtures: an isolated AMBIENT_HOME, audio encoders, espeak speech, one loaded model."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ambient.config import Settings, load_settings, resolve_paths
from ambient.nlp.findings import ClinicalNLP
from ambient.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# A short visit, spoken by two espeak-ng voices; small enough to transcribe in a few seconds.
SHORT_DIALOGUE = """\
[doctor] What brings you in today?
[patient] I have chest pain for two days.
[patient] I take metformin 500 milligrams twice a day.
[doctor] Your blood pressure is 150 over 90.
[doctor] I will order an ECG and see you in one week.
"""


@pytest.fixture(autouse=True)
def ambient_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own state root: no test reads or writes the developer's real one."""
    home = tmp_path_factory.mktemp("ambient-home")
    monkeypatch.setenv("AMBIENT_HOME", str(home))
    for name in list(__import__("os").environ):
        if name.startswith("AMBIENT_") and name not in {"AMBIENT_HOME", "AMBIENT_RELIABILITY_LOG"}:
            monkeypatch.delenv(name)
    return home


def espeak_available() -> bool:
    """Synthetic speech needs both: espeak-ng speaks, sox resamples to 16 kHz."""
    return shutil.which("espeak-ng") is not None and shutil.which("sox") is not None


needs_espeak = pytest.mark.skipif(
    not espeak_available(), reason="espeak-ng or sox is not installed (apt-get install espeak-ng sox)"
)


@pytest.fixture(scope="session")
def nlp() -> ClinicalNLP:
    """The clinical pipeline, built once per test process (vocabularies and matchers take seconds)."""
    from ambient.notes.clinical import clinical_nlp

    return clinical_nlp()


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short rendered two-voice encounter (wav + reference JSON), made once per session."""
    if not espeak_available():
        pytest.skip("espeak-ng or sox is not installed (apt-get install espeak-ng sox)")
    from ambient.audio.synth import render_dialogue
    from ambient.transcript.dialogue import parse_dialogue

    folder = tmp_path_factory.mktemp("speech")
    render_dialogue(parse_dialogue(SHORT_DIALOGUE), folder, "short-visit")
    return folder


@pytest.fixture(scope="session")
def speech_wav(speech_dir: Path) -> Path:
    return speech_dir / "short-visit.wav"


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """The real packaged tiny.en model, loaded once for every test that needs it."""
    home = tmp_path_factory.mktemp("pipeline-home")
    paths = resolve_paths({"AMBIENT_HOME": str(home)})
    settings: Settings = load_settings(paths, env={"AMBIENT_HOME": str(home)})
    pipeline = Pipeline(settings, paths)
    _ = pipeline.transcriber
    yield pipeline
