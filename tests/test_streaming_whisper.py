"""The streaming core with the real parts: Silero VAD and tiny.en on espeak-rendered speech."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ambient.audio.decode import iter_blocks
from ambient.streaming.core import StreamingOptions, StreamingRecognizer
from ambient.streaming.events import CommittedWords, PartialText
from ambient.streaming.vad import FRAME_SAMPLES, SileroScorer
from ambient.streaming.whisper import WhisperProducer

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def producer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WhisperProducer]:
    yield WhisperProducer.load("tiny.en", tmp_path_factory.mktemp("model-cache"))


def _audio(path: Path) -> np.ndarray:  # type: ignore[type-arg]
    return np.concatenate([b.samples for b in iter_blocks(path, 30.0)])


def test_silero_scores_a_stream_as_it_scores_the_whole(speech_wav: Path) -> None:
    audio = _audio(speech_wav)
    audio = audio[: len(audio) - len(audio) % FRAME_SAMPLES]
    whole = SileroScorer().score(audio)
    streamed = SileroScorer()
    step = 7 * FRAME_SAMPLES
    parts = [streamed.score(audio[i : i + step]) for i in range(0, len(audio), step)]
    assert np.allclose(np.concatenate(parts), whole, atol=1e-4)
    speech = whole > 0.5
    assert 0.3 < speech.mean() < 0.98  # the clip has speech and pauses between turns


def test_streaming_tiny_en_commits_the_clinical_words(producer: WhisperProducer, speech_wav: Path) -> None:
    audio = _audio(speech_wav)
    duration_s = len(audio) / 16000
    core = StreamingRecognizer(producer, StreamingOptions(min_chunk_s=0.5), SileroScorer())
    events = []
    for i in range(0, len(audio), 1600):  # 100 ms, as a microphone delivers it
        events += core.feed(audio[i : i + 1600])
    events += core.flush()
    words = [w for e in events if isinstance(e, CommittedWords) for w in e.words]
    text = " ".join(w.word for w in words).lower()
    # Either spelling of a number: Whisper writes "two days" or "2 days" (which one differs between
    # CPUs' int8 kernels: an AMD EPYC host gave "2 days" where the Intel hosts gave "two days").
    for keys in (("brings you",), ("two days", "2 days"), ("milligrams",), ("blood pressure",), ("150",),
                 ("90",), ("one week", "1 week")):  # fmt: skip
        assert any(key in text for key in keys), f"{keys!r} missing from {text!r}"
    previous_end = 0.0
    for w in words:
        assert previous_end <= w.start_s <= w.end_s <= duration_s + 1e-6
        assert 0.0 <= w.probability <= 1.0
        previous_end = w.end_s
    assert any(isinstance(e, PartialText) and e.text for e in events)
    # words were committed while the clip went on, not all at the end
    committed_events = [e for e in events if isinstance(e, CommittedWords)]
    assert len(committed_events) >= 5
    assert core.stats.speech_s < duration_s  # pauses between turns were not decoded


def test_an_unknown_encoder_window_is_refused() -> None:
    from ambient.streaming.whisper import WhisperStreamOptions

    assert WhisperStreamOptions(window="adaptive").window == "adaptive"
    with pytest.raises(ValueError, match="window must be one of short, full, adaptive, spliced"):
        WhisperStreamOptions(window="wide")


def test_spliced_window_is_the_short_encoding_then_the_padding_encoding(
    tmp_path_factory: pytest.TempPathFactory, speech_wav: Path
) -> None:
    """The spliced window gives the decoder all 1500 encoder positions, as the full window does:
    the buffer's own (encoded over buffer + padding) and, after them, the positions of a window
    of pure padding, encoded once. A short window hands the decoder only its own few hundred."""
    from ambient.streaming.whisper import WhisperStreamOptions

    options = WhisperStreamOptions(window="spliced", encoder_pad_s=1.0, min_window_s=5.0)
    spliced = WhisperProducer.load("tiny.en", tmp_path_factory.mktemp("cache"), options)
    model = spliced._model  # the encoder is what this test is about
    audio = _audio(speech_wav)[: 16000 * 3]
    features = np.zeros((1, 80, 3000), dtype=np.float32)
    mel = model.feature_extractor(audio)[..., :-1]
    features[0, :, : mel.shape[-1]] = mel
    model.encode_frames = 500  # 5 s: the minimum window for 3 s of audio
    model.splice = True
    out = np.array(model.encode(features))
    model.splice = False
    short = np.array(model.encode(features))
    assert short.shape == (1, 250, 384)
    assert out.shape == (1, 1500, 384)
    assert np.array_equal(out[:, :250], short)
    model.encode_frames = None
    padding = np.array(model.encode(np.zeros((1, 80, 3000), dtype=np.float32)))
    assert np.array_equal(out[:, 250:], padding[:, 250:])
    # and the decoder reads it: the doctor's first question, inside the 3 s it was given
    hypothesis = spliced.hypothesise(audio, "")
    assert "brings you" in " ".join(w.word for w in hypothesis.words).lower()
    assert hypothesis.words[-1].end_s <= 3.0 + 1e-6


def test_a_short_tail_after_the_last_word_is_not_decoded_again(
    producer: WhisperProducer, tmp_path_factory: pytest.TempPathFactory, speech_wav: Path
) -> None:
    """faster-whisper decodes the audio after a window's last word as one more window; with a
    prompt, a streaming buffer usually ends that way. Under ``min_tail_s`` that window is not
    decoded, and the words are the same as when it is."""
    from ambient.streaming.whisper import WhisperStreamOptions

    assert producer.options.min_tail_s == 0.5
    every_tail = WhisperProducer.load(
        "tiny.en", tmp_path_factory.mktemp("cache"), WhisperStreamOptions(window="spliced", min_tail_s=0.0)
    )
    skipping = WhisperProducer.load(
        "tiny.en", tmp_path_factory.mktemp("cache"), WhisperStreamOptions(window="spliced", min_tail_s=0.5)
    )
    audio = _audio(speech_wav)
    prompt = "Hello, doctor. Good morning."
    for end_s in (10.0, 11.5, 12.0, 12.5, 13.0, 14.0):
        buffer = audio[: int(end_s * 16000)]
        kept = skipping.hypothesise(buffer, prompt)
        assert kept == every_tail.hypothesise(buffer, prompt), end_s
    assert every_tail.tails_skipped == 0
    assert skipping.tails_skipped >= 1


class _WindowLoop:
    """faster-whisper's window loop reduced to what ``min_tail_s`` sees: each window is encoded,
    then decoded, and the next one starts where its last segment ended."""

    feature_extractor = SimpleNamespace(time_per_frame=0.01)

    def __init__(self, heard_until_s: list[float]) -> None:
        self.heard_until_s = heard_until_s
        self.encoded: list[float] = []
        self.decoded: list[float] = []
        self.at_s = 0.0

    def encode(self, features: object) -> object:
        self.encoded.append(self.at_s)
        return features

    def generate_with_fallback(self, encoding: object) -> object:
        self.decoded.append(self.at_s)
        return encoding

    def generate_segments(self, features: np.ndarray) -> Iterator[SimpleNamespace]:  # type: ignore[type-arg]
        from ambient.streaming.whisper import _NOTHING_HEARD

        content_s = (features.shape[-1] - 1) * 0.01
        self.at_s = 0.0
        for end_s in self.heard_until_s:
            if self.at_s >= content_s or self.generate_with_fallback(self.encode(features)) is _NOTHING_HEARD:
                return
            yield SimpleNamespace(end=end_s)
            self.at_s = end_s


@pytest.mark.parametrize(
    ("heard_until_s", "decoded", "skipped"),
    [
        ([9.7, 10.0], [0.0], 1),  # 0.3 s after the last word: not decoded (nor encoded)
        ([8.0, 10.0], [0.0, 8.0], 0),  # 2 s: Whisper stopped short, and the rest is decoded
        ([4.0, 9.8, 10.0], [0.0, 4.0], 1),  # and after that window, 0.2 s is not
    ],
)
def test_only_a_tail_long_enough_to_hold_a_word_is_decoded(
    heard_until_s: list[float], decoded: list[float], skipped: int
) -> None:
    from ambient.streaming.whisper import _streaming_model

    model = _streaming_model(_WindowLoop)(heard_until_s)
    model.min_tail_s = 0.5
    features = np.zeros((1, 80, 1001), dtype=np.float32)  # 10 s
    segments = list(model.generate_segments(features))
    assert model.decoded == decoded
    assert model.encoded == decoded
    assert [s.end for s in segments] == heard_until_s[: len(decoded)]
    assert model.tails_skipped == skipped
    assert model._windows == 0  # back to no transcription: a later encode() is a plain one
