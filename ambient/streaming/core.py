"""The streaming recogniser: audio in, partial and committed words out. No I/O, no clock.

``feed(samples)`` takes the next stretch of 16 kHz mono float32 audio and returns the events it
caused; ``flush()`` ends the stream and commits whatever is left. Every decision is driven by the
amount of audio fed, never by a wall clock, so a test can feed a file as fast as it likes and get
the same events a live microphone would, and the caller (runtime, benchmark) owns all timing.

The commit policy is LocalAgreement-2 from ufal/whisper_streaming (see
:mod:`ambient.streaming.agreement`):

1. Audio joins a buffer that holds the current utterance.
2. Once ``min_chunk_s`` of new audio has arrived, the whole buffer is decoded again, with the
   committed text before the buffer as Whisper's prompt so it continues the same sentence.
3. Words on which this hypothesis and the previous one agree (longest common prefix) are
   committed; the rest is shown as a partial.
4. When the buffer grows past ``trim_s`` it is cut at the end of the last completed segment
   that is fully committed, so decoding stays cheap; past ``max_buffer_s`` everything pending
   is committed and the buffer starts afresh (a safety cap for speech without pauses).

Silero VAD (:mod:`ambient.streaming.vad`) gates the buffer: silence is never decoded (Whisper
invents text in silence), and a pause of ``min_silence_s`` ends the utterance: it is decoded once
more and all of it is committed, so a speaker's last words do not wait for the next utterance.
That final decode is flagged (``final=True``) so a producer may search harder there (beam search,
as batch decodes): it decides every word LocalAgreement has not committed yet, which for a short
answer ("No, never.") is all of it.

Left context: an utterance after a pause starts a fresh buffer, and Whisper hearing one or two
seconds alone guesses far worse than batch, which decodes 30 s windows of speech. So the last
``left_context_s`` of earlier *speech* (pauses left out, as batch's VAD windows leave them out)
is put before the buffer when it is decoded; the words Whisper hears there are committed already,
are dropped by time, and the prompt holds only the committed text before that context. Not all
of them, though: the last decode of an utterance sometimes stops before its last words ("Yeah,
I..." where the patient went on "I drive a bus for the city"), and the next utterance hears them
in its context. So when an utterance ends with more than ``_MISSED_S`` of speech after its last
committed word, the next one's context words that start after that word are taken as new (at
their own times, the pause put back), and go through LocalAgreement like the buffer's own; the
condition keeps a last word that Whisper merely places differently from being committed twice.
Before that, the speech after the last committed word is decoded once more on its own
(``decode_rest``): Whisper that stopped at a hesitation in every decode of the buffer often
hears the rest whole from after it, and its words come at once rather than with the next
utterance (if it hears them at all, which an utterance in between can prevent).
And the rest of an utterance's last decode, which no second hypothesis confirms, is refused
where Whisper's aligner gave a word no audio (``_NO_AUDIO_S``), unless it is a single word
Whisper is sure of (``_SURE_P``).

The hypothesis producer is a protocol: the real one wraps faster-whisper
(:mod:`ambient.streaming.whisper`); the tests also drive the core with scripted producers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ambient.streaming.agreement import HypothesisBuffer, clamp_monotone
from ambient.streaming.events import CommittedWords, Event, PartialText
from ambient.streaming.vad import FRAME_SAMPLES, GateOptions, SpeechGate, SpeechScorer
from ambient.types import Word

SAMPLE_RATE_HZ = 16000
# Whisper sometimes stretches a word over the pause after it ("And..." lasting 3 s). Committed
# times filter later hypotheses, so a stretched end would hide the words spoken in that pause.
_MAX_WORD_S = 1.5
_PADDING_WORD_S = 0.02
# A word that begins this close to where the VAD last heard speech, or after it, holds no speech:
# Whisper invents it in the quiet after the last word ("country. Thank you" at the end of JFK).
_AFTER_SPEECH_S = 0.05
# A decode whose words end this much before its audio does has stopped short (see _stopped_short).
_UNHEARD_S = 1.0
# More speech than this after the last committed word, when an utterance ends: its last decode
# stopped short, and the words it missed may be heard in the next utterance's left context.
_MISSED_S = 0.5
# A word committed with no second hypothesis to confirm it, to which Whisper's aligner gave less
# audio than this, was not heard: at the end of CAR0002 a last decode crammed "I'm gonna go ahead
# and check out the other one." into 40 ms after the patient's "seven years?". Not a lone word
# Whisper is sure of, though (at least ``_SURE_P``, its neighbours given audio): the aligner gives
# such a word no time now and then ("the last time that" had "time" at 0 ms, p 0.92), and refusing
# it lost a word Whisper had heard.
_NO_AUDIO_S = 0.02
_SURE_P = 0.5
# A word across the join of left context and buffer that starts this close to the last committed
# word's end, or after it, was never committed (see ``_decode``).
_JOIN_SLACK_S = 0.05
# a lower-case letter that starts a word after a sentence's end (not after "...": a trailing off)
_SENTENCE_START = re.compile(r"((?<!\.)[.?!]\s+)([a-z])")


@dataclass(frozen=True)
class Hypothesis:
    """One decoding of the buffer: words and segment ends in seconds from the buffer's start."""

    words: tuple[Word, ...]
    segment_ends_s: tuple[float, ...] = ()


