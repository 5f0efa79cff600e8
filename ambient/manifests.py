"""Manifests under ``models/``: what each model or data file is, where it comes from, its sha256.

One format for every kind of artefact we load (speech models, embedding models, speaker encoders,
packaged data such as the drug dictionary), so each is found the same way and refused the same
way when its bytes are not the ones reviewed. Speech-model routing lives in ``ambient.asr.models``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from ambient.errors import ModelIntegrityError, UnknownModelError
from ambient.hashing import package_file, verify_sha256
from ambient.resources import data_dir


@dataclass(frozen=True)
class ManifestFile:
    name: str
    sha256: str
    source: str | None = None  # "module:relative/path"
    parts: tuple[str, ...] = ()
    part_sha256: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelManifest:
    name: str
    kind: str  # speech | embeddings | speaker | data | ...
    version: str
    description: str
    upstream: str
    languages: tuple[str, ...]
    default: bool
    packages: tuple[str, ...]
    files: tuple[ManifestFile, ...]
    manifest_path: Path

    @property
    def size_bytes(self) -> int | None:
        """Total size of the installed weights, or None when a source package is missing."""
        total = 0
        for file in self.files:
            for spec in (file.source,) if file.source else file.parts:
                path = package_file(spec, required=False)
                if path is None:
                    return None
                total += path.stat().st_size
        return total

    @property
    def installed(self) -> bool:
        return self.size_bytes is not None


def parse_manifest(path: Path) -> ModelManifest:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        files = tuple(
            ManifestFile(
                name=str(f["name"]),
                sha256=str(f["sha256"]).lower(),
                source=f.get("from"),
                parts=tuple(f.get("parts", ())),
                part_sha256=tuple(str(s).lower() for s in f.get("part_sha256", ())),
            )
            for f in data["files"]
        )
        manifest = ModelManifest(
            name=str(data["name"]),
            kind=str(data.get("kind", "speech")),
            version=str(data["version"]),
            description=str(data.get("description", "")),
            upstream=str(data.get("upstream", "")),
            languages=tuple(data.get("languages", ())),
            default=bool(data.get("default", False)),
            packages=tuple(data.get("packages", ())),
            files=files,
            manifest_path=path,
        )
    except (KeyError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise ModelIntegrityError(f"model manifest {path} is malformed ({exc!r})") from None
    for file in manifest.files:
        if bool(file.source) == bool(file.parts) or len(file.parts) != len(file.part_sha256):
            raise ModelIntegrityError(
                f"model manifest {path}: file {file.name} needs either 'from' or 'parts' "
                "with one 'part_sha256' per part"
            )
    return manifest


def load_manifests(directory: Path | None = None, kind: str = "speech") -> list[ModelManifest]:
    """Manifests of one kind (speech models by default) from ``models/``, the default first."""
    directory = directory or data_dir("models")
    manifests = (parse_manifest(p) for p in directory.glob("*.toml"))
    return sorted(
        (m for m in manifests if m.kind == kind),
        key=lambda m: (not m.default, m.name),
    )


def manifest_named(name: str, directory: Path | None = None) -> ModelManifest:
    """The manifest whose ``name`` is ``name``, whatever its kind."""
    directory = directory or data_dir("models")
    for path in sorted(directory.glob("*.toml")):
        manifest = parse_manifest(path)
        if manifest.name == name:
            return manifest
    raise UnknownModelError(f"no manifest named '{name}' under {directory}")


def verified_files(manifest: ModelManifest) -> dict[str, Path]:
    """Each file of a single-source manifest, located in its package and sha256-checked now.

    Called on every load, not once at install: a file changed after install is still refused.
    """
    found: dict[str, Path] = {}
    for file in manifest.files:
        if not file.source:
            raise ModelIntegrityError(
                f"manifest {manifest.manifest_path}: {file.name} has no 'from'; split files are "
                "only supported for speech models"
            )
        path = package_file(file.source)
        assert path is not None  # required=True raises instead
        verify_sha256(path, file.sha256, f"{manifest.kind} {manifest.name}")
        found[file.name] = path
    return found
