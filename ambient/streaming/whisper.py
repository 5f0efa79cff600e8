"""The real hypothesis producer: one faster-whisper model, loaded once, decoding a buffer.

The model is resolved through :mod:`ambient.asr.models` exactly as the batch path does (packaged
manifests, sha256 of every file checked on load, int8 on CPU), so a live encounter and a
recorded one name the same :class:`~ambient.types.ModelRef`.

Settings differ from batch on purpose: streaming decodes the same few seconds again and again,
so it uses the sequential decoder on one short buffer (no batching, no VAD inside faster-whisper:
our gate already removed silence) with greedy search for the repeated decodes, and asks for word
timestamps, which LocalAgreement needs to place the commit. The last decode of an utterance
(``final=True``) decides words no second hypothesis will check, so it may search as batch does
(``final_beam_size``; greedy by default, as beam 5 there did not pay on CAR0002).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import numpy.typing as npt

from ambient.asr.models import ResolvedModel, resolve_model
from ambient.streaming.agreement import word_key
from ambient.streaming.core import Hypothesis
from ambient.types import ModelRef, Word

# oneDNN (inside CTranslate2) caches a compiled primitive per input shape, up to 1024 of them. The
# short and spliced windows give the encoder a new length nearly every decode, so that cache grew
# a streaming process by about 260 MiB (peak RSS 589 → 327 MiB on CAR0002 with 16, the same
# words and CPU time). Read when oneDNN makes its first primitive, so set before any decode; a
# value the user exported wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")

SAMPLE_RATE_HZ = 16000
_HOP_SAMPLES = 160  # one mel frame: 10 ms
_WINDOW_FRAMES = 3000  # Whisper's 30 s window
# Fast speech is about 4 words (6 tokens) a second; a hypothesis well beyond that is a loop.
_MAX_TOKENS_PER_S = 8
_MAX_WORDS_PER_S = 5
_MAX_COMPRESSION_RATIO = 2.4
_MAX_LOOP_WORDS = 30
# Segments Whisper itself thinks are probably not speech are dropped, as whisper_streaming does,
# and so are those Whisper's own decoder would call silence: no-speech above 0.6 *and* a mean token
# log-probability under -1 (openai-whisper's ``no_speech_threshold``/``logprob_threshold`` pair).
_NO_SPEECH_PROB = 0.9
_NO_SPEECH_PAIR = (0.6, -1.0)
# What a skipped window "decodes" to: faster-whisper moves past a window whose no-speech
# probability is over its ``no_speech_threshold`` (0.6) unless the log-probability is over its
# ``log_prob_threshold`` (-1.0), so the rest of the audio is passed over as silence (both are
# faster-whisper's defaults, which ``_decode`` leaves alone).
_NO_SPEECH = SimpleNamespace(sequences_ids=[[]], scores=[0.0], no_speech_prob=1.0)
_NOTHING_HEARD = (_NO_SPEECH, float("-inf"), 0.0, 1.0)  # (result, avg log-prob, temperature, compression)


@dataclass(frozen=True)
class WhisperStreamOptions:
    beam_size: int = 1
    # The last decode of an utterance. Beam 5 there (as batch decodes) was measured and gained
    # nothing once left context was on (22.5 % against 22.1 % greedy, docs/benchmarks.md), so greedy.
    final_beam_size: int = 1
    no_speech_pair: bool = True  # also drop segments by Whisper's no-speech/logprob pair
    final_full_window: bool = False  # the last decode of an utterance sees Whisper's whole 30 s window
    language: str | None = "en"
    cpu_threads: int = 0
    # The encoder's window. "short": the buffer plus ``encoder_pad_s``, never under ``min_window_s``
    # (cheap, and enough to keep up on two busy cores); "full": Whisper's 30 s window, as it was
    # trained (about 4 WER points better on CAR0002, at nearly twice the CPU); "adaptive": full,
    # but short for a decode the core marks ``hurry`` (audio waited behind the last decode);
    # "spliced": the short window's encoding followed by the padding's own, so the decoder sees
    # all 1500 positions as in training (the full window's WER at the short window's CPU).
    window: str = "short"
    encoder_pad_s: float = 1.0
    min_window_s: float = 5.0
    # faster-whisper decodes the audio after a window's last word as one more window (encoder
    # and decoder again). In a streaming buffer that is mostly the last fraction of a second,
    # where Whisper hears nothing or invents ("Okay. Okay. …", or "." to the token limit): on
    # CAR0002, 565 of 721 decodes ran such a window, 471 heard nothing, and most of the rest
    # were loops our filters dropped. A tail shorter than this is not decoded: the same words at
    # three cadences and held out, 30-49 % less CPU (docs/benchmarks.md); at 1 s, words were lost.
    min_tail_s: float = 0.5

    def __post_init__(self) -> None:
        if self.window not in WINDOWS:
            raise ValueError(f"window must be one of {', '.join(WINDOWS)}, got {self.window!r}")


WINDOWS = ("short", "full", "adaptive", "spliced")


def _streaming_model(base: type[Any]) -> type[Any]:
    """A ``WhisperModel`` that decodes a short buffer cheaply: a short encoder window, and no
    second window over a tail too short to hold a word (``WhisperStreamOptions.min_tail_s``).

    The encoder sees the buffer (plus padding), not 30 s of mostly zeros:
    faster-whisper pads every input to 30 s, so encoding a 3 s buffer costs as much as a full
    window (≈0.6 s for tiny.en on two busy cores). CTranslate2's encoder takes shorter inputs;
    cutting the padding makes a typical streaming decode several times cheaper (the same trick
    as whisper.cpp's ``audio_ctx``). A second of padding is kept, because with none Whisper
    tends to drop the last word.

    Whisper's decoder was only ever trained on 1500 encoder positions, and handed a few hundred
    it invents and loops more (the short window's 4 WER points). ``splice`` gives it the other
    positions back cheaply: faster-whisper pads the log-mel features with zeros, so what the
    encoder makes of the padding hardly depends on the speech before it (cosine 0.92–0.95 to a
    real full window's on CAR0002; the speech positions themselves 0.97–0.99). The padding's
    encoding is computed once, from a window of zeros, and put after the short encoding.
    """

    class StreamingWhisperModel(base):  # type: ignore[misc]
        encode_frames: int | None = None
        splice: bool = False
        min_tail_s: float = 0.0
        tails_skipped = 0  # windows not decoded (a counter for benchmarks and tests)
        _padding_states: npt.NDArray[np.float32] | None = None
        _audio_s = 0.0  # the audio being transcribed
        _heard_s = 0.0  # where the last segment decoded so far ends
        _windows = 0  # windows of the current transcription decoded so far
        _encoding: Any = None  # the last encoder output

        def generate_segments(self, features: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            """faster-whisper's window loop. We note where each segment ends: the next window
            starts at the last word's end, and neither ``encode`` nor ``generate_with_fallback``
            is told where."""
            self._audio_s = (features.shape[-1] - 1) * self.feature_extractor.time_per_frame
            self._heard_s, self._windows = 0.0, 0
            try:
                for segment in super().generate_segments(features, *args, **kwargs):
                    self._heard_s = float(segment.end)
                    yield segment
            finally:
                self._windows = 0

        def _short_tail(self) -> bool:
            """This window is what is left after the last word, and too short to hold one."""
            return self._windows > 0 and self._audio_s - self._heard_s < self.min_tail_s

        def generate_with_fallback(self, *args: Any, **kwargs: Any) -> Any:
            if self._short_tail():
                self.tails_skipped += 1
                return _NOTHING_HEARD
            self._windows += 1
            return super().generate_with_fallback(*args, **kwargs)

        def encode(self, features: Any) -> Any:
            if not self._short_tail():  # a short tail is not decoded (above): nor encoded
                self._encoding = self._encode_window(features)
            return self._encoding

        def _encode_window(self, features: Any) -> Any:
            if self.encode_frames is None:
                return super().encode(features)
            short = super().encode(features[..., : self.encode_frames])
            if not self.splice:
                return short
            import ctranslate2

            head = np.array(short)
            tail = self.padding_states()[:, head.shape[1] :]
            return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.concatenate([head, tail], 1)))

        def padding_states(self) -> npt.NDArray[np.float32]:
            """The encoding of a window of pure padding (computed once: a full window's cost)."""
            if self._padding_states is None:
                zeros = np.zeros((1, self.feature_extractor.mel_filters.shape[0], _WINDOW_FRAMES), np.float32)
                self._padding_states = np.array(super().encode(zeros))
            return self._padding_states

    return StreamingWhisperModel


class WhisperProducer:
    """Wraps one loaded ``WhisperModel``; ``hypothesise`` is called from one thread at a time."""

    def __init__(self, resolved: ResolvedModel, options: WhisperStreamOptions | None = None) -> None:
        from faster_whisper import WhisperModel

        self.options = options or WhisperStreamOptions()
        self.model: ModelRef = resolved.ref
        self.fallbacks = 0  # decodes that needed the full window
        self._language = "en" if resolved.english_only else self.options.language
        self._model = _streaming_model(WhisperModel)(
            resolved.path,
            device="cpu",
            compute_type=resolved.ref.compute_type,
            cpu_threads=self.options.cpu_threads,
            local_files_only=True,
        )
        self._model.min_tail_s = self.options.min_tail_s
        if self.options.window == "spliced":
            self._model.splice = True
            self._model.padding_states()  # at load, not in the first decode of an encounter

    @property
    def tails_skipped(self) -> int:
        """Windows after a decode's last word not decoded (``WhisperStreamOptions.min_tail_s``)."""
        return int(self._model.tails_skipped)

    @classmethod
    def load(cls, name: str, cache_dir: Path, options: WhisperStreamOptions | None = None) -> WhisperProducer:
        return cls(resolve_model(name, cache_dir, "int8"), options)

    def hypothesise(
        self, audio: npt.NDArray[np.float32], prompt: str, final: bool = False, hurry: bool = False
    ) -> Hypothesis:
        """Decode over the window the options ask for (see ``WhisperStreamOptions.window``).

        A short window occasionally makes Whisper loop ("a little bit of a little bit of …") or
        leaves the word aligner nothing to align; both are detected (a hypothesis far longer
        than the audio can hold, an alignment error) and that buffer is decoded again the way
        faster-whisper always does, over the full window.
        """
        window = self.options.window
        short = window in ("short", "spliced") or (window == "adaptive" and hurry)
        if short and not (final and self.options.final_full_window):
            pad = int(self.options.encoder_pad_s * SAMPLE_RATE_HZ)
            frames = max(len(audio) + pad, int(self.options.min_window_s * SAMPLE_RATE_HZ)) // _HOP_SAMPLES
            self._model.encode_frames = min(_WINDOW_FRAMES, frames + frames % 2)
            try:
                hypothesis = cut_repetition(self._decode(audio, prompt, final))
                if _plausible(hypothesis, len(audio) / SAMPLE_RATE_HZ):
                    return hypothesis
            except IndexError:
                pass
            self.fallbacks += 1
        if window != "full":
            self._model.encode_frames = None
        return cut_repetition(self._decode(audio, prompt, final))

    def _decode(self, audio: npt.NDArray[np.float32], prompt: str, final: bool) -> Hypothesis:
        duration_s = len(audio) / SAMPLE_RATE_HZ
        segments, _ = self._model.transcribe(
            audio,
            language=self._language,
            beam_size=self.options.final_beam_size if final else self.options.beam_size,
            word_timestamps=True,
            initial_prompt=prompt or None,
            condition_on_previous_text=True,
            vad_filter=False,
            temperature=0.0,
            max_new_tokens=int(_MAX_TOKENS_PER_S * duration_s) + 16,
        )
        words: list[Word] = []
        ends: list[float] = []
        for segment in segments:
            if segment.no_speech_prob > _NO_SPEECH_PROB or (
                self.options.no_speech_pair
                and segment.no_speech_prob > _NO_SPEECH_PAIR[0]
                and segment.avg_logprob < _NO_SPEECH_PAIR[1]
            ):
                continue
            ends.append(float(segment.end))
            for w in segment.words or ():
                text = w.word.strip()
                if word_key(text):  # "..." alone is no word, and would match any other "..."
                    words.append(Word(text, float(w.start), float(w.end), round(float(w.probability), 4)))
        return Hypothesis(tuple(words), tuple(ends))


def cut_repetition(hypothesis: Hypothesis) -> Hypothesis:
    """Cut a hypothesis where Whisper starts looping.

    Decoding the same few seconds again and again, Whisper sometimes runs past the end of the
    speech and repeats itself: "it came on. I was just showing the driveway and it came on. I
    was …", "Okay. Okay. Okay.", "and and and and". We cut where a sentence or a run of three or
    more words is repeated whole (or repeated to the end of the hypothesis), or at the third copy
    of a shorter run ("okay okay" and "the the" are real speech; so is "do you live alone or do
    you live with someone", which is not cut). What is cut is
    at worst a real repetition, which LocalAgreement will then commit one decode later.
    """
    keys = [word_key(w.word) for w in hypothesis.words]
    for i in range(1, len(keys)):
        for period in range(1, min(i, _MAX_LOOP_WORDS) + 1):
            run = 0  # words from i on that repeat the word ``period`` places before them
            while i + run < len(keys) and keys[i + run] == keys[i + run - period]:
                run += 1
            sentence = hypothesis.words[i - 1].word.endswith((".", "?", "!"))
            whole = run >= period or (i + run == len(keys) and run >= 3)  # a full (or final) copy
            if whole and (period >= 3 or sentence):
                cut = i  # a repeated phrase or sentence ("Okay. Okay."): keep one copy
            elif run >= 2 * period:
                cut = i + period  # "and and and": keep two, as people do say "the the"
            else:
                cut = 0
            if cut:
                words = hypothesis.words[:cut]
                return Hypothesis(words, tuple(e for e in hypothesis.segment_ends_s if e <= words[-1].end_s))
    return hypothesis


def _plausible(hypothesis: Hypothesis, duration_s: float) -> bool:
    """False for a looping hypothesis: more words than anyone speaks, or text that compresses
    like a repeated phrase (Whisper's own compression-ratio test)."""
    if len(hypothesis.words) > _MAX_WORDS_PER_S * duration_s + 3:
        return False
    text = " ".join(w.word for w in hypothesis.words).encode("utf-8")
    return len(text) < 60 or len(text) / len(zlib.compress(text)) <= _MAX_COMPRESSION_RATIO