class HypothesisProducer(Protocol):
    """Decodes a whole buffer; ``prompt`` is the committed text just before it (may be empty)."""

    def hypothesise(
        self, audio: npt.NDArray[np.float32], prompt: str, final: bool = False, hurry: bool = False
    ) -> Hypothesis:
        """``final``: the last decode of an utterance; its words are committed without a second look.
        ``hurry``: audio has piled up behind the last decode; a producer may decode more cheaply."""
        ...


@dataclass(frozen=True)
class StreamingOptions:
    min_chunk_s: float = 1.0  # new audio needed before the buffer is decoded again
    trim_s: float = 15.0  # buffer longer than this is cut at a committed segment end
    max_buffer_s: float = 28.0  # hard cap, below Whisper's 30 s window
    # Committed text given back to Whisper as its prompt. whisper_streaming gives 200 characters;
    # within one conversation more of it helps Whisper hear the next words (CAR0002, four
    # fixed-chunk cadences: 300 characters 0.8 points better on the mean, 400 1.0), but text
    # that has nothing to do with what follows misleads it (unrelated clips strung together:
    # 400 lost 2.1-4.1 points there, 300 0.3-1.0), so 300 (docs/benchmarks.md).
    prompt_chars: int = 300
    initial_prompt: str = ""  # e.g. the clinical vocabulary; goes before the committed text
    vad: bool = True
    final_decode: bool = True  # decode once more at a pause before committing the rest
    min_word_probability: float = 0.1  # agreed words below this are dropped, not committed
    left_context_s: float = 0.0  # earlier speech put before a fresh utterance's buffer (see above)
    # Whisper sometimes transcribes the left context and stops, as if the new speech were not
    # there (most often when the speaker changes): such a decode is redone on the buffer alone.
    context_retry: bool = True
    seam_across_pauses: bool = True  # a fresh buffer's first words are checked against the last ones
    # An utterance whose last decode stopped short (``_MISSED_S`` of speech after its last
    # committed word): the speech after that word is decoded once more on its own.
    decode_rest: bool = True
    # More undecoded audio than this when a decode starts (it arrived while the last one ran):
    # the decode is marked ``hurry``, so a producer that can decode more cheaply does, and a
    # machine that is busy elsewhere does not leave the stream behind real time. The decode of
    # ``flush()`` is always hurried.
    hurry_after_s: float = 1.0
    gate: GateOptions = field(default_factory=GateOptions)


@dataclass
class CoreStats:
    """Counters a benchmark or a status line can read; all in audio terms."""

    fed_s: float = 0.0
    decoded_s: float = 0.0  # sum of buffer lengths decoded (the cost driver)
    decodes: int = 0
    retries: int = 0  # decodes redone without left context (see ``context_retry``)
    hurried: int = 0  # decodes marked ``hurry`` (see ``hurry_after_s``)
    rests: int = 0  # decodes of the speech an utterance's last decode stopped before (``decode_rest``)
    speech_s: float = 0.0


