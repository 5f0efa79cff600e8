"""The training loop keeps the best-on-validation adapters, and hands each new best to ``on_best``.

``on_best`` is what lets a run stopped part-way on a loaded 2-core machine leave a usable artefact,
so it must fire exactly when validation improves (ties keep the earlier epoch) and with the
export that :func:`train` itself would return. A scripted stand-in for the LoRA trainer keeps this
to a fraction of a second: the loop's bookkeeping does not depend on the encoder.
"""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

torch = pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_section_classifier.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_section_classifier", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ScriptedTrainer:
    """Trains a real (tiny) linear model, but validation predictions follow a fixed script."""

    device = "cpu"

    def __init__(self, validation_predictions: list[list[int]]) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Linear(4, 4)
        self.head = torch.nn.Linear(4, 2)
        self._script = iter(validation_predictions)
        self.exports = 0

    def cache(self, texts: list[str], batch_size: int, rng: random.Random) -> list[tuple[list[int], object]]:
        rows = list(range(len(texts)))
        return [(rows, torch.randn(len(texts), 4))]

    def forward(self, cached: object) -> object:
        return self.head(self.model(cached))

    def predict(self, batches: list[tuple[list[int], object]], n: int) -> np.ndarray:
        logits = np.zeros((n, 2), dtype=np.float32)
        for row, label in enumerate(next(self._script)):
            logits[row, label] = 1.0
        return logits

    def export(self) -> dict[str, object]:
        self.exports += 1
        return {"export": self.exports}


def test_on_best_fires_only_when_validation_improves() -> None:
    module = _script()
    # validation gold is [A, B]: accuracies 0.5, 0.5 (a tie), 1.0, 0.0
    trainer = ScriptedTrainer([[0, 0], [0, 0], [0, 1], [1, 0]])
    seen: list[tuple[dict[str, object], list[float], int]] = []
    best, curve, epoch = module.train(
        trainer,
        ["t1", "t2", "t3"],
        [0, 1, 0],
        (["v1", "v2"], ["A", "B"]),
        ["A", "B"],
        epochs=4,
        lr=1e-3,
        batch_size=16,
        seed=0,
        on_best=lambda export, so_far, at: seen.append((export, list(so_far), at)),
    )
    assert curve == [0.5, 0.5, 1.0, 0.0]
    assert epoch == 3 and best == {"export": 2}
    assert seen == [({"export": 1}, [0.5], 1), ({"export": 2}, [0.5, 0.5, 1.0], 3)]


@pytest.mark.model
def test_cached_lower_layers_reproduce_the_encoders_own_forward_pass() -> None:
    """The trainer runs the frozen layers once and the adapted ones each epoch; together they must
    give what the whole encoder gives (fresh adapters are zero), padding included.

    This calls transformers' private mask builder, whose signature changed within 5.x (5.25 added
    ``position_ids`` and broke training); a real forward pass is the check that it still fits.
    """
    pytest.importorskip("peft")
    from ambient.nlp.embeddings import get_encoder
    from ambient.nlp.section_lora import LoraSettings, mean_pool, tokenise

    script = _script()
    encoder = get_encoder()
    trainer = script.Trainer(encoder, 3, LoraSettings(rank=4, alpha=8.0, max_length=64), 0.0, 0, "cpu", 2)
    texts = ["Doctor: Any allergies?\nPatient: Penicillin gives me a rash.", "Patient: No."]
    [(rows, cached)] = trainer.cache(texts, 2, random.Random(0))
    hidden, mask4d, mask = cached
    with torch.inference_mode():
        for layer in trainer.base.encoder.layer[trainer.first :]:
            hidden = layer(hidden, mask4d)
        ours = mean_pool(hidden, mask)
        batch = tokenise(encoder, [texts[i] for i in rows], 64)
        whole = mean_pool(trainer.base(**batch).last_hidden_state, batch["attention_mask"])
    assert torch.allclose(ours, whole, atol=1e-5)


def test_hold_out_moves_a_seeded_draw_of_training_dialogues_into_validation() -> None:
    hold_out = _script().hold_out
    texts = {"train": [f"t{i}" for i in range(10)], "validation": ["v0", "v1"]}
    gold = {"train": [f"g{i}" for i in range(10)], "validation": ["h0", "h1"]}
    hold_out(texts, gold, 3)
    assert len(texts["train"]) == 7 and len(texts["validation"]) == 5
    assert texts["validation"][-2:] == ["v0", "v1"] and gold["validation"][-2:] == ["h0", "h1"]
    # every dialogue is in exactly one split, still paired with its own header
    assert sorted(texts["train"] + texts["validation"][:3]) == sorted(f"t{i}" for i in range(10))
    pairs = zip(texts["train"] + texts["validation"], gold["train"] + gold["validation"], strict=True)
    assert all(t[1:] == g[1:] for t, g in pairs)
    # the same draw every time, so runs compared on it see the same 300 dialogues
    again = {"train": [f"t{i}" for i in range(10)], "validation": ["v0", "v1"]}
    hold_out(again, {"train": [f"g{i}" for i in range(10)], "validation": ["h0", "h1"]}, 3)
    assert again == texts
