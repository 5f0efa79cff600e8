"""The streaming core with events in and events out: scripted hypotheses, no model, no clock.

The audio here is synthetic on purpose: each sample holds its own position on the time line
(speech) or zero (silence), so the scripted producer can tell exactly which stretch of the
encounter it was given, and the scripted scorer calls any non-zero frame speech. What is under
test is the algorithm: LocalAgreement-2, the prompt, trimming, the VAD gate and finalisation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
import pytest

from ambient.streaming.agreement import HypothesisBuffer, word_key
from ambient.streaming.core import Hypothesis, StreamingOptions, StreamingRecognizer, sentence_case
from ambient.streaming.events import CommittedWords, Event, PartialText, event_to_dict
from ambient.streaming.vad import FRAME_SAMPLES, GateOptions, SpeechGate
from ambient.types import Word

SR = 16000
_SCALE = 1e-7  # sample value = (index + 1) * _SCALE: exact enough in float32 up to ~10 minutes


def w(text: str, start: float, end: float) -> Word:
    return Word(text, start, end, 0.9)


# ---- LocalAgreement-2 alone --------------------------------------------------------------------


def test_commits_the_longest_common_prefix_of_two_hypotheses() -> None:
    buffer = HypothesisBuffer()
    buffer.insert([w("I", 0.0, 0.2), w("have", 0.2, 0.4), w("chess", 0.4, 0.7)])
    assert buffer.flush() == []  # one hypothesis agrees with nothing
    buffer.insert([w("I", 0.0, 0.2), w("have", 0.2, 0.4), w("chest", 0.4, 0.7), w("pain", 0.7, 1.0)])
    assert [x.word for x in buffer.flush()] == ["I", "have"]
    assert [x.word for x in buffer.pending()] == ["chest", "pain"]
    buffer.insert([w("I", 0.0, 0.2), w("have", 0.2, 0.4), w("chest", 0.4, 0.7), w("pain.", 0.7, 1.0)])
    # committed words are dropped from the new hypothesis by time; punctuation does not block
    assert [x.word for x in buffer.flush()] == ["chest", "pain."]


def test_repeated_ngram_at_the_seam_is_not_committed_twice() -> None:
    buffer = HypothesisBuffer()
    for _ in range(2):
        buffer.insert([w("blood", 0.0, 0.3), w("pressure", 0.3, 0.8)])
        committed = buffer.flush()
    assert [x.word for x in committed] == ["blood", "pressure"]
    # Whisper repeats the committed words with shifted times after the buffer was cut
    again = [w("blood", 0.85, 0.9), w("pressure", 0.9, 1.0), w("is", 1.0, 1.2), w("high", 1.2, 1.5)]
    buffer.insert(again)
    buffer.flush()
    buffer.insert(again)
    assert [x.word for x in buffer.flush()] == ["is", "high"]


def test_word_key_ignores_case_and_punctuation() -> None:
    assert word_key(" Pain.") == word_key("pain") == "pain"
    assert word_key("ECG,") == "ecg"


def test_gate_needs_the_full_silence_to_end_an_utterance() -> None:
    gate = SpeechGate(GateOptions(threshold=0.5, min_silence_s=0.128))  # 4 frames
    probs = np.array([0, 0.9, 0.9, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1, 0.1, 0.0], dtype=np.float32)
    edges = gate.push(probs)
    assert [(e.kind, e.frame) for e in edges] == [("start", 1), ("end", 10)]


# ---- the whole core with scripted parts --------------------------------------------------------


def timeline(duration_s: float, speech: list[tuple[float, float]]) -> npt.NDArray[np.float32]:
    """Audio whose speech samples encode their own index; silence is zero."""
    audio = np.zeros(int(duration_s * SR), dtype=np.float32)
    for a, b in speech:
        idx = np.arange(int(a * SR), int(b * SR))
        audio[idx] = (idx + 1) * _SCALE
    return audio


class NonZeroScorer:
    """Speech wherever the frame is not silent: deterministic stand-in for Silero."""

    def score(self, frames: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return (np.abs(frames.reshape(-1, FRAME_SAMPLES)).max(axis=1) > 0).astype(np.float32)

    def reset(self) -> None:
        pass


@dataclass
class ScriptedProducer:
    """Returns the script's words that end inside the audio it is given.

    Like Whisper, it is unsure about the newest audio: a word ending in the last ``shaky_s`` of
    the buffer comes back misspelt, so only a later, longer buffer can confirm it.
    """

    script: list[Word]
    shaky_s: float = 0.3
    calls: list[tuple[float, float, str]] = field(default_factory=list)

    def hypothesise(
        self, audio: npt.NDArray[np.float32], prompt: str, final: bool = False, hurry: bool = False
    ) -> Hypothesis:
        nonzero = np.flatnonzero(audio)
        assert len(nonzero), "the core must never decode pure silence"
        first = nonzero[0]
        offset = (round(float(audio[first]) / _SCALE) - 1 - first) / SR
        end = offset + len(audio) / SR
        self.calls.append((offset, end, prompt))
        words = []
        ends = []
        for word in self.script:
            if word.start_s >= offset - 0.05 and word.end_s <= end:
                text = word.word + "~" if word.end_s > end - self.shaky_s else word.word
                words.append(Word(text, word.start_s - offset, word.end_s - offset, 0.9))
                if word.word.endswith("."):
                    ends.append(word.end_s - offset)
        if words:
            ends.append(words[-1].end_s)
        return Hypothesis(tuple(words), tuple(ends))


def speech_script(spans: list[tuple[float, float]], word_s: float = 0.4) -> list[Word]:
    """Words filling each speech span back to back; every fifth word ends a sentence."""
    words = []
    n = 0
    for a, b in spans:
        t = a
        while t + word_s <= b + 1e-9:
            n += 1
            words.append(w(f"w{n}." if n % 5 == 0 else f"w{n}", round(t, 3), round(t + word_s, 3)))
            t += word_s
    return words


def run(
    core: StreamingRecognizer, audio: npt.NDArray[np.float32], chunk_s: float
) -> tuple[list[Event], list[Word]]:
    events: list[Event] = []
    step = int(chunk_s * SR)
    for i in range(0, len(audio), step):
        events += core.feed(audio[i : i + step])
    events += core.flush()
    words = [x for e in events if isinstance(e, CommittedWords) for x in e.words]
    return events, words


SPANS = [(0.5, 6.5), (8.0, 12.0), (14.0, 17.2)]


def make(
    spans: list[tuple[float, float]] = SPANS, **options: object
) -> tuple[StreamingRecognizer, ScriptedProducer, list[Word]]:
    script = speech_script(spans)
    producer = ScriptedProducer(script)
    opts = StreamingOptions(gate=GateOptions(min_silence_s=0.5, speech_pad_s=0.1), **options)  # type: ignore[arg-type]
    return StreamingRecognizer(producer, opts, NonZeroScorer()), producer, script


def test_every_word_is_committed_once_in_order_with_its_times() -> None:
    core, _, script = make()
    events, words = run(core, timeline(19.0, SPANS), 0.1)
    assert [x.word for x in words] == [x.word for x in script]
    assert [(x.start_s, x.end_s) for x in words] == [(x.start_s, x.end_s) for x in script]
    assert any(isinstance(e, PartialText) and e.text for e in events)
    assert all(not x.word.endswith("~") for x in words), "a shaky guess was committed"


def test_words_are_committed_while_speech_goes_on_not_only_at_pauses() -> None:
    core, _, script = make()
    audio = timeline(19.0, SPANS)
    step = int(0.1 * SR)
    committed_at: dict[str, float] = {}
    for i in range(0, len(audio), step):
        for event in core.feed(audio[i : i + step]):
            if isinstance(event, CommittedWords):
                for x in event.words:
                    committed_at[x.word] = (i + step) / SR
    first = script[0]
    assert committed_at[first.word] < SPANS[0][1], "the first word waited for the pause"
    # LocalAgreement-2 with 1 s chunks: a word is final within ~2 chunks after it was spoken
    delays = [committed_at[x.word] - x.end_s for x in script if x.word in committed_at]
    assert max(delays) <= 2.0 + 0.3 + 0.5


def test_chunk_size_does_not_change_the_committed_words() -> None:
    audio = timeline(19.0, SPANS)
    results = []
    for chunk_s in (0.02, 0.1, 0.37, 1.0):
        core, _, _ = make()
        results.append([(x.word, x.start_s, x.end_s) for x in run(core, audio, chunk_s)[1]])
    assert all(r == results[0] for r in results)


def test_silence_is_never_decoded() -> None:
    core, producer, _ = make()
    events, words = run(core, timeline(30.0, []), 0.5)
    assert events == [] and words == [] and producer.calls == []


def test_committed_text_before_the_buffer_is_the_prompt() -> None:
    core, producer, script = make(initial_prompt="Clinic.")
    run(core, timeline(19.0, SPANS), 0.1)
    second_utterance = [c for c in producer.calls if c[0] >= 7.5]
    assert second_utterance
    before = [x.word for x in script if x.end_s <= 6.5]
    assert second_utterance[0][2].startswith("Clinic. ")
    assert second_utterance[0][2].endswith(" ".join(before[-3:]))
    assert all(len(c[2]) <= len("Clinic. ") + core.options.prompt_chars for c in producer.calls)


def test_long_speech_without_pauses_keeps_the_buffer_bounded() -> None:
    spans = [(0.0, 70.0)]
    core, producer, script = make(spans, trim_s=10.0)
    _, words = run(core, timeline(70.6, spans), 0.25)
    assert [x.word for x in words] == [x.word for x in script]
    assert max(end - start for start, end, _ in producer.calls) <= 28.0 + 1.0
    # trimming happened at sentence ends, well before the hard cap
    assert sum(1 for start, _, _ in producer.calls if start > 0) > 3


def test_without_vad_the_whole_stream_is_one_buffer() -> None:
    script = speech_script([(0.0, 8.0)])
    producer = ScriptedProducer(script)
    core = StreamingRecognizer(producer, StreamingOptions(vad=False))
    _, words = run(core, timeline(8.5, [(0.0, 8.0)]), 0.5)
    assert [x.word for x in words] == [x.word for x in script]


def test_decodes_are_driven_by_audio_fed_not_by_calls() -> None:
    """Feeding 2.5 s in tiny pieces or in one piece decodes after the same amount of audio."""
    audio = timeline(3.0, [(0.0, 3.0)])
    core, producer, _ = make([(0.0, 3.0)], min_chunk_s=1.0)
    for i in range(0, int(2.5 * SR), 160):
        core.feed(audio[i : i + 160])
    assert [round(end, 2) for _, end, _ in producer.calls] == [1.02, 2.05]  # whole 32 ms frames


def test_committed_times_are_monotone_and_inside_the_audio() -> None:
    core, _, _ = make()
    _, words = run(core, timeline(19.0, SPANS), 0.1)
    ends = [0.0]
    for x in words:
        assert ends[-1] <= x.start_s <= x.end_s <= 19.0
        ends.append(x.end_s)


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError):
        StreamingRecognizer(ScriptedProducer([]), StreamingOptions())  # VAD on, no scorer
    with pytest.raises(ValueError):
        StreamingRecognizer(ScriptedProducer([]), StreamingOptions(vad=False, max_buffer_s=40))


def test_event_wire_form() -> None:
    committed = CommittedWords((w("chest", 10.8, 11.1),))
    assert event_to_dict(committed) == {
        "kind": "committed",
        "words": [{"word": "chest", "start_s": 10.8, "end_s": 11.1, "probability": 0.9}],
    }
    assert event_to_dict(PartialText("pain", 11.1, 11.4))["kind"] == "partial"


@pytest.mark.parametrize(
    ("said", "kept"),
    [
        ("I was showing the driveway. I was showing the driveway. I was", "I was showing the driveway."),
        ("Has that pain been getting worse? Has that pain been", "Has that pain been getting worse?"),
        ("Okay. Okay. Okay. Okay.", "Okay."),
        ("okay okay okay okay", "okay okay"),
        ("and and and and and", "and and"),
        ("okay okay fine", "okay okay fine"),
        ("the the cat sat on the mat", "the the cat sat on the mat"),
        ("pain in my chest and my chest hurts", "pain in my chest and my chest hurts"),
        ("do you live alone or do you live with someone", "do you live alone or do you live with someone"),
    ],
)
def test_a_looping_hypothesis_is_cut_where_the_loop_starts(said: str, kept: str) -> None:
    from ambient.streaming.whisper import cut_repetition

    words = tuple(w(x, i * 0.3, i * 0.3 + 0.3) for i, x in enumerate(said.split()))
    cut = cut_repetition(Hypothesis(words, (words[-1].end_s,)))
    assert " ".join(x.word for x in cut.words) == kept
    assert all(e <= cut.words[-1].end_s for e in cut.segment_ends_s)


def test_words_heard_in_the_padding_after_the_audio_are_dropped() -> None:
    """Whisper sees padding after the buffer and sometimes "hears" words there; none may commit."""

    class Inventive(ScriptedProducer):
        def hypothesise(
            self, audio: npt.NDArray[np.float32], prompt: str, final: bool = False, hurry: bool = False
        ) -> Hypothesis:
            real = super().hypothesise(audio, prompt)
            end = len(audio) / SR
            invented = (Word("cut", end, end, 0.2), Word("pain.", end, end, 0.2))
            return Hypothesis(real.words + invented, real.segment_ends_s)

    script = speech_script(SPANS)
    core = StreamingRecognizer(Inventive(script), StreamingOptions(), NonZeroScorer())
    _, words = run(core, timeline(19.0, SPANS), 0.1)
    assert [x.word for x in words] == [x.word for x in script]


def test_agreed_words_whisper_doubts_are_dropped_not_committed() -> None:
    class Doubtful(ScriptedProducer):
        def hypothesise(
            self, audio: npt.NDArray[np.float32], prompt: str, final: bool = False, hurry: bool = False
        ) -> Hypothesis:
            real = super().hypothesise(audio, prompt)
            words = tuple(Word(x.word, x.start_s, x.end_s, 0.05 if x.word.startswith("w3") else 0.9)
                          for x in real.words)  # fmt: skip
            return Hypothesis(words, real.segment_ends_s)

    script = speech_script(SPANS)
    core = StreamingRecognizer(Doubtful(script), StreamingOptions(), NonZeroScorer())
    _, words = run(core, timeline(19.0, SPANS), 0.1)
    expected = [x.word for x in script if not x.word.startswith("w3")]
    assert [x.word for x in words] == expected and len(expected) < len(script)


# ---- left context, the careful final decode, a resumed time line --------------------------------


@dataclass
class SpliceProducer:
    """Like :class:`ScriptedProducer`, for audio spliced from several stretches (left context).

    Each non-zero sample names its own place on the encounter's time line, so the producer maps
    every script word to where its first sample sits in the audio it was given, and hears only
    words whose audio it was given whole. It records what each decode was given.
    """

    script: list[Word]
    calls: list[dict[str, object]] = field(default_factory=list)

    def hypothesise(
        self, audio: npt.NDArray[np.float32], prompt: str, final: bool = False, hurry: bool = False
    ) -> Hypothesis:
        where = {round(float(v) / _SCALE) - 1: i for i, v in enumerate(audio) if v}
        heard = []
        for word in self.script:
            a, b = round(word.start_s * SR), round(word.end_s * SR) - 1
            if a in where and b in where:
                start = where[a] / SR
                heard.append(Word(word.word, start, start + word.end_s - word.start_s, 0.9))
        self.calls.append({"final": final, "prompt": prompt, "heard": [x.word for x in heard],
                           "audio_s": len(audio) / SR})  # fmt: skip
        return Hypothesis(tuple(heard), (heard[-1].end_s,) if heard else ())


def test_left_context_is_decoded_but_never_committed_again() -> None:
    script = speech_script(SPANS)
    producer = SpliceProducer(script)
    options = StreamingOptions(gate=GateOptions(min_silence_s=0.5, speech_pad_s=0.1), left_context_s=2.0)
    _, words = run(StreamingRecognizer(producer, options, NonZeroScorer()), timeline(19.0, SPANS), 0.1)
    assert [x.word for x in words] == [x.word for x in script]
    assert [(x.start_s, x.end_s) for x in words] == [(x.start_s, x.end_s) for x in script]
    # the second utterance's first decode heard the end of the first utterance before it ...
    second = next(c for c in producer.calls if "w16" in c["heard"])  # type: ignore[operator]
    first_half = {x.word for x in script if x.end_s <= SPANS[0][1]}
    heard_before = [x for x in second["heard"] if x in first_half]  # type: ignore[attr-defined]
    assert heard_before and float(second["audio_s"]) > 2.0  # type: ignore[arg-type]
    # ... and the prompt stops where that context starts: no word is both prompt and audio
    assert not set(str(second["prompt"]).split()) & set(heard_before)


def test_the_last_decode_of_each_utterance_is_the_careful_one() -> None:
    script = speech_script(SPANS)
    producer = SpliceProducer(script)
    options = StreamingOptions(gate=GateOptions(min_silence_s=0.5, speech_pad_s=0.1))
    _, words = run(StreamingRecognizer(producer, options, NonZeroScorer()), timeline(19.0, SPANS), 0.1)
    assert [x.word for x in words] == [x.word for x in script]
    finals = [i for i, c in enumerate(producer.calls) if c["final"]]
    assert len(finals) == len(SPANS)  # one per utterance, at its pause
    assert len(producer.calls) > 3 * len(finals)  # the repeated decodes stay the cheap ones


def test_a_resumed_stream_continues_the_encounter_time_line() -> None:
    script = speech_script(SPANS)
    prior = (Word("earlier", 90.0, 90.4, 0.9), Word("words.", 90.4, 90.8, 0.9))
    producer = SpliceProducer(script)
    options = StreamingOptions(gate=GateOptions(min_silence_s=0.5, speech_pad_s=0.1))
    core = StreamingRecognizer(producer, options, NonZeroScorer(), origin_s=100.0, prior_words=prior)
    events, words = run(core, timeline(19.0, SPANS), 0.1)
    assert [(x.word, x.start_s, x.end_s) for x in words] == [
        (x.word, round(x.start_s + 100, 3), round(x.end_s + 100, 3)) for x in script
    ]
    assert all(e.start_s >= 100 for e in events if isinstance(e, PartialText))
    assert producer.calls[0]["prompt"] == "earlier words."
    assert core.audio_s == pytest.approx(119.0)


def test_a_decode_that_stops_after_the_left_context_is_redone_without_it() -> None:
    """Whisper transcribes the earlier speaker's words, then ends as if nobody spoke after them."""
    script = speech_script(SPANS)
    first = {x.word for x in script if x.end_s <= SPANS[0][1]}

    @dataclass
    class StopsAtContext(SpliceProducer):
        def hypothesise(
            self, audio: npt.NDArray[np.float32], prompt: str, final: bool = False, hurry: bool = False
        ) -> Hypothesis:
            real = super().hypothesise(audio, prompt, final)
            if not any(x.word in first for x in real.words):
                return real
            words = tuple(x for x in real.words if x.word in first)
            return Hypothesis(words, (words[-1].end_s,))

    options = StreamingOptions(gate=GateOptions(min_silence_s=0.5, speech_pad_s=0.1), left_context_s=2.0)
    producer = StopsAtContext(script)
    _, words = run(StreamingRecognizer(producer, options, NonZeroScorer()), timeline(19.0, SPANS), 0.1)
    assert [x.word for x in words] == [x.word for x in script]
    core = StreamingRecognizer(StopsAtContext(script), replace(options, context_retry=False), NonZeroScorer())
    _, without = run(core, timeline(19.0, SPANS), 0.1)
    assert len(without) < len(words)  # the second utterance's words were lost before