class StreamingRecognizer:
    """LocalAgreement-2 over a VAD-gated, trimmed audio buffer. One instance per encounter."""

    def __init__(
        self,
        producer: HypothesisProducer,
        options: StreamingOptions | None = None,
        scorer: SpeechScorer | None = None,
        origin_s: float = 0.0,
        prior_words: tuple[Word, ...] = (),
    ) -> None:
        """``origin_s``: the encounter time of the first sample fed, and ``prior_words`` what was
        committed before it; both for an encounter resumed after a restart, whose words continue
        its time line and whose earlier text is Whisper's first prompt."""
        self.options = options or StreamingOptions()
        self._origin_s = origin_s
        if self.options.vad and scorer is None:
            raise ValueError("options.vad needs a SpeechScorer (SileroScorer for real audio)")
        if self.options.min_chunk_s <= 0 or self.options.max_buffer_s > 30.0:
            raise ValueError("min_chunk_s must be positive and max_buffer_s at most 30 s")
        self._producer = producer
        self._scorer = scorer
        self._gate = SpeechGate(self.options.gate, SAMPLE_RATE_HZ)
        self._agreement = HypothesisBuffer(self.options.seam_across_pauses)
        self._fed = 0  # samples fed so far: the encounter's audio clock
        self._unscored = np.zeros(0, dtype=np.float32)  # less than one VAD frame, held back
        self._preroll = np.zeros(0, dtype=np.float32)  # recent silence, kept to pad a start
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0  # sample index of the buffer's first sample
        self._history: list[tuple[int, npt.NDArray[np.float32]]] = []  # recent utterances (start, audio)
        self._context = np.zeros(0, dtype=np.float32)  # earlier speech decoded before the buffer
        self._context_start = 0  # sample index (encounter time) of the context's first sample
        self._context_pieces: list[tuple[int, int]] = []  # (first sample, length) of each of its pieces
        self._unheard_after_s: float | None = None  # the last utterance stopped short after this word end
        self._undecoded = 0  # samples added to the buffer since the last decode
        self._in_speech = not self.options.vad
        # recent committed words, for the prompt (internal times: seconds since the first sample fed)
        self._committed_tail: list[Word] = [
            replace(w, start_s=w.start_s - origin_s, end_s=w.end_s - origin_s) for w in prior_words[-100:]
        ]
        self._last_end_s = 0.0
        self._partial = ""
        self.stats = CoreStats()

    # ---- the interface -------------------------------------------------------------------------

    def feed(self, samples: npt.NDArray[np.float32]) -> list[Event]:
        """Take the next audio (float32, 16 kHz mono) and return the events it caused."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._fed += len(samples)
        self.stats.fed_s = self._fed / SAMPLE_RATE_HZ
        events: list[Event] = []
        if not self.options.vad:
            self._append(samples)
        else:
            events += self._gate_audio(samples)
        if self._in_speech and self._undecoded >= self.options.min_chunk_s * SAMPLE_RATE_HZ:
            events += self._update()
        return self._on_time_line(events)

    def flush(self) -> list[Event]:
        """End of the stream: decode and commit everything still pending.

        That decode is marked ``hurry``: at the end of an encounter the clinician waits for the
        note, and what is left is one utterance's tail, decoded once.
        """
        if self._in_speech and len(self._unscored):
            self._append(self._unscored)
        self._unscored = np.zeros(0, dtype=np.float32)
        events = self._finalise(at_end=True)
        self._in_speech = not self.options.vad
        return self._on_time_line(events)

    @property
    def audio_s(self) -> float:
        return self._origin_s + self._fed / SAMPLE_RATE_HZ

    def _on_time_line(self, events: list[Event]) -> list[Event]:
        """Internal times count from the first sample fed; events carry encounter times."""
        if not self._origin_s or not events:
            return events
        o = self._origin_s
        return [
            CommittedWords(tuple(replace(w, start_s=round(w.start_s + o, 3), end_s=round(w.end_s + o, 3))
                                 for w in e.words))
            if isinstance(e, CommittedWords)
            else PartialText(e.text, round(e.start_s + o, 3), round(e.end_s + o, 3))
            for e in events
        ]  # fmt: skip

    # ---- VAD gating ----------------------------------------------------------------------------

    def _gate_audio(self, samples: npt.NDArray[np.float32]) -> list[Event]:
        assert self._scorer is not None
        audio = np.concatenate([self._unscored, samples]) if len(self._unscored) else samples
        whole = len(audio) - len(audio) % FRAME_SAMPLES
        frames, self._unscored = audio[:whole], audio[whole:].copy()
        if not whole:
            return []
        first_frame = (self._fed - len(self._unscored) - whole) // FRAME_SAMPLES
        edges = self._gate.push(self._scorer.score(frames))
        events: list[Event] = []
        position = 0  # frames of this call handled so far
        for edge in edges:
            upto = edge.frame - first_frame
            self._route(frames[position * FRAME_SAMPLES : upto * FRAME_SAMPLES])
            position = upto
            if edge.kind == "start":
                self._start_utterance(edge.frame)
            else:
                events += self._finalise()
                self._in_speech = False
        self._route(frames[position * FRAME_SAMPLES :])
        return events

    def _route(self, audio: npt.NDArray[np.float32]) -> None:
        if not len(audio):
            return
        if self._in_speech:
            self.stats.speech_s += len(audio) / SAMPLE_RATE_HZ
            self._append(audio)
            return
        pad = int(self.options.gate.speech_pad_s * SAMPLE_RATE_HZ)
        self._preroll = np.concatenate([self._preroll, audio])[-pad:] if pad else self._preroll[:0]

    def _start_utterance(self, frame: int) -> None:
        start = frame * FRAME_SAMPLES - len(self._preroll)
        self._buffer = self._preroll
        self._buffer_start = start
        self._undecoded = len(self._preroll)
        self._preroll = np.zeros(0, dtype=np.float32)
        self._in_speech = True
        self._set_context()
        self._agreement.reset(start / SAMPLE_RATE_HZ, open_from_s=self._orphans_from_s())

    def _set_context(self) -> None:
        """The last ``left_context_s`` of earlier utterances, their pauses left out."""
        want = int(self.options.left_context_s * SAMPLE_RATE_HZ)
        pieces: list[npt.NDArray[np.float32]] = []
        self._context_pieces = []
        start = self._buffer_start
        for piece_start, audio in reversed(self._history):
            if want <= 0:
                break
            take = audio[-want:]
            pieces.insert(0, take)
            start = piece_start + len(audio) - len(take)
            self._context_pieces.insert(0, (start, len(take)))
            want -= len(take)
        self._context = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
        self._context_start = start

    def _in_encounter_time(self, context_time_s: float) -> tuple[float, float]:
        """A time inside the context, as (encounter time, end of its piece): the pauses between
        the context's pieces are not in the audio Whisper hears, but they are on the time line."""
        at = round(context_time_s * SAMPLE_RATE_HZ)
        last = len(self._context_pieces) - 1
        for i, (start, length) in enumerate(self._context_pieces):
            if at < length or i == last:
                return (start + min(at, length)) / SAMPLE_RATE_HZ, (start + length) / SAMPLE_RATE_HZ
            at -= length
        return self._buffer_start / SAMPLE_RATE_HZ, self._buffer_start / SAMPLE_RATE_HZ  # no context

    def _heard_until_s(self) -> float:
        """Where the VAD last heard speech, in seconds since the first sample fed."""
        return self._gate.heard_until * FRAME_SAMPLES / SAMPLE_RATE_HZ

    def _orphans_from_s(self) -> float:
        """Where new words may start: the buffer's start, or earlier in the left context if the
        words there after the last committed one were never committed (see the module docstring)."""
        buffer_s = self._buffer_start / SAMPLE_RATE_HZ
        if not len(self._context) or self._unheard_after_s is None:
            return buffer_s
        return max(self._context_start / SAMPLE_RATE_HZ, min(buffer_s, self._unheard_after_s))

    def _append(self, audio: npt.NDArray[np.float32]) -> None:
        self._buffer = np.concatenate([self._buffer, audio])
        self._undecoded += len(audio)

    # ---- decoding and committing ---------------------------------------------------------------

    def _decode(
        self, final: bool = False, at_end: bool = False, start: int | None = None
    ) -> tuple[list[Word], tuple[float, ...]]:
        """Decode context + buffer; words come back on the encounter time line, inside the buffer.

        ``start`` (a sample inside the buffer): decode only the buffer from there, without left
        context, as :meth:`_decode_rest` does.

        Words heard in the left context are dropped (committed with their own utterance). Which
        side of the join a word is on goes by its middle, not its start: Whisper starts a word
        where the one before it ended, and the pause between utterances is not in the audio it
        hears, so the first word of the buffer ("ask" after "… fellow Americans") often starts
        in the context. Judged by its start it was dropped, and never committed by either
        utterance. A committed word that lands on the buffer's side is caught by the agreement's
        seam check.

        Nor by its middle alone: Whisper also stretches the buffer's first word back over the
        join, so far that its middle falls in the context ("a lot of pressure. | on my chest":
        "on" heard from the end of "pressure" to 0.4 s into the buffer). A word across the join
        that starts after the last committed word ends (``_JOIN_SLACK_S``) was never committed:
        it counts as the buffer's.

        Words that begin where the VAD hears no more speech are dropped too (``_AFTER_SPEECH_S``).
        Context words that were never committed (``_orphans_from_s``) are kept.
        """
        start = self._buffer_start if start is None else start
        buffer = self._buffer[start - self._buffer_start :]
        context = self._context if start == self._buffer_start else np.zeros(0, dtype=np.float32)
        offset_s = start / SAMPLE_RATE_HZ
        end_s = offset_s + len(buffer) / SAMPLE_RATE_HZ
        context_s = len(context) / SAMPLE_RATE_HZ
        audio = np.concatenate([context, buffer]) if len(context) else buffer
        hurry = at_end or self._undecoded > self.options.hurry_after_s * SAMPLE_RATE_HZ
        self.stats.hurried += hurry
        prompt_s = self._context_start / SAMPLE_RATE_HZ if len(context) else offset_s  # pauses left out of it
        hypothesis = self._hypothesise(audio, prompt_s, final, hurry)
        if context_s and self.options.context_retry and self._stopped_short(hypothesis, len(audio), final):
            self._context = np.zeros(0, dtype=np.float32)  # and for the rest of this buffer
            audio, context_s = buffer, 0.0
            hypothesis = self._hypothesise(audio, offset_s, final, hurry)
            self.stats.retries += 1
        self._undecoded = 0
        base_s = offset_s - context_s  # encounter time of a word at buffer time 0 of the buffer part
        orphans_s = self._orphans_from_s()
        speech_end_s = self._heard_until_s() if self.options.vad else end_s
        words: list[Word] = []
        for w in hypothesis.words:
            word_end_s = min(w.end_s, w.start_s + _MAX_WORD_S)
            in_context = (w.start_s + word_end_s) / 2 < context_s
            if in_context:
                start_s, piece_end_s = self._in_encounter_time(w.start_s)
                across = word_end_s > context_s and start_s > self._last_end_s - _JOIN_SLACK_S
                in_context = not across
            if not in_context:
                start_s, end_s_word = max(base_s + w.start_s, offset_s), base_s + word_end_s
            else:  # heard in the left context: kept only if never committed
                end_s_word = min(start_s + word_end_s - w.start_s, piece_end_s)
                if start_s < orphans_s:
                    continue
            # a word starting after the audio ends was "heard" in the padding: Whisper invented it
            if w.word.strip() and start_s < min(end_s - _PADDING_WORD_S, speech_end_s - _AFTER_SPEECH_S):
                words.append(Word(w.word, round(min(start_s, end_s), 3), round(min(end_s_word, end_s), 3),
                                  w.probability))  # fmt: skip
        ends = tuple(e - context_s for e in hypothesis.segment_ends_s if e > context_s)
        return clamp_monotone(words, min(offset_s, orphans_s)), ends

    def _hypothesise(
        self, audio: npt.NDArray[np.float32], from_s: float, final: bool, hurry: bool
    ) -> Hypothesis:
        """One call to the producer for audio that starts at ``from_s``, with the committed text
        before that as the prompt, counted in the stats."""
        hypothesis = self._producer.hypothesise(audio, self._prompt(from_s), final=final, hurry=hurry)
        self.stats.decodes += 1
        self.stats.decoded_s += len(audio) / SAMPLE_RATE_HZ
        return hypothesis

    def _stopped_short(self, hypothesis: Hypothesis, samples: int, final: bool) -> bool:
        """Whisper's words end well before the audio does (its own end of text came early).

        A pause at the end of the audio is no sign of that: the last decode of an utterance
        carries ``min_silence_s`` of it.
        """
        heard_s = max((w.end_s for w in hypothesis.words), default=0.0)
        slack_s = _UNHEARD_S + (self.options.gate.min_silence_s if final else 0.0)
        return samples / SAMPLE_RATE_HZ - heard_s > slack_s

    def _update(self) -> list[Event]:
        words, segment_ends = self._decode()
        self._agreement.insert(words)
        events = self._commit(self._agreement.flush())
        buffer_s = len(self._buffer) / SAMPLE_RATE_HZ
        if buffer_s > self.options.max_buffer_s:
            events += self._commit(self._agreement.commit_pending(), unconfirmed=True)
            self._unheard_after_s = None  # the buffer goes on: no left context, nothing missed
            self._restart_buffer(self._buffer_start + len(self._buffer))
        elif buffer_s > self.options.trim_s:
            self._trim_at_segment(segment_ends)
        events += self._partial_event()
        return events

    def _finalise(self, at_end: bool = False) -> list[Event]:
        """End of an utterance (a pause, or ``at_end`` of the stream): commit all of it."""
        events: list[Event] = []
        pending = bool(self._agreement.pending())
        if self._undecoded and (self.options.final_decode or not pending):
            words, _ = self._decode(final=True, at_end=at_end)
            self._agreement.insert(words)
            events += self._commit(self._agreement.flush())
        events += self._commit(self._agreement.commit_pending(), unconfirmed=True)
        heard_s = self._heard_until_s() if self.options.vad else 0.0
        if self.options.decode_rest and heard_s - self._last_end_s > _MISSED_S:
            events += self._decode_rest(at_end)
        self._unheard_after_s = self._last_end_s if heard_s - self._last_end_s > _MISSED_S else None
        self._restart_buffer(self._buffer_start + len(self._buffer))
        events += self._partial_event()
        return events

    def _decode_rest(self, at_end: bool) -> list[Event]:
        """Decode the speech after the utterance's last committed word on its own, and commit it.

        Whisper ends some utterances early, at a hesitation: "Yeah, I..." where the patient went
        on "I drive a bus for the city". Every decode of the buffer stopped there, but the same
        audio decoded from after the "I..." was heard whole. Words it finds go through the same
        seam and refusal checks as the rest of a last decode. Only after a word of this
        utterance: if none was committed, its decodes heard nothing there, and this one would
        decode the same audio again. A lone word is not taken: on CAR0002 it was nearly always
        the hesitation again ("I...", "So...", "But...") or an "Okay." at p ≤ 0.05, and taking
        them put insertions up from 22 to 30.
        """
        rest = round(self._last_end_s * SAMPLE_RATE_HZ)
        if not self._buffer_start < rest < self._buffer_start + len(self._buffer):
            return []
        words, _ = self._decode(final=True, at_end=at_end, start=rest)
        self.stats.rests += 1
        if len(words) < 2:  # a lone word there is mostly the hesitation again ("I...", "So...")
            return []
        self._agreement.insert(words)
        self._agreement.flush()  # nothing pending to agree with: the words become pending ...
        return self._commit(self._agreement.commit_pending(), unconfirmed=True)  # ... and are committed

    def _commit(self, agreed: list[Word], unconfirmed: bool = False) -> list[Event]:
        """Commit words, less those refused: too unlikely, or (``unconfirmed``: no second
        hypothesis agreed on them) given no audio by Whisper's aligner (``_NO_AUDIO_S``)."""
        words = clamp_monotone(agreed, self._last_end_s)
        if not words:
            return []
        # Agreed on, but Whisper itself gives it under 10 %: on CAR0002 such words were invented
        # ("Okay.", "uh") nearly three times as often as they were right (docs/benchmarks.md).
        # The agreement forgets them too, so the time they cover stays open to a real word.
        unheard = _given_no_audio(agreed) if unconfirmed else [False] * len(agreed)
        floor = self.options.min_word_probability
        low = [w.probability < floor or u for w, u in zip(words, unheard, strict=True)]
        self._agreement.withdraw([w for w, drop in zip(agreed, low, strict=True) if drop])
        kept = [w for w, drop in zip(words, low, strict=True) if not drop]
        # Refused words at the end leave their time open: the last end is where the first of them starts.
        trailing = next((i for i, drop in enumerate(reversed(low)) if not drop), len(low))
        self._last_end_s = words[-trailing].start_s if trailing else words[-1].end_s
        if not kept:
            return []
        self._committed_tail = (self._committed_tail + kept)[-100:]
        return [CommittedWords(tuple(kept))]

    def _partial_event(self) -> list[Event]:
        pending = self._agreement.pending()
        text = " ".join(w.word for w in pending)
        if text == self._partial:
            return []
        self._partial = text
        if not pending:
            now = round(self._buffer_start / SAMPLE_RATE_HZ, 3)
            return [PartialText("", now, now)]
        return [PartialText(text, pending[0].start_s, pending[-1].end_s)]

    def _restart_buffer(self, at_sample: int) -> None:
        if self.options.left_context_s > 0 and len(self._buffer):
            self._history.append((self._buffer_start, self._buffer))
            keep: list[tuple[int, npt.NDArray[np.float32]]] = []
            total = 0
            for piece in reversed(self._history):
                if total >= self.options.left_context_s * SAMPLE_RATE_HZ:
                    break
                keep.insert(0, piece)
                total += len(piece[1])
            self._history = keep
        self._context = np.zeros(0, dtype=np.float32)  # a continuing buffer needs none
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = at_sample
        self._undecoded = 0
        # after an utterance that stopped short, the time behind its last committed word stays
        # open: the next utterance's left context may bring back the words it missed
        self._agreement.reset(at_sample / SAMPLE_RATE_HZ, open_from_s=self._unheard_after_s)

    def _trim_at_segment(self, segment_ends: tuple[float, ...]) -> None:
        """Cut the buffer at the latest segment end that lies within committed text.

        As whisper_streaming's ``chunk_completed_segment``: the last segment is never used (it
        may still be growing), and we walk back until an end falls at or before the last
        committed word.
        """
        if not self._committed_tail or len(segment_ends) < 2:
            return
        offset_s = self._buffer_start / SAMPLE_RATE_HZ
        ends = [offset_s + e for e in segment_ends[:-1]]
        while ends and ends[-1] > self._last_end_s:
            ends.pop()
        if not ends or ends[-1] <= offset_s:
            return
        cut = round(ends[-1] * SAMPLE_RATE_HZ) - self._buffer_start
        self._agreement.pop_committed(ends[-1])
        self._context = np.zeros(0, dtype=np.float32)  # the buffer itself is long enough now
        self._buffer = self._buffer[cut:]
        self._buffer_start += cut

    def _prompt(self, start_s: float) -> str:
        """Committed words that end before the audio decoded starts, at most ``prompt_chars`` of them."""
        before = [w.word for w in self._committed_tail if w.end_s <= start_s + 1e-6]
        text = ""
        for word in reversed(before):
            if len(text) + len(word) + 1 > self.options.prompt_chars:
                break
            text = f"{word} {text}" if text else word
        return sentence_case(f"{self.options.initial_prompt} {text}".strip())


