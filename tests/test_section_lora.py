"""The run-time LoRA merge (no peft) gives what peft's own adapted model gives, and refuses bad files.

A tiny randomly initialised BERT stands in for all-MiniLM-L6-v2: the merge is pure linear algebra
on module paths, the same code whatever the size, and this keeps the test to a second on CPU.
"""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

from transformers import BertConfig, BertModel  # noqa: E402

from ambient.errors import ModelIntegrityError  # noqa: E402
from ambient.nlp.section_lora import mean_pool, merge_adapters  # noqa: E402

TARGETS = r"encoder\.layer\.(1)\.attention\.(self\.(query|key|value)|output\.dense)"


def tiny_bert() -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    model = BertModel(config, add_pooling_layer=False)
    model.eval()
    return model


def adapted(base: BertModel, rank: int = 4, alpha: float = 8.0) -> tuple[object, dict[str, torch.Tensor]]:
    """peft's model with non-zero B matrices (fresh LoRA is a no-op) and its adapters as we save them."""
    config = peft.LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=TARGETS)
    model = peft.get_peft_model(copy.deepcopy(base), config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)
    model.eval()
    adapters = {
        key.removeprefix("base_model.model.").removesuffix(".weight"): value.detach().clone()
        for key, value in peft.get_peft_model_state_dict(model).items()
    }
    return model, adapters


def pooled(model: object, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state  # type: ignore[operator]
    return mean_pool(hidden, mask)


def test_merged_weights_reproduce_peft() -> None:
    base = tiny_bert()
    model, adapters = adapted(base)
    assert len(adapters) == 8  # A and B for four projections in layer 1 only
    merged = copy.deepcopy(base)
    assert merge_adapters(merged, adapters, scaling=8.0 / 4) == 4
    ids = torch.randint(0, 50, (3, 7))
    mask = torch.tensor([[1] * 7, [1] * 5 + [0] * 2, [1] * 3 + [0] * 4])
    expected, got = pooled(model, ids, mask), pooled(merged, ids, mask)
    assert torch.allclose(expected, got, atol=1e-5)
    assert not torch.allclose(pooled(base, ids, mask), got, atol=1e-3)  # the adapters did change it


def test_padding_does_not_change_a_texts_pooled_vector() -> None:
    base = tiny_bert()
    ids = torch.randint(1, 50, (1, 5))
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    alone = pooled(base, ids, torch.ones(1, 5, dtype=torch.long))
    batched = pooled(base, padded, torch.tensor([[1] * 5 + [0] * 3]))
    assert torch.allclose(alone, batched, atol=1e-5)


def test_adapters_for_missing_or_misshapen_layers_are_refused() -> None:
    base = tiny_bert()
    _, adapters = adapted(base)
    stray = {k.replace("layer.1", "layer.7"): v for k, v in adapters.items()}
    with pytest.raises(ModelIntegrityError, match="lacks"):
        merge_adapters(copy.deepcopy(base), stray, 2.0)
    key = next(k for k in adapters if k.endswith("lora_A"))
    wrong = dict(adapters, **{key: torch.zeros(4, 31)})
    with pytest.raises(ModelIntegrityError, match="does not fit"):
        merge_adapters(copy.deepcopy(base), wrong, 2.0)
    half = {k: v for k, v in adapters.items() if not k.endswith("lora_B")}
    with pytest.raises(ModelIntegrityError):
        merge_adapters(copy.deepcopy(base), half, 2.0)


LORA_MANIFEST = """name = "test-lora"
labels = ["A", "B", "C"]
[head]
file = "adapters.safetensors"
sha256 = "{sha}"
kind = "lora"
[features]
recipe = "minilm-lora-meanpool.v1"
[lora]
rank = 2
alpha = 4.0
max_length = 32
[embedding_model]
name = "all-minilm-l6-v2"
sha256 = "{encoder_sha}"
"""


@pytest.mark.model
def test_lora_artefact_loads_on_the_checked_encoder_and_refuses_tampering(tmp_path: object) -> None:
    import hashlib
    from pathlib import Path

    from safetensors.torch import save

    from ambient.nlp.embeddings import get_encoder
    from ambient.nlp.section_classifier import SectionClassifier

    folder = Path(str(tmp_path))
    encoder = get_encoder()
    torch.manual_seed(0)
    path = "encoder.layer.5.attention.self.query"
    tensors = {
        f"{path}.lora_A": torch.randn(2, 384).half(),
        f"{path}.lora_B": torch.randn(384, 2).half(),
        "head.weight": torch.randn(3, 384).half(),
        "head.bias": torch.zeros(3).half(),
    }
    payload = save(tensors)
    (folder / "adapters.safetensors").write_bytes(payload)
    manifest = LORA_MANIFEST.format(sha=hashlib.sha256(payload).hexdigest(), encoder_sha=encoder.ref.sha256)
    (folder / "head.toml").write_text(manifest, encoding="utf-8")
    before = encoder.encode(["Patient: No allergies."])
    classifier = SectionClassifier.load(folder, encoder=encoder)
    probabilities = classifier.probabilities(["Doctor: Any allergies?", "Patient: No."])
    assert probabilities.shape == (2, 3)
    assert torch.allclose(torch.from_numpy(probabilities).sum(dim=1), torch.ones(2), atol=1e-5)
    # The shared encoder is untouched: the adapters went into a private copy.
    assert not any("lora" in name for name, _ in encoder.model.named_parameters())
    assert (encoder.encode(["Patient: No allergies."]) == before).all()
    tampered = bytearray(payload)
    tampered[len(tampered) // 2] ^= 0xFF
    (folder / "adapters.safetensors").write_bytes(bytes(tampered))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        SectionClassifier.load(folder, encoder=encoder)