@dataclass
class FirstWordMoved(SpliceProducer):
    """Hears each utterance's first word earlier than it was said, as Whisper places it after a
    join (the pause before it is not in the audio): by ``start_by`` seconds, its end by ``end_by``."""

    earlier: frozenset[str] = frozenset()  # the words of the utterances before
    start_by: float = 0.0
    end_by: float = 0.0

    def hypothesise(
        self, audio: npt.NDArray[np.float32], prompt: str, final: bool = False, hurry: bool = False
    ) -> Hypothesis:
        real = super().hypothesise(audio, prompt, final)
        words = list(real.words)
        for i in range(1, len(words)):
            if words[i - 1].word in self.earlier and words[i].word not in self.earlier:
                words[i] = replace(words[i], start_s=words[i].start_s - self.start_by,
                                   end_s=words[i].end_s - self.end_by)  # fmt: skip
        return Hypothesis(tuple(words), real.segment_ends_s)


def committed_with_first_word_moved(start_by: float, end_by: float) -> tuple[list[str], FirstWordMoved]:
    script = speech_script(SPANS)
    earlier = frozenset(x.word for x in script if x.end_s <= SPANS[0][1])
    producer = FirstWordMoved(script, earlier=earlier, start_by=start_by, end_by=end_by)
    options = StreamingOptions(gate=GateOptions(min_silence_s=0.5, speech_pad_s=0.1), left_context_s=2.0)
    _, words = run(StreamingRecognizer(producer, options, NonZeroScorer()), timeline(19.0, SPANS), 0.1)
    return [x.word for x in words], producer


