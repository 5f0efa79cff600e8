"""Who said what: every transcript word attributed to the clinician or the patient.

Modes (``--speakers``):

* ``channels``: a stereo file with one speaker per channel; each word goes to the louder channel.
* ``embeddings``: one microphone; GE2E voice embeddings of speech windows are clustered into two
  voices and each word takes the voice of the frames it spans.
* ``auto``: channels when the file has two channels that carry different signals, else
  embeddings.
* ``none``: the transcript is returned as it is.

Either way the two voices become roles by what they say (:mod:`ambient.diarize.roles`), or by
the enrolled clinician voice print when there is one (embeddings mode). Segments are then split
so that none mixes speakers (:mod:`ambient.diarize.assign`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from ambient.audio.decode import probe
from ambient.config import Paths
from ambient.diarize.assign import apply_speakers
from ambient.diarize.channels import channel_energy, channels_differ, span_channel
from ambient.diarize.cluster import VoiceClusters, cluster_two, frame_margins, span_voice, voices_for_spans
from ambient.diarize.embed import SpeechWindows, WindowOptions, embed_file
from ambient.diarize.enroll import VoicePrint, load_voiceprint, voiceprint_path
from ambient.diarize.models import SpeakerEncoder, load_encoder
from ambient.diarize.roles import roles_by_content, roles_by_voiceprint
from ambient.errors import UsageError
from ambient.types import Transcript, Word

Mode = Literal["auto", "channels", "embeddings", "none"]
MODES: tuple[str, ...] = ("auto", "channels", "embeddings", "none")
# With one voice found, it is the enrolled clinician only when this close to the voice print.
_ENROLLED_SAME_VOICE = 0.75


@dataclass(frozen=True)
class Attribution:
    """The attributed transcript and how it was made (for benchmarks and logs: no text)."""

    transcript: Transcript
    method: str  # "channels" | "embeddings" | "none"
    role_method: str  # "content" | "voiceprint" | "none"
    voices: int
    windows: int = 0
    centroid_cosine: float | None = None


@functools.cache
def shared_encoder() -> SpeakerEncoder:
    """One checked, loaded encoder per process (loading torch costs seconds; the model, little)."""
    return load_encoder()


def _voice_label(voice: int | None) -> str | None:
    return None if voice is None else str(voice)


def _name_roles(labelled: Transcript, roles: dict[str, str]) -> Transcript:
    segments = tuple(replace(s, speaker=roles.get(s.speaker or "")) for s in labelled.segments)
    return Transcript(labelled.header, segments)


def _texts_by_voice(labelled: Transcript, voices: int) -> list[list[str]]:
    texts: list[list[str]] = [[] for _ in range(voices)]
    for segment in labelled.segments:
        if segment.speaker is not None and segment.speaker.isdigit() and int(segment.speaker) < voices:
            texts[int(segment.speaker)].append(segment.text)
    return texts


def _by_channels(transcript: Transcript, audio: Path) -> Attribution:
    energy = channel_energy(audio)

    def word(w: Word) -> str | None:
        return _voice_label(span_channel(energy, w.start_s, w.end_s))

    def span(start_s: float, end_s: float) -> str | None:
        return _voice_label(span_channel(energy, start_s, end_s))

    labelled = apply_speakers(transcript, word, span, smooth=False)
    roles = roles_by_content(_texts_by_voice(labelled, 2))
    named = _name_roles(labelled, {"0": roles[0], "1": roles[1]})
    return Attribution(named, "channels", "content", 2)


def label_voices(
    transcript: Transcript, windows: SpeechWindows, clusters: VoiceClusters
) -> tuple[Transcript, int, float | None]:
    """Words labelled "0"/"1" by voice; returns the transcript, the number of voices, and the
    cosine between the two voices' centroids."""
    if clusters.n_voices < 2:
        labelled = apply_speakers(transcript, lambda w: "0", lambda a, b: "0", smooth=False)
        return labelled, 1, None
    margins = frame_margins(
        windows.starts_s, windows.ends_s, windows.embeddings, clusters.centroids, windows.audio_s
    )
    words = [w for segment in transcript.segments for w in segment.words]
    voices = dict(zip(words, voices_for_spans(margins, [(w.start_s, w.end_s) for w in words]), strict=True))
    labelled = apply_speakers(
        transcript,
        lambda w: _voice_label(voices.get(w)),
        lambda a, b: _voice_label(span_voice(margins, a, b)),
    )
    return labelled, 2, clusters.centroid_cosine


