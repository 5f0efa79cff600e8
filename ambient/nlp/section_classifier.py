"""Which note section a transcript passage belongs to: MTS-Dialog's 20 section headers.

A frozen sentence encoder (all-MiniLM-L6-v2, :mod:`ambient.nlp.embeddings`) turns a passage into
features; a small softmax-regression head trained by ``scripts/train_section_classifier.py`` (kept in
``models/section-classifier/`` with its data hashes and test metrics) turns features into a label.
The features are the same for one sentence and for a multi-turn snippet, so the drafter can ask
about single sentences while the head learned from MTS-Dialog's short dialogues:

    [ embedding of the whole text | mean of its line embeddings | max of them | first line ]

Lines are turns (``Doctor: …`` / ``Patient: …`` as in the training data; prefix the speaker when it is
known). Every input string is encoded once, even when it is both a text and a line.

``ambient/nlp/section_map.toml`` (data, reviewable) maps each header to template section keys.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ambient.errors import ModelIntegrityError
from ambient.nlp.embeddings import DEFAULT_EMBEDDING_MODEL, SentenceEncoder, get_encoder
from ambient.nlp.section_lora import LORA_RECIPE, AdaptedEncoder, LoraSettings
from ambient.resources import data_dir

FEATURE_RECIPE = "text+line-mean+line-max+first-line.v1"
HEAD_DIR = "section-classifier"
SECTION_MAP = Path(__file__).with_name("section_map.toml")

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class SectionPrediction:
    """The most likely header, its probability, and the ``top`` (header, probability) pairs."""

    label: str
    probability: float
    top: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class HeadManifest:
    labels: tuple[str, ...]
    head_sha256: str
    embedding_model: str
    embedding_sha256: str
    feature_recipe: str
    metrics: dict[str, Any]
    path: Path
    kind: str = "softmax-regression"
    file: str = "head.npz"
    lora: LoraSettings | None = None


@dataclass(frozen=True)
class SectionMapping:
    header: str
    title: str
    sections: tuple[str, ...]


def split_lines(text: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines or [text.strip()]


def featurise(encoder: SentenceEncoder, texts: Sequence[str]) -> FloatArray:
    """Features of each text (see the module docstring); one encoder pass over the distinct strings."""
    per_text = [split_lines(t) for t in texts]
    wanted = {t.strip() for t in texts} | {line for lines in per_text for line in lines}
    unique = sorted(wanted)
    index = {s: i for i, s in enumerate(unique)}
    vectors = encoder.encode(unique)
    dim = encoder.dimension
    out = np.zeros((len(texts), 4 * dim), dtype=np.float32)
    for row, (text, lines) in enumerate(zip(texts, per_text, strict=True)):
        line_vectors = vectors[[index[line] for line in lines]]
        out[row, :dim] = vectors[index[text.strip()]]
        out[row, dim : 2 * dim] = line_vectors.mean(axis=0)
        out[row, 2 * dim : 3 * dim] = line_vectors.max(axis=0)
        out[row, 3 * dim :] = line_vectors[0]
    return out


def softmax(logits: FloatArray) -> FloatArray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probabilities: FloatArray = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    return probabilities


def fit_softmax_regression(
    features: FloatArray, targets: npt.NDArray[np.int64], n_classes: int, c: float, max_iter: int = 500
) -> tuple[FloatArray, FloatArray]:
    """Multinomial logistic regression with an L2 penalty, C as in scikit-learn.

    Minimises ``C * sum(cross-entropy) + ||W||² / 2`` (bias not penalised) with full-batch L-BFGS:
    deterministic, a second on CPU for a few thousand rows, and no extra dependency.
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).double()
    y = torch.from_numpy(np.asarray(targets, dtype=np.int64))
    weight = torch.zeros(x.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, tolerance_grad=1e-7, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = c * torch.nn.functional.cross_entropy(x @ weight + bias, y, reduction="sum")
        loss = loss + 0.5 * (weight * weight).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimiser.step(closure)  # type: ignore[no-untyped-call]
    return weight.detach().float().numpy(), bias.detach().float().numpy()


def parse_head_manifest(path: Path) -> HeadManifest:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return HeadManifest(
            labels=tuple(str(label) for label in data["labels"]),
            head_sha256=str(data["head"]["sha256"]).lower(),
            embedding_model=str(data["embedding_model"]["name"]),
            embedding_sha256=str(data["embedding_model"]["sha256"]).lower(),
            feature_recipe=str(data["features"]["recipe"]),
            metrics=dict(data.get("metrics", {})),
            path=path,
            kind=str(data["head"].get("kind", "softmax-regression")),
            file=str(data["head"].get("file", "head.npz")),
            lora=(
                LoraSettings(
                    int(data["lora"]["rank"]), float(data["lora"]["alpha"]), int(data["lora"]["max_length"])
                )
                if "lora" in data
                else None
            ),
        )
    except (OSError, KeyError, TypeError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise ModelIntegrityError(
            f"section classifier manifest {path} is missing or malformed ({exc!r}); "
            "retrain with scripts/train_section_classifier.py or reinstall ambient"
        ) from None


class SectionClassifier:
    """A checked head on a checked encoder; :meth:`predict` labels passages with section headers."""

    def __init__(
        self,
        manifest: HeadManifest,
        weight: FloatArray,
        bias: FloatArray,
        encoder: SentenceEncoder,
        adapted: AdaptedEncoder | None = None,
    ):
        self.manifest = manifest
        self.labels = manifest.labels
        self._weight = weight
        self._bias = bias
        self.encoder = encoder
        self._adapted = adapted

    @classmethod
    def load(cls, folder: Path | None = None, encoder: SentenceEncoder | None = None) -> SectionClassifier:
        """Load the head (``head.npz``, or LoRA adapters) after checking its sha256 and the encoder's."""
        folder = folder or data_dir("models") / HEAD_DIR
        manifest = parse_head_manifest(folder / "head.toml")
        head_path = folder / manifest.file
        try:
            data = head_path.read_bytes()
        except OSError:
            raise ModelIntegrityError(
                f"{head_path} is missing; retrain with scripts/train_section_classifier.py"
            ) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != manifest.head_sha256:
            raise ModelIntegrityError(
                f"section classifier: sha256 of {head_path} is {actual}, {manifest.path} expects "
                f"{manifest.head_sha256}. The file was changed or damaged; reinstall ambient or retrain"
            )
        expected_recipe = LORA_RECIPE if manifest.kind == "lora" else FEATURE_RECIPE
        if manifest.feature_recipe != expected_recipe:
            raise ModelIntegrityError(
                f"{manifest.path} was trained on features {manifest.feature_recipe!r}, this ambient "
                f"computes {expected_recipe!r}; retrain with scripts/train_section_classifier.py"
            )
        encoder = encoder or get_encoder(
            manifest.embedding_model if manifest.embedding_model else DEFAULT_EMBEDDING_MODEL
        )
        if encoder.ref.sha256 != manifest.embedding_sha256:
            raise ModelIntegrityError(
                f"{manifest.path} was trained on embedding model {manifest.embedding_model} "
                f"(sha256 {manifest.embedding_sha256}), not on {encoder.ref.name} "
                f"(sha256 {encoder.ref.sha256}); use that model or retrain the head"
            )
        if manifest.kind == "lora":
            return cls._load_lora(manifest, data, head_path, encoder)
        import io

        with np.load(io.BytesIO(data)) as arrays:
            weight = arrays["weight"].astype(np.float32)
            bias = arrays["bias"].astype(np.float32)
        if weight.shape != (4 * encoder.dimension, len(manifest.labels)) or bias.shape != (
            len(manifest.labels),
        ):
            raise ModelIntegrityError(f"{head_path}: head shape {weight.shape} does not fit {manifest.path}")
        return cls(manifest, weight, bias, encoder)

    @classmethod
    def _load_lora(
        cls, manifest: HeadManifest, data: bytes, path: Path, encoder: SentenceEncoder
    ) -> SectionClassifier:
        from safetensors import SafetensorError
        from safetensors.torch import load as load_safetensors

        if manifest.lora is None:
            raise ModelIntegrityError(f'{manifest.path} has kind = "lora" but no [lora] table')
        try:
            tensors = load_safetensors(data)
        except SafetensorError as exc:
            raise ModelIntegrityError(f"{path} is not a safetensors file ({exc})") from None
        weight, bias = tensors.pop("head.weight", None), tensors.pop("head.bias", None)
        shape = (len(manifest.labels), encoder.dimension)
        if weight is None or bias is None or tuple(weight.shape) != shape:
            raise ModelIntegrityError(f"{path}: no head of shape {shape}; retrain the classifier")
        adapted = AdaptedEncoder(encoder, tensors, weight, bias, manifest.lora)
        empty = np.zeros((0, 0), dtype=np.float32)
        return cls(manifest, empty, empty, encoder, adapted)

    def probabilities(self, texts: Sequence[str]) -> FloatArray:
        """An ``(n, n_labels)`` array of probabilities, columns in :attr:`labels` order."""
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        if self._adapted is not None:
            return softmax(self._adapted.logits(texts))
        return softmax(featurise(self.encoder, texts) @ self._weight + self._bias)

    def predict(self, texts: Sequence[str], top_k: int = 3) -> list[SectionPrediction]:
        probabilities = self.probabilities(texts)
        predictions = []
        for row in probabilities:
            order = np.argsort(-row)[: max(1, top_k)]
            top = tuple((self.labels[i], float(row[i])) for i in order)
            predictions.append(SectionPrediction(label=top[0][0], probability=top[0][1], top=top))
        return predictions


@cache
def load_section_map(path: Path = SECTION_MAP) -> dict[str, SectionMapping]:
    """Header → template section keys, from ``section_map.toml``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return {
            header: SectionMapping(header, str(entry["title"]), tuple(str(s) for s in entry["sections"]))
            for header, entry in data["headers"].items()
        }
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise ModelIntegrityError(f"section map {path} is malformed ({exc!r}); reinstall ambient") from None


def note_section(header: str, template_keys: Iterable[str]) -> str | None:
    """The first of ``header``'s preferred sections that the template has, or None."""
    mapping = load_section_map().get(header)
    if mapping is None:
        return None
    keys = set(template_keys)
    return next((key for key in mapping.sections if key in keys), None)