def test_a_first_word_whisper_starts_inside_the_left_context_is_still_committed() -> None:
    """Whisper starts a word where the last one ended; the pause before an utterance is not in the
    audio it hears, so the utterance's first word ("ask" after "fellow Americans") often starts
    before the join. Judged by its start it was taken for context and lost by both utterances."""
    words, _ = committed_with_first_word_moved(start_by=0.3, end_by=0.0)
    assert words == [x.word for x in speech_script(SPANS)]


def test_a_first_word_stretched_back_across_the_join_is_still_committed() -> None:
    """Whisper may also move the buffer's first word so far back over the join that its middle is
    in the left context (CAR0002: "a lot of pressure. | on my chest", "on" heard from the end of
    "pressure"); it starts after the last committed word, so it was never committed."""
    words, producer = committed_with_first_word_moved(start_by=0.45, end_by=0.45)
    assert any("w16" in c["heard"] and "w15." in c["heard"] for c in producer.calls)  # type: ignore[operator]
    assert words == [x.word for x in speech_script(SPANS)]


def test_words_the_last_decode_stopped_before_are_taken_from_the_next_left_context() -> None:
    """Whisper ends an utterance early ("Yeah, I..." where the patient went on "I drive a bus for
    the city"), and the next utterance hears the missed words in its left context, where they
    used to be dropped as committed already. They were never committed, so they are new, and
    they keep their own times: the pause between the two is not in the audio Whisper hears."""
    script = speech_script(SPANS)
    missed = {x.word for x in script if 4.9 <= x.start_s < SPANS[0][1]}  # the first utterance's last 1.6 s
    second = {x.word for x in script if SPANS[1][0] <= x.start_s < SPANS[1][1]}

    @dataclass
    class StopsShort(SpliceProducer):
        def hypothesise(
            self, audio: npt.NDArray[np.float32], prompt: str, final: bool = False, hurry: bool = False
        ) -> Hypothesis:
            real = super().hypothesise(audio, prompt, final)
            if any(x.word in second for x in real.words):
                return real
            words = tuple(x for x in real.words if x.word not in missed)
            return Hypothesis(words, (words[-1].end_s,) if words else ())

    options = StreamingOptions(gate=GateOptions(min_silence_s=0.5, speech_pad_s=0.1), left_context_s=3.0)
    _, words = run(
        StreamingRecognizer(StopsShort(script), options, NonZeroScorer()), timeline(19.0, SPANS), 0.1
    )
    assert [(x.word, x.start_s, x.end_s) for x in words] == [(x.word, x.start_s, x.end_s) for x in script]
    # without left context nothing can bring them back
    no_context = StreamingRecognizer(
        StopsShort(script), replace(options, left_context_s=0.0), NonZeroScorer()
    )
    assert missed.isdisjoint(x.word for x in run(no_context, timeline(19.0, SPANS), 0.1)[1])