def _by_embeddings(
    transcript: Transcript,
    audio: Path,
    encoder: SpeakerEncoder,
    voiceprint: VoicePrint | None,
    options: WindowOptions | None,
) -> Attribution:
    windows = embed_file(encoder, audio, options or WindowOptions())
    clusters = cluster_two(windows.embeddings)
    labelled, voices, cosine = label_voices(transcript, windows, clusters)
    texts = _texts_by_voice(labelled, voices)
    role_method = "content"
    if voiceprint is not None and voices == 2:
        roles = roles_by_voiceprint(clusters.centroids, voiceprint.embedding)
        role_method = "voiceprint"
    elif voiceprint is not None and voices == 1:
        near = float(clusters.centroids[0] @ voiceprint.embedding) >= _ENROLLED_SAME_VOICE
        roles = ["clinician" if near else "patient"]
        role_method = "voiceprint"
    else:
        roles = roles_by_content(texts)
    named = _name_roles(labelled, {str(v): roles[v] for v in range(voices)})
    return Attribution(named, "embeddings", role_method, voices, len(windows), cosine)


def resolve_mode(audio: Path, mode: str) -> str:
    """What ``auto`` means for this file: channels for a true two-channel recording."""
    if mode not in MODES:
        raise UsageError(f"--speakers must be one of {', '.join(MODES)}, not {mode!r}")
    if mode != "auto":
        return mode
    if probe(audio).channels == 2 and channels_differ(channel_energy(audio)):
        return "channels"
    return "embeddings"


def prepare(audio_path: Path, mode: str) -> None:
    """Fail early, before minutes of transcription: an unknown mode, a file that is not stereo
    for ``channels``, or a missing or damaged speaker model for ``embeddings``/``auto``."""
    if mode not in MODES:
        raise UsageError(f"--speakers must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "channels" and probe(audio_path).channels != 2:
        channel_energy(audio_path)  # raises the UsageError that explains stereo input
    if mode in ("auto", "embeddings"):
        shared_encoder()


def attribute(
    transcript: Transcript,
    audio_path: Path,
    mode: str = "auto",
    *,
    encoder: SpeakerEncoder | None = None,
    voiceprint: VoicePrint | None = None,
    paths: Paths | None = None,
    options: WindowOptions | None = None,
) -> Attribution:
    """Attribute ``transcript`` (recognised from ``audio_path``) and say how it was done.

    The enrolled voice print is read from ``paths`` unless one is given.
    """
    resolved = resolve_mode(audio_path, mode)
    if resolved == "none":
        return Attribution(transcript, "none", "none", 0)
    if resolved == "channels":
        return _by_channels(transcript, audio_path)
    encoder = encoder or shared_encoder()
    if voiceprint is None and paths is not None:
        stored = voiceprint_path(paths)
        if stored.is_file():
            voiceprint = load_voiceprint(stored, encoder.manifest.sha256)
    return _by_embeddings(transcript, audio_path, encoder, voiceprint, options)


def attribute_speakers(
    transcript: Transcript,
    audio_path: Path,
    mode: str = "auto",
    *,
    encoder: SpeakerEncoder | None = None,
    voiceprint: VoicePrint | None = None,
    paths: Paths | None = None,
) -> Transcript:
    """The transcript with ``speaker`` set on every segment and no segment mixing speakers."""
    return attribute(
        transcript, audio_path, mode, encoder=encoder, voiceprint=voiceprint, paths=paths
    ).transcript
