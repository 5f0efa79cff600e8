"""Templates load through one validated path; the drafter files sentences with their evidence."""

from __future__ import annotations

from pathlib import Path

import pytest

from ambient.errors import TemplateError, UnknownTemplateError
from ambient.notes.drafter import NO_SPEECH_NOTICE, clean_sentence, draft_note, split_sentences
from ambient.notes.render import note_sha256, note_to_json, note_to_markdown
from ambient.notes.templates import Template, available_templates, load_template
from ambient.types import Segment, Transcript, TranscriptHeader, Word


def make_transcript(segments: list[Segment]) -> Transcript:
    header = TranscriptHeader(
        encounter_id="enc-test",
        source_path="x.wav",
        source_sha256="ab" * 32,
        source_kind="audio",
        duration_s=segments[-1].end_s if segments else 0.0,
        language="en",
        model=None,
        decoding=None,
        pipeline_version="test",
    )
    return Transcript(header, tuple(segments))


def seg(i: int, start: float, text: str, speaker: str | None = None) -> Segment:
    """A segment whose words are spread evenly, as faster-whisper would time them."""
    parts = text.split()
    step = 0.3
    words = tuple(Word(p, start + k * step, start + (k + 1) * step, 0.9) for k, p in enumerate(parts))
    return Segment(i, start, start + step * len(parts), text, words, speaker)


CUE_TEMPLATE = Path(__file__).parent / "data" / "cue_soap.toml"


def cue_template() -> Template:
    """A cue-only template: what a site's older template looks like; drafted by the cue drafter."""
    return load_template(str(CUE_TEMPLATE))


def test_builtin_soap_template() -> None:
    template = load_template("soap")
    assert [s.key for s in template.sections] == ["subjective", "objective", "assessment", "plan"]
    assert template.loinc == "11506-3"
    assert len(template.sha256) == 64
    assert load_template("ambient.soap_note").sha256 == template.sha256
    assert "soap" in {t.name for t in available_templates()}


def test_unknown_template_names_the_choices() -> None:
    with pytest.raises(UnknownTemplateError, match=r"available: .*soap"):
        load_template("nope")


def test_user_template_folder_overrides(tmp_path: Path) -> None:
    (tmp_path / "brief.toml").write_text(
        'id = "site.brief"\nname = "brief"\nversion = "0.1.0"\ntitle = "Brief note"\n'
        '[[sections]]\nkey = "all"\ntitle = "Everything"\ncues = ["pain"]\nfallback = true\n'
    )
    template = load_template("brief", tmp_path)
    assert template.title == "Brief note"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('id="a"\nname="a"\nversion="1.0.0"\ntitle="A"\nsections=[]\n', "at least one"),
        (
            'id="a"\nname="a"\nversion="1"\ntitle="A"\n[[sections]]\nkey="s"\ntitle="S"\ncues=["x"]\n',
            "version",
        ),
        (
            'id="a"\nname="a"\nversion="1.0.0"\ntitle="A"\n[[sections]]\nkey="s"\ncues=["x"]\n',
            "missing field 'title'",
        ),
        (
            'id="a"\nname="a"\nversion="1.0.0"\ntitle="A"\n[[sections]]\nkey="s"\ntitle="S"\ncues=["x"]\n'
            'speaker="nurse"\n',
            "speaker",
        ),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_templates(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(TemplateError, match=message):
        load_template(str(path))


def test_sentences_cross_segment_boundaries_and_keep_evidence() -> None:
    transcript = make_transcript(
        [seg(1, 0.0, "I have had chest"), seg(2, 1.3, "pain for two days. It is sharp.")]
    )
    sentences = split_sentences(transcript)
    assert [s.text for s in sentences] == ["I have had chest pain for two days.", "It is sharp."]
    first = sentences[0].evidence
    assert [e.segment_id for e in first] == [1, 2]
    assert first[0].start_s == 0.0 and first[-1].end_s == pytest.approx(1.3 + 4 * 0.3)  # "pain for two days."


def test_speaker_change_ends_a_sentence() -> None:
    transcript = make_transcript(
        [
            seg(1, 0.0, "Any allergies", "clinician"),
            seg(2, 1.0, "penicillin gives me a rash", "patient"),
        ]
    )
    assert [s.speaker for s in split_sentences(transcript)] == ["clinician", "patient"]


def test_sections_of_a_short_visit() -> None:
    transcript = make_transcript(
        [
            seg(1, 0.0, "Hello, how are you today?"),
            seg(2, 2.0, "I have had chest pain for two days and it gets worse when I climb stairs."),
            seg(3, 8.0, "Your blood pressure is 150 over 90 and your lungs are clear."),
            seg(4, 12.0, "I think this could be angina."),
            seg(5, 14.0, "I'll order an ECG and we will start aspirin 81 milligrams daily."),
            seg(6, 18.0, "Okay."),
        ]
    )
    note = draft_note(transcript, cue_template(), "cd" * 32)
    by_key = {s.key: [x.text for x in s.sentences] for s in note.sections}
    assert by_key["subjective"] == [
        "I have had chest pain for two days and it gets worse when I climb stairs."
    ]
    assert by_key["objective"] == ["Your blood pressure is 150 over 90 and your lungs are clear."]
    assert by_key["assessment"] == ["I think this could be angina."]
    assert by_key["plan"] == ["I'll order an ECG and we will start aspirin 81 milligrams daily."]
    plan = next(s for s in note.sections if s.key == "plan").sentences[0]
    assert plan.evidence[0].segment_id == 5 and plan.evidence[0].start_s == 14.0
    assert note.provenance.template.id == "test.cue_soap_note"
    assert note.provenance.transcript_sha256 == "cd" * 32


def test_every_note_sentence_is_transcript_text() -> None:
    """The first drafter invents nothing: each sentence is (a cleaned) span of the transcript."""
    transcript = make_transcript(
        [
            seg(1, 0.0, "Okay so I have been coughing for a week."),
            seg(2, 4.0, "Your temperature is 38.2 degrees."),
        ]
    )
    note = draft_note(transcript, cue_template(), "0" * 64)
    for section in note.sections:
        for sentence in section.sentences:
            assert sentence.text.lower() in transcript.text.lower()


def test_no_speech_gives_a_notice_and_empty_sections() -> None:
    note = draft_note(make_transcript([]), cue_template(), "0" * 64)
    assert note.notices == (NO_SPEECH_NOTICE,)
    assert all(not s.sentences for s in note.sections)
    assert "No speech was detected" in note_to_markdown(note)


def test_clean_sentence_drops_fillers_only() -> None:
    assert clean_sentence("okay, so um I take metformin.") == "I take metformin."
    assert clean_sentence("No chest pain.") == "No chest pain."
    assert clean_sentence(", so , i have had a cough.") == "I have had a cough."
    assert clean_sentence("Andrew has a cough.") == "Andrew has a cough."


def test_render_json_and_markdown() -> None:
    transcript = make_transcript([seg(1, 65.0, "I have had a headache for three days.")])
    note = draft_note(transcript, cue_template(), "0" * 64)
    body = note_to_json(note)
    assert body["format"] == "ambient.note.v1"
    first = body["sections"][0]["sentences"][0]
    assert first["evidence"][0]["segment_id"] == 1
    assert "01:05" in note_to_markdown(note)
    assert len(note_sha256(note)) == 64