def test_speech_after_a_hesitation_every_decode_stopped_at_is_decoded_again_on_its_own() -> None:
    """Whisper ends an utterance at a hesitation ("Yeah, I..." where the patient went on "I drive
    a bus for the city") in every decode that hears the hesitation, but hears the rest whole
    when its audio starts after it. At the utterance's end, the speech after its last committed
    word is decoded once more on its own, with everything committed before it as the prompt."""
    script = speech_script(SPANS)
    first = [x for x in script if x.end_s <= SPANS[0][1]]
    hesitation, missed = first[-5], {x.word for x in first[-4:]}

    @dataclass
    class Hesitates(SpliceProducer):
        def hypothesise(
            self, audio: npt.NDArray[np.float32], prompt: str, final: bool = False, hurry: bool = False
        ) -> Hypothesis:
            real = super().hypothesise(audio, prompt, final)
            if hesitation.word not in [x.word for x in real.words]:
                return real
            words = tuple(x for x in real.words if x.word not in missed)
            return Hypothesis(words, (words[-1].end_s,))

    options = StreamingOptions(gate=GateOptions(min_silence_s=0.5, speech_pad_s=0.1))
    producer = Hesitates(script)
    core = StreamingRecognizer(producer, options, NonZeroScorer())
    _, words = run(core, timeline(19.0, SPANS), 0.1)
    assert [(x.word, x.start_s, x.end_s) for x in words] == [(x.word, x.start_s, x.end_s) for x in script]
    assert core.stats.rests == 1  # only the utterance that stopped short
    rest = next(c for c in producer.calls if set(c["heard"]) == missed)  # type: ignore[call-overload]
    assert str(rest["prompt"]).lower().endswith(hesitation.word) and rest["final"]
    without = StreamingRecognizer(Hesitates(script), replace(options, decode_rest=False), NonZeroScorer())
    assert missed.isdisjoint(x.word for x in run(without, timeline(19.0, SPANS), 0.1)[1])


