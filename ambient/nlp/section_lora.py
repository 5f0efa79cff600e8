"""A fine-tuned all-MiniLM-L6-v2 for section headers: LoRA adapters merged into the checked encoder.

The frozen encoder plus a linear head stopped at 0.70–0.76 test-1 accuracy on MTS-Dialog; the
systems near 0.80 fine-tuned the encoder. Fine-tuning all 22 M weights would mean shipping a 90 MB
model, so ``scripts/train_section_classifier.py`` trains low-rank adapters (LoRA, with ``peft``)
on the attention projections of the top layers and a linear head over the mean-pooled tokens.
What we ship is only the adapters and the head (float16, a few hundred KB); at load time each
adapted weight becomes ``W + scaling · B @ A`` on a private copy of the sha256-checked encoder.
The run-time path therefore needs neither ``peft`` nor anything that was not checked: the base
weights come through :mod:`ambient.nlp.embeddings` and the adapter file's sha256 is in the manifest.

Texts are tokenised exactly as in training (same tokenizer, ``max_length`` from the manifest) and
pooled with a plain mean over the attention mask (no L2 normalisation: the head needs the length).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ambient.errors import ModelIntegrityError
from ambient.nlp.embeddings import SentenceEncoder

if TYPE_CHECKING:
    import torch

LORA_RECIPE = "minilm-lora-meanpool.v1"
ADAPTER_SUFFIXES = (".lora_A", ".lora_B")
INFERENCE_BATCH = 16

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class LoraSettings:
    """What the manifest records about the adapters; training and loading must agree on all of it."""

    rank: int
    alpha: float
    max_length: int

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


def base_model_copy(encoder: SentenceEncoder) -> torch.nn.Module:
    """A private copy of the checked BERT encoder, to adapt without touching the shared one."""
    return copy.deepcopy(encoder.model)


def tokenise(encoder: SentenceEncoder, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    batch = encoder.tokenizer(
        list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    return dict(batch)


def merge_adapters(model: torch.nn.Module, adapters: Mapping[str, torch.Tensor], scaling: float) -> int:
    """Add ``scaling · B @ A`` to each adapted Linear; returns how many weights were changed.

    ``adapters`` maps ``<module path>.lora_A`` / ``.lora_B`` to their matrices (``A``: rank × in,
    ``B``: out × rank), the module paths being those of :func:`base_model_copy`'s model.
    """
    import torch

    modules = dict(model.named_modules())
    paths = sorted({key.rsplit(".", 1)[0] for key in adapters})
    for path in paths:
        linear = modules.get(path)
        a, b = adapters.get(path + ".lora_A"), adapters.get(path + ".lora_B")
        if not isinstance(linear, torch.nn.Linear) or a is None or b is None:
            raise ModelIntegrityError(f"section classifier adapters name {path!r}, which the encoder lacks")
        if a.shape != (b.shape[1], linear.in_features) or b.shape[0] != linear.out_features:
            raise ModelIntegrityError(f"section classifier adapter {path!r} does not fit its layer")
        with torch.no_grad():
            linear.weight += scaling * (b.float() @ a.float())
    return len(paths)


class AdaptedEncoder:
    """The checked encoder with the adapters merged in, and the head over its mean-pooled tokens."""

    def __init__(
        self,
        encoder: SentenceEncoder,
        adapters: Mapping[str, torch.Tensor],
        head_weight: torch.Tensor,
        head_bias: torch.Tensor,
        settings: LoraSettings,
    ) -> None:
        import torch

        self.encoder = encoder
        self.settings = settings
        model = base_model_copy(encoder)
        merged = merge_adapters(model, adapters, settings.scaling)
        if merged == 0:
            raise ModelIntegrityError("section classifier: the adapter file holds no adapters")
        model.eval()
        self._model = model
        self._weight = head_weight.float()
        self._bias = head_bias.float()
        if self._weight.shape[1] != encoder.dimension:
            raise ModelIntegrityError(f"section classifier head has shape {tuple(self._weight.shape)}")
        self._lock = threading.Lock()
        self._torch = torch

    def logits(self, texts: Sequence[str]) -> FloatArray:
        """``(n, n_labels)`` logits; texts sorted by length into batches, rows in input order."""
        torch = self._torch
        out = np.zeros((len(texts), self._weight.shape[0]), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with self._lock, torch.inference_mode():
            for start in range(0, len(order), INFERENCE_BATCH):
                rows = order[start : start + INFERENCE_BATCH]
                batch = tokenise(self.encoder, [texts[i] for i in rows], self.settings.max_length)
                hidden = self._model(**batch).last_hidden_state
                pooled = mean_pool(hidden, batch["attention_mask"])
                out[rows] = (pooled @ self._weight.T + self._bias).numpy()
        return out
