"""Locate the data folders that ship with ambient: ``models/`` and ``clinical_templates/``.

They live at the repository root (the product's layout keeps data beside, not inside, the code).
A wheel carries them as ``ambient/_data/<name>`` (see ``pyproject.toml``); an editable install or a
source checkout finds them at the root. One function hides the difference.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the shipped folder ``name`` (``"models"`` or ``"clinical_templates"``)."""
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"ambient's {name}/ folder is missing from this installation (looked in "
        f"{_PACKAGE_DIR / '_data'} and {_PACKAGE_DIR.parent}); reinstall the package"
    )