def test_a_word_said_again_in_the_next_left_context_is_not_committed_twice() -> None:
    """Whisper places the last word of an utterance differently each time (a stretched "started."
    came back as "starting?" after it). Only when the last decode stopped well
    before the speech did are words of the left context taken as new."""
    script = speech_script(SPANS)
    last_of_first = max((x for x in script if x.end_s <= SPANS[0][1]), key=lambda x: x.end_s)

    @dataclass
    class Jittery(SpliceProducer):
        def hypothesise(
            self, audio: npt.NDArray[np.float32], prompt: str, final: bool = False, hurry: bool = False
        ) -> Hypothesis:
            real = super().hypothesise(audio, prompt, final)
            in_context = len(audio) / SR > 2.9  # a second-utterance decode, with 3 s of left context
            words = [
                replace(x, word="again", start_s=x.start_s + 0.5, end_s=x.end_s + 0.5)
                if in_context and x.word == last_of_first.word and x.start_s < 3.0
                else x
                for x in real.words
            ]
            return Hypothesis(tuple(words), real.segment_ends_s)

    options = StreamingOptions(gate=GateOptions(min_silence_s=0.5, speech_pad_s=0.1), left_context_s=3.0)
    _, words = run(StreamingRecognizer(Jittery(script), options, NonZeroScorer()), timeline(19.0, SPANS), 0.1)
    assert "again" not in [x.word for x in words]


