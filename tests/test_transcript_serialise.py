"""Transcript file formats: exact JSON round trip, precise errors, subtitle and text views."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from ambient.errors import TranscriptFormatError, UsageError
from ambient.transcript import serialise as ser
from ambient.transcript.serialise import (
    format_timestamp,
    load_transcript_file,
    render,
    to_srt,
    to_text,
    to_vtt,
    transcript_from_json,
    transcript_from_turns,
    transcript_sha256,
    transcript_to_json,
)
from ambient.types import (
    DecodingOptions,
    ModelRef,
    Segment,
    Transcript,
    TranscriptHeader,
    Word,
)


def _header(**overrides: Any) -> TranscriptHeader:
    fields: dict[str, Any] = {
        "encounter_id": "enc-001",
        "source_path": "visit.wav",
        "source_sha256": "ab" * 32,
        "source_kind": "audio",
        "duration_s": 3725.5,
        "language": "en",
        "model": ModelRef("whisper-small.en", "1", "cd" * 32, "Systran/faster-whisper-small.en"),
        "decoding": DecodingOptions(clinical_prompt=True, prompt_sha256="ef" * 32),
        "pipeline_version": "0.1.0",
    }
    fields.update(overrides)
    return TranscriptHeader(**fields)


def _transcript(segments: tuple[Segment, ...] | None = None, **header: Any) -> Transcript:
    if segments is None:
        segments = (
            Segment(
                1,
                0.0,
                2.5,
                "Good morning, what brings you in?",
                words=(Word("Good", 0.0, 0.31, 0.98), Word("morning,", 0.31, 0.9, 0.9512)),
                speaker="clinician",
            ),
            Segment(2, 2.7, 5.125, "Chest pain since Tuesday — café stairs.", speaker="patient"),
            Segment(3, 3700.0, 3725.5, "Any allergies?", speaker="clinician"),
        )
    return Transcript(_header(**header), segments)


def _data() -> dict[str, Any]:
    return transcript_to_json(_transcript())


# --- JSON round trip ---------------------------------------------------------------------------


def test_json_round_trip_is_exact_through_text() -> None:
    t = _transcript()
    data = json.loads(render(t, "json"))
    assert data["format"] == "ambient.transcript.v1"
    assert transcript_from_json(data, "x.json") == t


def test_json_round_trip_without_model_or_decoding() -> None:
    t = _transcript(model=None, decoding=None, language=None)
    assert transcript_from_json(transcript_to_json(t), "x.json") == t


def test_every_model_and_decoding_field_type_is_readable() -> None:
    for f in (*dataclasses.fields(ModelRef), *dataclasses.fields(DecodingOptions)):
        assert str(f.type) in ser._FIELD_READERS, f.name


def test_render_json_is_pretty_and_keeps_non_ascii() -> None:
    out = render(_transcript(), "json")
    assert out.startswith('{\n  "format"') and out.endswith("}\n")
    assert "café" in out


def test_load_transcript_file(tmp_path: Path) -> None:
    t = _transcript()
    path = tmp_path / "t.json"
    path.write_text(render(t, "json"), encoding="utf-8")
    assert load_transcript_file(path) == t


# --- Malformed input -----------------------------------------------------------------------------


def _broken(mutate: Any) -> str:
    data = copy.deepcopy(_data())
    mutate(data)
    with pytest.raises(TranscriptFormatError) as info:
        transcript_from_json(data, "bad.json")
    return str(info.value)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["segments"][2].update(start_s="3700"),
            "segments[2].start_s: expected a number, got a string",
        ),
        (
            lambda d: d["segments"][0]["words"][1].pop("probability"),
            "segments[0].words[1].probability: missing",
        ),
        (lambda d: d["segments"][1].update(id=True), "segments[1].id: expected an integer"),
        (lambda d: d["segments"][1].update(id=2.0), "segments[1].id: expected an integer"),
        (lambda d: d["segments"][1].update(end_s=-1), "segments[1].end_s: expected a time"),
        (
            lambda d: d["segments"][1].update(end_s=float("nan")),
            "segments[1].end_s: expected a finite number",
        ),
        (
            lambda d: d["segments"][1].update(speaker=7),
            "segments[1].speaker: expected a string or null, got a number",
        ),
        (lambda d: d["segments"][1].update(words=None), "segments[1].words: expected an array, got null"),
        (lambda d: d.update(segments={}), "segments: expected an array, got an object"),
        (lambda d: d["segments"].append("hello"), "segments[3]: expected an object, got a string"),
        (lambda d: d.pop("header"), "header: missing"),
        (lambda d: d["header"].pop("duration_s"), "header.duration_s: missing"),
        (
            lambda d: d["header"]["model"].update(sha256=None),
            "header.model.sha256: expected a string, got null",
        ),
        (
            lambda d: d["header"]["decoding"].update(beam_size="5"),
            "header.decoding.beam_size: expected an integer",
        ),
        (
            lambda d: d["header"]["decoding"].update(vad_filter=1),
            "header.decoding.vad_filter: expected true or false",
        ),
        (lambda d: d.pop("format"), "format: missing; expected 'ambient.transcript.v1'"),
        (lambda d: d.update(format="ambient.transcript.v2"), "format: is 'ambient.transcript.v2'"),
    ],
)
def test_malformed_input_names_source_and_field(mutate: Any, expected: str) -> None:
    message = _broken(mutate)
    assert "bad.json: " in message
    assert expected in message


def test_top_level_must_be_an_object() -> None:
    with pytest.raises(TranscriptFormatError, match="top level: expected an object"):
        transcript_from_json([], "bad.json")  # type: ignore[arg-type]


def test_load_rejects_bad_files(tmp_path: Path) -> None:
    cases = {
        "missing.json": None,
        "latin1.json": "caf\xe9".encode("latin-1"),
        "broken.json": b'{"format": ',
        "dialogue.txt": b"Clinician: hello\nPatient: hi\n",
        "other.json": b'{"segments": []}',
        "list.json": b"[]",
    }
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(TranscriptFormatError) as info:
            load_transcript_file(path)
        assert str(path) in str(info.value), name


# --- Hashing -------------------------------------------------------------------------------------


def test_sha256_is_stable_across_key_order_and_layout() -> None:
    t = _transcript()
    data = _data()
    reordered = {k: data[k] for k in reversed(list(data))}
    reordered["header"] = {k: data["header"][k] for k in reversed(list(data["header"]))}
    assert list(reordered) != list(data)
    again = transcript_from_json(reordered, "r.json")
    assert transcript_sha256(again) == transcript_sha256(t)
    canonical = json.dumps(reordered, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert transcript_sha256(t) == hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_sha256_changes_with_content() -> None:
    t = _transcript()
    seg = dataclasses.replace(t.segments[0], text="Good afternoon")
    changed = dataclasses.replace(t, segments=(seg, *t.segments[1:]))
    assert transcript_sha256(changed) != transcript_sha256(t)


# --- Timestamps, VTT, SRT ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "vtt"),
    [
        (0.0, "00:00:00.000"),
        (1.0005, "00:00:01.001"),
        (1.0004, "00:00:01.000"),
        (59.9996, "00:01:00.000"),
        (3599.9995, "01:00:00.000"),
        (3725.5, "01:02:05.500"),
        (10_800.123, "03:00:00.123"),
        (-0.2, "00:00:00.000"),
    ],
)
def test_format_timestamp(seconds: float, vtt: str) -> None:
    assert format_timestamp(seconds) == vtt
    assert format_timestamp(seconds, ",") == vtt[:8] + "," + vtt[9:]


def test_vtt() -> None:
    segments = (
        Segment(1, 0.0, 2.5, "Good morning."),
        Segment(2, 2.5, 3.0, "   "),
        Segment(3, 3700.0, 3725.5, "Is it <worse>\n\nat night & --> day?", speaker="patient"),
    )
    assert to_vtt(_transcript(segments)) == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:02.500\nGood morning.\n\n"
        "01:01:40.000 --> 01:02:05.500\n"
        "<v Patient>Is it &lt;worse&gt; at night &amp; --&gt; day?\n"
    )


def test_srt() -> None:
    out = to_srt(_transcript())
    assert out.startswith(
        "1\n00:00:00,000 --> 00:00:02,500\nClinician: Good morning, what brings you in?\n\n2\n"
    )
    assert "3\n01:01:40,000 --> 01:02:05,500\nClinician: Any allergies?\n" in out
    assert render(_transcript(), "srt") == out


def test_srt_numbers_only_spoken_cues() -> None:
    segments = (Segment(1, 0, 1, ""), Segment(2, 1, 2, "Hello."))
    assert to_srt(_transcript(segments)) == "1\n00:00:01,000 --> 00:00:02,000\nHello.\n"


# --- Text ----------------------------------------------------------------------------------------


def test_text_merges_consecutive_turns_of_one_speaker() -> None:
    segments = (
        Segment(1, 0, 1, "Hello.", speaker="clinician"),
        Segment(2, 1, 2, "How are you?", speaker="clinician"),
        Segment(3, 2, 3, " ", speaker="patient"),
        Segment(4, 3, 4, "Then more.", speaker="clinician"),
        Segment(5, 4, 5, "Not great.", speaker="patient"),
        Segment(6, 5, 6, "Unattributed."),
        Segment(7, 6, 7, "Also unattributed."),
        Segment(8, 7, 8, "Okay.", speaker="clinician"),
    )
    assert to_text(_transcript(segments)) == (
        "Clinician: Hello. How are you? Then more.\n"
        "Patient: Not great.\n"
        "Unattributed.\n"
        "Also unattributed.\n"
        "Clinician: Okay.\n"
    )


def test_text_without_speakers_is_one_line_per_segment() -> None:
    segments = (Segment(1, 0, 1, "One.\nstill one."), Segment(2, 1, 2, "Two."))
    assert render(_transcript(segments), "text") == "One. still one.\nTwo.\n"


def test_empty_transcript() -> None:
    for segments in ((), (Segment(1, 0, 1, "  "),)):
        t = _transcript(segments, duration_s=0.0)
        assert to_text(t) == ""
        assert to_srt(t) == ""
        assert to_vtt(t) == "WEBVTT\n"
        assert transcript_from_json(json.loads(render(t, "json")), "e.json") == t


def test_unknown_format_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="'docx'"):
        render(_transcript(), "docx")


# --- Dialogue turns ------------------------------------------------------------------------------


def test_transcript_from_turns() -> None:
    turns = [
        ("clinician", "What brings you in today?"),
        ("patient", ""),
        ("patient", "  My knee hurts when I climb stairs.  "),
        ("clinician", "Since when?"),
    ] * 200
    t = transcript_from_turns(
        turns, source_path="d.txt", source_sha256="00" * 32, encounter_id="e", pipeline_version="v"
    )
    h = t.header
    assert (h.source_kind, h.language, h.model, h.decoding) == ("dialogue-text", "en", None, None)
    assert [s.id for s in t.segments] == list(range(1, len(turns) + 1))
    assert [s.speaker for s in t.segments[:4]] == ["clinician", "patient", "patient", "clinician"]
    assert t.segments[2].text == "My knee hurts when I climb stairs."
    assert (t.segments[0].start_s, t.segments[0].end_s) == (0.0, 2.0)
    for prev, cur in zip(t.segments, t.segments[1:], strict=False):
        assert prev.start_s < prev.end_s == cur.start_s < cur.end_s
    assert h.duration_s == t.segments[-1].end_s == 200 * (5 + 1 + 7 + 2) * 0.4
    assert transcript_from_json(transcript_to_json(t), "d.json") == t


def test_transcript_from_no_turns() -> None:
    t = transcript_from_turns(
        [], source_path="d.txt", source_sha256="", encounter_id="e", pipeline_version="v"
    )
    assert t.segments == () and t.header.duration_s == 0.0 and to_text(t) == ""