def sentence_case(text: str) -> str:
    """Capitalise the first letter of every sentence in ``text`` (Whisper's prompt).

    Whisper continues its prompt in the prompt's own style. Committed words come from many
    decodes, and at their joins a sentence often starts in lower case ("seven? okay. have you");
    given that back as the prompt, Whisper wrote more of it, and grew unsure of the first word
    of each turn ("no," at p 0.08, refused as improbable). In the real-time regime, where a
    decode follows every half second of speech, 784 of 1,039 sentence starts in Whisper's
    hypotheses on CAR0002 were in lower case (6 of 931 at another cadence) and 30 more words were
    lost (docs/benchmarks.md). The committed words are left as Whisper wrote them.
    """
    return _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text)


def _given_no_audio(words: list[Word]) -> list[bool]:
    """Which words Whisper's aligner gave no audio (``_NO_AUDIO_S``), less a lone sure one.

    A crammed, invented sentence is a run of such words, mostly unlikely ones; a single word
    between two that have audio, which Whisper rates at least ``_SURE_P``, was heard.
    """
    silent = [w.end_s - w.start_s < _NO_AUDIO_S for w in words]
    out: list[bool] = []
    for i, word in enumerate(words):
        in_run = (i > 0 and silent[i - 1]) or (i + 1 < len(words) and silent[i + 1])
        out.append(silent[i] and (word.probability < _SURE_P or in_run))
    return out