def test_words_invented_in_the_quiet_after_the_last_word_are_dropped() -> None:
    """At a pause (and at the end) the buffer holds half a second with no speech in it, where
    Whisper likes to hear "Thank you."; the VAD heard nothing there, so nothing commits."""

    class Polite(ScriptedProducer):
        def hypothesise(
            self, audio: npt.NDArray[np.float32], prompt: str, final: bool = False, hurry: bool = False
        ) -> Hypothesis:
            real = super().hypothesise(audio, prompt)
            end = len(audio) / SR
            last = real.words[-1].end_s if real.words else 0.0
            if end - last < 0.4:
                return real
            invented = (
                Word("Thank", last + 0.05, last + 0.2, 0.6),
                Word("you.", last + 0.2, last + 0.35, 0.8),
            )
            return Hypothesis(real.words + invented, real.segment_ends_s)

    script = speech_script(SPANS)
    options = StreamingOptions(gate=GateOptions(min_silence_s=0.5, speech_pad_s=0.1))
    _, words = run(StreamingRecognizer(Polite(script), options, NonZeroScorer()), timeline(19.0, SPANS), 0.1)
    assert [x.word for x in words] == [x.word for x in script]


@dataclass
class EditsLastDecode(ScriptedProducer):
    """The script's words, with ``edit`` applied to the last decode of each utterance (whose
    words no second hypothesis confirms)."""

    edit: Callable[[tuple[Word, ...]], tuple[Word, ...]] = lambda words: words

    def hypothesise(
        self, audio: npt.NDArray[np.float32], prompt: str, final: bool = False, hurry: bool = False
    ) -> Hypothesis:
        real = super().hypothesise(audio, prompt)
        if not final or not real.words:
            return real
        return Hypothesis(self.edit(real.words), real.segment_ends_s)


def committed_through(producer: ScriptedProducer) -> list[Word]:
    options = StreamingOptions(gate=GateOptions(min_silence_s=0.5, speech_pad_s=0.1))
    _, words = run(StreamingRecognizer(producer, options, NonZeroScorer()), timeline(19.0, SPANS), 0.1)
    return words


