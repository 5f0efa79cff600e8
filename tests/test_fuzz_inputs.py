"""Bad files fuzzed with hypothesis: audio, transcript JSON, dialogue text, templates.

Each property feeds what a clinician or an integrator could hand to ``ambient`` (a corrupt or
crafted recording, a hand-edited transcript, a pasted dialogue, a site template) through the same
functions the commands call, and accepts exactly two outcomes: a handled result, or an
:class:`~ambient.errors.AmbientError` whose message names the file. Any other exception is a crash
and fails the property. Runs are derandomised (the same examples in CI every time) and small
enough for a couple of minutes on two cores; the reliability report counts the examples.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ambient.audio.decode import SAMPLE_RATE_HZ, iter_blocks, probe
from ambient.config import load_settings, resolve_paths
from ambient.errors import AmbientError, TemplateError
from ambient.notes.render import note_to_json, note_to_markdown
from ambient.notes.templates import parse_template
from ambient.pipeline import Pipeline
from ambient.resources import data_dir
from ambient.transcript.serialise import transcript_to_json
from tests.ehr_peers import DIALOGUE
from tests.reliability import record

pytestmark = pytest.mark.reliability

REPO = Path(__file__).resolve().parents[1]
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Tally:
    """Counts examples and the handled outcomes, so a run can say what it tried."""

    def __init__(self) -> None:
        self.examples = 0
        self.outcomes: dict[str, int] = {}

    def saw(self, outcome: str) -> None:
        self.examples += 1
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def detail(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))


def handled(tally: Tally, action: Callable[[], object], names: Path) -> object | None:
    """Run ``action``; an AmbientError must name the file, anything else is a crash (re-raised)."""
    try:
        result = action()
    except AmbientError as exc:
        assert str(names) in str(exc), f"the error does not name {names}: {exc}"
        tally.saw(type(exc).__name__)
        return None
    tally.saw("ok")
    return result


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-inputs")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """The product pipeline (NLP and drafter loaded once); no speech model unless a test asks."""
    home = tmp_path_factory.mktemp("fuzz-home")
    paths = resolve_paths({"AMBIENT_HOME": str(home)})
    yield Pipeline(load_settings(paths, env={"AMBIENT_HOME": str(home)}), paths)


# ---- audio ---------------------------------------------------------------------------------------


def wav_bytes(
    *,
    fmt: int,
    channels: int,
    rate: int,
    bits: int,
    payload: bytes,
    data_size: int | None,
    byte_rate: int | None,
    cut: int | None,
    extra_chunk: bytes,
) -> bytes:
    """A RIFF/WAVE file built field by field, so every header value can be absurd on purpose."""
    align = (channels * bits // 8) & 0xFFFF
    rate_bytes = (rate * align if byte_rate is None else byte_rate) & 0xFFFFFFFF
    fmt_chunk = struct.pack("<HHIIHH", fmt, channels, rate, rate_bytes, align, bits)
    size = len(payload) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk + extra_chunk
    body += b"data" + struct.pack("<I", size) + payload
    whole = b"RIFF" + struct.pack("<I", len(body)) + body
    return whole if cut is None else whole[:cut]


u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
crafted_wav = st.builds(
    wav_bytes,
    fmt=st.sampled_from([1, 3, 6, 7, 0x11, 0xFFFE, 0]) | u16,
    channels=st.sampled_from([0, 1, 2, 8, 255, 65535]) | u16,
    rate=st.sampled_from([0, 1, 8, 100, 4000, 8000, 16000, 44100, 192000, 0x7FFFFFFF, 0xFFFFFFFF]) | u32,
    bits=st.sampled_from([0, 1, 4, 7, 8, 16, 24, 32, 64, 65535]) | u16,
    payload=st.binary(max_size=6000),
    data_size=st.none() | st.sampled_from([0, 1, 0x7FFFFFFF, 0xFFFFFFFF]) | u32,
    byte_rate=st.none() | u32,
    cut=st.none() | st.integers(0, 60),
    extra_chunk=st.just(b"") | st.binary(max_size=24).map(lambda b: b"LIST" + struct.pack("<I", len(b)) + b),
)
# Headers a real recorder writes, with any payload: the path where decoding succeeds is fuzzed too.
plausible_wav = st.builds(
    wav_bytes,
    fmt=st.just(1),
    channels=st.integers(1, 2),
    rate=st.sampled_from([8000, 16000, 22050, 44100, 48000]),
    bits=st.sampled_from([8, 16, 24, 32]),
    payload=st.binary(min_size=2000, max_size=6000),
    data_size=st.none(),
    byte_rate=st.none(),
    cut=st.none(),
    extra_chunk=st.just(b""),
)
random_file = st.binary(min_size=0, max_size=4000)
AUDIO_TALLY = Tally()
# The longest recording a few KB of input may turn into: a 16 kHz int16 stream is 32 KB/s, and
# FFmpeg's lowest-rate codecs still need ~1 KB/s; past this a tiny file would pin the CPU for minutes.
MAX_S_PER_KB = 1.0


def decode_bounded(path: Path) -> float:
    """What ``ambient transcribe`` does before the model: probe the header, then decode it all."""
    began = time.monotonic()
    probe(path)
    seconds = sum(len(chunk.samples) for chunk in iter_blocks(path, 30.0)) / SAMPLE_RATE_HZ
    assert time.monotonic() - began < 20, "decoding a few KB took more than 20 s"
    size_kb = max(1.0, path.stat().st_size / 1024)
    assert seconds <= 60 + MAX_S_PER_KB * size_kb, f"{size_kb:.0f} KB decoded to {seconds:.0f} s of audio"
    return seconds


@FUZZ
@given(
    data=crafted_wav | plausible_wav | random_file,
    suffix=st.sampled_from([".wav", ".mp3", ".ogg", ".flac", ".m4a", ".bin"]),
)
def test_audio_files_decode_or_fail_clearly(scratch: Path, data: bytes, suffix: str) -> None:
    path = scratch / f"fuzzed{suffix}"
    path.write_bytes(data)
    handled(AUDIO_TALLY, lambda: decode_bounded(path), path)


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=crafted_wav | plausible_wav)
@pytest.mark.model
def test_crafted_wavs_through_the_speech_model(scratch: Path, tiny_pipeline: Pipeline, data: bytes) -> None:
    """What decodes also transcribes (the real tiny.en model) without a crash or a hang."""
    path = scratch / "model.wav"
    path.write_bytes(data)
    began = time.monotonic()
    handled(AUDIO_TALLY, lambda: tiny_pipeline.transcribe_audio(path), path)
    assert time.monotonic() - began < 60


BAD_AUDIO = {
    "random.wav": bytes(range(256)) * 8,
    "one-hertz.wav": wav_bytes(
        fmt=1, channels=1, rate=1, bits=16, payload=b"\x01\x02" * 2000, data_size=None, byte_rate=None,
        cut=None, extra_chunk=b"",
    ),
    "truncated.wav": wav_bytes(
        fmt=1, channels=1, rate=16000, bits=16, payload=b"\x00" * 3200, data_size=16000 * 2 * 60,
        byte_rate=None, cut=None, extra_chunk=b"",
    ),
    "header-only.wav": b"RIFF\x24\x00\x00\x00WAVEfmt ",
    "empty.wav": b"",
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BAD_AUDIO))
def test_ambient_transcribe_refuses_bad_audio_with_exit_3(tmp_path: Path, name: str) -> None:
    """The real command, in a child process: one clear line naming the file, exit code 3."""
    path = tmp_path / name
    path.write_bytes(BAD_AUDIO[name])
    done = subprocess.run(
        [sys.executable, "-m", "ambient", "transcribe", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr and str(path) in done.stderr
    assert done.stderr.startswith("ambient: error: [AMB-E2")


def test_audio_tally_recorded() -> None:
    record("fuzz", "audio files", inputs_fuzzed=AUDIO_TALLY.examples, detail=AUDIO_TALLY.detail())


# ---- transcript JSON and dialogue text (`ambient note`) --------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def valid_transcript_json(pipeline: Pipeline, scratch: Path) -> dict[str, Any]:
    path = scratch / "seed.txt"
    path.write_text(DIALOGUE, encoding="utf-8")
    return transcript_to_json(pipeline.load_input(path, "enc-fuzz"))


@st.composite
def mutated_transcripts(draw: st.DrawFn, seed: dict[str, Any]) -> Any:
    """The valid JSON with a few paths deleted or replaced by values of any JSON type."""
    doc = json.loads(json.dumps(seed))
    for _ in range(draw(st.integers(1, 4))):
        node: Any = doc
        steps = draw(st.integers(1, 4))
        for _ in range(steps):
            if isinstance(node, dict) and node:
                key = draw(st.sampled_from(sorted(node)))
                child = node[key]
                if not isinstance(child, dict | list) or not child or draw(st.booleans()):
                    if draw(st.booleans()):
                        del node[key]
                    else:
                        node[key] = draw(json_values)
                    break
                node = child
            elif isinstance(node, list) and node:
                index = draw(st.integers(0, len(node) - 1))
                child = node[index]
                if not isinstance(child, dict | list) or not child or draw(st.booleans()):
                    node[index] = draw(json_values)
                    break
                node = child
            else:
                break
    return doc


NOTE_TALLY = Tally()


def draft_file(pipeline: Pipeline, path: Path) -> str:
    """What ``ambient note`` does with a file: load, draft, render both formats."""
    note = pipeline.draft(pipeline.load_input(path))
    json.dumps(note_to_json(note))
    return note_to_markdown(note)


@FUZZ
@given(data=st.data())
def test_transcript_json_files_draft_or_fail_clearly(
    pipeline: Pipeline, scratch: Path, data: st.DataObject
) -> None:
    seed = valid_transcript_json(pipeline, scratch)
    doc = data.draw(mutated_transcripts(seed) | json_values)
    path = scratch / "fuzzed.json"
    raw = json.dumps(doc, allow_nan=data.draw(st.booleans()))
    if data.draw(st.booleans(), label="truncate"):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    path.write_text(raw, encoding="utf-8")
    handled(NOTE_TALLY, lambda: draft_file(pipeline, path), path)


labels = st.sampled_from(
    ["[doctor] ", "[patient] ", "D: ", "P: ", "[nurse] ", "[] ", "d; ", "", "[patient_guest] "]
)
line_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80) | st.sampled_from(
    ["chest pain", "metformin 500 mg twice a day", "no no no", "150 over 90", "[", "]"]
)
dialogues = st.lists(st.tuples(labels, line_text), max_size=12).map(
    lambda lines: "\n".join(label + text for label, text in lines)
)


@FUZZ
@given(text=dialogues | st.text(max_size=300), suffix=st.sampled_from([".txt", ".md", ".dialogue"]))
def test_dialogue_text_files_draft_or_fail_clearly(
    pipeline: Pipeline, scratch: Path, text: str, suffix: str
) -> None:
    path = scratch / f"fuzzed{suffix}"
    path.write_text(text, encoding="utf-8")
    handled(NOTE_TALLY, lambda: draft_file(pipeline, path), path)


@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".json", ".txt"]))
def test_undecodable_bytes_are_refused_clearly(
    pipeline: Pipeline, scratch: Path, data: bytes, suffix: str
) -> None:
    path = scratch / f"bytes{suffix}"
    path.write_bytes(data)
    handled(NOTE_TALLY, lambda: draft_file(pipeline, path), path)


def test_ambient_note_on_a_broken_transcript_exits_3(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"format": "ambient.transcript.v1", "header": {}, "segments": [{"start_s": "x"}]}')
    done = subprocess.run(
        [sys.executable, "-m", "ambient", "note", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3 and "Traceback" not in done.stderr and str(path) in done.stderr


def test_note_tally_recorded() -> None:
    record("fuzz", "transcripts and dialogues", inputs_fuzzed=NOTE_TALLY.examples, detail=NOTE_TALLY.detail())


# ---- templates -----------------------------------------------------------------------------------

TEMPLATE_TALLY = Tally()
BUILT_IN = [*sorted(data_dir("clinical_templates").glob("*.toml")), REPO / "tests" / "data" / "cue_soap.toml"]
toml_values = st.sampled_from(
    ['""', "1", "-3.5", "true", "[]", '["x"]', "[1, 2]", "{}", '{a = 1}', '"2.0"', '"1.0.0"',
     '"patient"', '"nurse"', '["hpi", "nonsense"]', '["chief_complaint"]', "1979-05-27", '"\\u0000"',
     '"' + "x" * 300 + '"']
)  # fmt: skip


@st.composite
def mutated_templates(draw: st.DrawFn) -> str:
    """A shipped template with lines dropped, values swapped for any TOML type, or bytes broken."""
    lines = draw(st.sampled_from(BUILT_IN)).read_text(encoding="utf-8").splitlines()
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        at = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["drop", "value", "garble", "dup"]))
        if action == "drop":
            del lines[at]
        elif action == "dup":
            lines.insert(at, lines[at])
        elif action == "value" and "=" in lines[at]:
            key = lines[at].split("=", 1)[0]
            lines[at] = f"{key}= {draw(toml_values)}"
        else:
            cut = draw(st.integers(0, len(lines[at])))
            lines[at] = lines[at][:cut] + draw(st.sampled_from(["[[", "]", '"', "= =", "{", "\\", "{{ x }}"]))
    return "\n".join(lines) + "\n"


@FUZZ
@example(
    text=(data_dir("clinical_templates") / "soap.toml")
    .read_text(encoding="utf-8")
    .replace('loinc = "11506-3"', "loinc = 1")
)
@given(text=mutated_templates())
def test_templates_load_or_name_the_file(pipeline: Pipeline, scratch: Path, text: str) -> None:
    path = scratch / "site_template.toml"
    path.write_text(text, encoding="utf-8")
    try:
        template = parse_template(path)
    except TemplateError as exc:
        assert str(path) in str(exc)
        TEMPLATE_TALLY.saw("TemplateError")
        return
    assert template.path == path and template.sections
    assert re.fullmatch(r"\d+\.\d+\.\d+", template.version)
    assert template.loinc is None or isinstance(template.loinc, str)
    TEMPLATE_TALLY.saw("ok")


@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(text=mutated_templates())
def test_a_template_that_loads_also_drafts(pipeline: Pipeline, scratch: Path, text: str) -> None:
    """A template that passed validation must not crash the drafter later."""
    path = scratch / "drafting_template.toml"
    path.write_text(text, encoding="utf-8")
    try:
        template = parse_template(path)
    except TemplateError:
        return
    dialogue = scratch / "template-visit.txt"
    dialogue.write_text(DIALOGUE, encoding="utf-8")
    pipeline._template = template  # the template a site would name in [notes] template
    try:
        handled(TEMPLATE_TALLY, lambda: draft_file(pipeline, dialogue), path)
    finally:
        pipeline._template = None


def test_template_error_from_the_command_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('id = "x"\nname = "x"\n[[sections]\n', encoding="utf-8")
    visit = tmp_path / "visit.txt"
    visit.write_text(DIALOGUE, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "ambient", "note", str(visit), "--template", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 5 and str(path) in done.stderr and "Traceback" not in done.stderr


def test_template_tally_recorded() -> None:
    record("fuzz", "templates", inputs_fuzzed=TEMPLATE_TALLY.examples, detail=TEMPLATE_TALLY.detail())
