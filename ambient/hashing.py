"""Content hashes: the identity of inputs, models and outputs in lineage, integrity and resumption.

Every model or data file ambient loads from an installed package is found through
:func:`package_file` and checked with :func:`verify_sha256` against the manifest under ``models/``,
so a changed or damaged file is refused before it is deserialised.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from ambient.errors import ModelIntegrityError, UnknownModelError

_BLOCK_BYTES = 1 << 20


def sha256_file(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks so a 3-hour recording costs no memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def package_file(spec: str, *, required: bool = True) -> Path | None:
    """Path of ``"package:relative/path"`` inside an installed package, without importing it.

    Importing is avoided on purpose: some data packages run code (or read pickles from the home
    folder) at import time, and we only want their files.
    """
    module, _, relative = spec.partition(":")
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        if not required:
            return None
        raise UnknownModelError(
            f"the Python package providing '{module}' is not installed; "
            "reinstall ambient (`pip install -e .`) so its model and data packages come with it"
        )
    path = Path(next(iter(found.submodule_search_locations))) / relative
    if not path.is_file():
        if not required:
            return None
        raise ModelIntegrityError(f"{path} is missing from its package; reinstall that package")
    return path


def verify_sha256(path: Path, expected: str, what: str) -> None:
    """Refuse a file whose content is not the one the manifest names."""
    actual = sha256_file(path)
    if actual != expected:
        raise ModelIntegrityError(
            f"{what}: sha256 of {path} is {actual}, the manifest expects {expected}. "
            "The file was changed or damaged; reinstall its package (or delete it from the "
            "model cache) and try again"
        )