def test_unconfirmed_words_given_no_audio_are_not_committed() -> None:
    """The last decode of an utterance is committed without a second hypothesis. Whisper at times
    ends it with a sentence crammed into no time at all ("I'm gonna go ahead and check out the
    other one." in 40 ms after the patient's last word): its aligner found no audio for it."""

    def cram(words: tuple[Word, ...]) -> tuple[Word, ...]:
        at = words[-1].end_s - 0.1
        return words + tuple(Word(x, at, at + 0.005, 0.6) for x in ("I'm", "gonna", "go", "ahead"))

    script = speech_script(SPANS)
    words = committed_through(EditsLastDecode(script, edit=cram))
    assert [x.word for x in words] == [x.word for x in script]


@pytest.mark.parametrize(("probability", "kept"), [(0.9, True), (0.3, False)])
def test_a_lone_sure_word_given_no_audio_is_still_committed(probability: float, kept: bool) -> None:
    """Whisper's aligner now and then gives one real word no time between two that have audio
    ("the last time that", "time" at 0 ms with p 0.92): sure of it, Whisper heard it. Unsure, it is
    refused like a crammed sentence."""

    def squeeze(words: tuple[Word, ...]) -> tuple[Word, ...]:
        return (*words[:-1], replace(words[-1], end_s=words[-1].start_s, probability=probability))

    script = speech_script(SPANS)
    words = committed_through(EditsLastDecode(script, edit=squeeze))
    last_of_each = {script[i].word for i in range(len(script) - 1) if script[i + 1].start_s > script[i].end_s}
    last_of_each.add(script[-1].word)
    committed = {x.word for x in words}
    assert last_of_each <= committed if kept else not (last_of_each & committed)
    assert [x.word for x in words if x.word not in last_of_each] == [
        x.word for x in script if x.word not in last_of_each
    ]


def test_a_decode_behind_real_time_is_marked_hurry() -> None:
    """Audio that piled up behind the last decode (one large feed) makes the next decode a hurried one."""

    @dataclass
    class Recording(ScriptedProducer):
        hurried: list[bool] = field(default_factory=list)

        def hypothesise(
            self, audio: npt.NDArray[np.float32], prompt: str, final: bool = False, hurry: bool = False
        ) -> Hypothesis:
            self.hurried.append(hurry)
            return super().hypothesise(audio, prompt, final)

    audio = timeline(19.0, SPANS)
    script = speech_script(SPANS)
    opts = StreamingOptions(gate=GateOptions(min_silence_s=0.5, speech_pad_s=0.1), min_chunk_s=0.5)
    steady = Recording(script)
    words = run(StreamingRecognizer(steady, opts, NonZeroScorer()), audio, 0.1)[1]
    assert not any(steady.hurried)  # the stream ends in silence: flush() had nothing to decode
    cut = Recording(script)
    run(StreamingRecognizer(cut, opts, NonZeroScorer()), audio[: int(5.0 * SR)], 0.1)
    assert cut.hurried[-1] and not any(cut.hurried[:-1]), "the end of the stream is decoded in a hurry"
    late = Recording(script)
    core = StreamingRecognizer(late, opts, NonZeroScorer())
    core.feed(audio[: int(3.0 * SR)])  # 2.5 s of speech arrives at once: the stream is behind
    core.feed(audio[int(3.0 * SR) : int(3.1 * SR)])
    assert late.hurried[0] and core.stats.hurried >= 1
    rest = run(core, audio[int(3.1 * SR) :], 0.1)[1]
    assert [x.word for x in words] == [x.word for x in script]  # hurry changes the cost, not the words here
    assert rest and late.hurried.count(True) == core.stats.hurried


# ---- words the time filter must not lose ----------------------------------------------------------


def test_a_word_after_a_stretched_committed_word_is_not_lost_to_the_time_filter() -> None:
    buffer = HypothesisBuffer()
    stretched = [w("having", 0.0, 0.3), w("difficulty", 0.3, 1.5)]  # "difficulty" over the pause
    for _ in range(2):
        buffer.insert(stretched)
        buffer.flush()
    assert buffer.last_committed_end_s == 1.5
    # the next decodes put "breathing" inside that stretch; it follows the last committed word
    later = [w("having", 0.0, 0.3), w("difficulty", 0.3, 1.1), w("breathing", 1.1, 1.6), w("since", 1.6, 1.9)]
    buffer.insert(later)
    assert buffer.flush() == []
    buffer.insert(later)
    assert [x.word for x in buffer.flush()] == ["breathing", "since"]


def test_a_word_after_the_first_committed_word_of_a_buffer_is_not_lost_to_the_time_filter() -> None:
    """CAR0002: "No, but" agreed on after a pause, "but" (p 0.07) refused; the next decodes
    heard "No nausea or vomiting", "nausea" starting before where "but" had. The anchor finds
    "No" without the word before it, which was said before the pause."""
    buffer = HypothesisBuffer()
    for _ in range(2):
        buffer.insert([w("fevers", 0.0, 0.4), w("chills?", 0.4, 1.0)])
        buffer.flush()
    buffer.reset(1.5)
    first = [w("No,", 1.6, 1.8), Word("but", 2.0, 2.1, 0.07)]
    for _ in range(2):
        buffer.insert(first)
        committed = buffer.flush()
    assert [x.word for x in committed] == ["No,", "but"]
    buffer.withdraw([committed[1]])  # refused as improbable: its time is open again from 2.0 s
    later = [w("No", 1.6, 1.75), w("nausea", 1.75, 2.2), w("or", 2.2, 2.4), w("vomiting.", 2.4, 2.9)]
    buffer.insert(later)
    assert buffer.flush() == []
    buffer.insert(later)
    assert [x.word for x in buffer.flush()] == ["nausea", "or", "vomiting."]


def test_the_anchor_does_not_bring_back_committed_words_across_a_pause() -> None:
    buffer = HypothesisBuffer()
    for _ in range(2):
        buffer.insert([w("okay", 0.0, 0.4), w("and", 0.4, 1.2)])
        buffer.flush()
    buffer.reset(1.5)  # a pause: a fresh buffer, decoded with left context
    again = [w("okay", 1.6, 1.8), w("and", 1.8, 2.0), w("so", 2.0, 2.3)]
    buffer.insert(again)
    buffer.flush()
    buffer.insert(again)
    assert [x.word for x in buffer.flush()] == ["so"]  # the seam check, as before


def test_a_repeat_said_well_after_the_pause_is_kept_and_an_echo_at_the_seam_is_not() -> None:
    """The seam check is about the last committed word, not the fresh buffer's start: Whisper
    echoing its prompt starts the echo right after it; a speaker saying it again ("six days ago.
    Six days ago?") leaves the pause between."""
    buffer = HypothesisBuffer()
    for _ in range(2):
        buffer.insert([w("six", 0.0, 0.3), w("days", 0.3, 0.6), w("ago.", 0.6, 1.0)])
        buffer.flush()
    buffer.reset(1.5)  # a pause of half a second, then a fresh buffer
    echo = [w("ago", 1.6, 1.8), w("okay", 1.8, 2.1)]  # within a second of "ago." ending
    for _ in range(2):
        buffer.insert(echo)
        committed = buffer.flush()
    assert [x.word for x in committed] == ["okay"]

    buffer = HypothesisBuffer()
    for _ in range(2):
        buffer.insert([w("six", 0.0, 0.3), w("days", 0.3, 0.6), w("ago.", 0.6, 1.0)])
        buffer.flush()
    buffer.reset(1.8)
    again = [w("Six", 2.1, 2.5), w("days", 2.5, 2.7), w("ago?", 2.7, 3.0), w("Okay.", 3.3, 3.6)]
    for _ in range(2):
        buffer.insert(again)
        committed = buffer.flush()
    assert [x.word for x in committed] == ["Six", "days", "ago?", "Okay."]


def test_a_refused_unlikely_word_does_not_hide_the_real_word_under_it() -> None:
    """An invented "Okay." (probability 0.04) is agreed on, refused at commit, and the real word
    Whisper then hears in its place must still be committed (CAR0002: "driveway [Okay.] and")."""

    class Inventing(ScriptedProducer):
        def hypothesise(
            self, audio: npt.NDArray[np.float32], prompt: str, final: bool = False, hurry: bool = False
        ) -> Hypothesis:
            real = super().hypothesise(audio, prompt)
            offset, end, _ = self.calls[-1]
            if not 2.4 < end < 3.8:
                return real
            words = [x for x in real.words if x.end_s + offset <= 2.1 + 1e-6]
            words.append(Word("Okay.", 2.1 - offset, 2.7 - offset, 0.04))
            return Hypothesis(tuple(words), real.segment_ends_s)

    spans = [(0.5, 6.5)]
    script = speech_script(spans)
    producer = Inventing(script)
    options = StreamingOptions(min_chunk_s=0.5, gate=GateOptions(min_silence_s=0.5, speech_pad_s=0.1))
    core = StreamingRecognizer(producer, options, NonZeroScorer())
    _, words = run(core, timeline(8.0, spans), 0.1)
    assert sum(1 for _, end, _ in producer.calls if 2.4 < end < 3.8) >= 2  # "Okay." was agreed on
    assert [x.word for x in words] == [x.word for x in script]


def test_the_prompt_starts_every_sentence_with_a_capital() -> None:
    """Committed words join into sentences that start in lower case ("seven? okay. have");
    Whisper copies its prompt's style, so the prompt is given sentence case, and "..." (a
    speaker trailing off) is not a sentence end."""
    script = speech_script(SPANS)
    said = "the worst? seven? okay. have you had any... similar episodes? no. ok"
    prior = tuple(Word(t, 80.0 + i * 0.4, 80.0 + i * 0.4 + 0.3, 0.9) for i, t in enumerate(said.split()))
    producer = SpliceProducer(script)
    options = StreamingOptions(gate=GateOptions(min_silence_s=0.5, speech_pad_s=0.1))
    core = StreamingRecognizer(producer, options, NonZeroScorer(), origin_s=100.0, prior_words=prior)
    run(core, timeline(19.0, SPANS), 0.1)
    expected = "the worst? Seven? Okay. Have you had any... similar episodes? No. Ok"
    assert producer.calls[0]["prompt"] == expected
    assert sentence_case("Dr. smith said 5.5 mg. then i left") == "Dr. Smith said 5.5 mg. Then i left"
