"""``ambient models list``: the speech models ambient knows, and which one is the default."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from ambient.manifests import load_manifests


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("models", help="list the packaged speech models")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="name, version, languages, size, package, sha256")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    for manifest in load_manifests():
        size = manifest.size_bytes
        model_bin = next((f.sha256 for f in manifest.files if f.name == "model.bin"), "")
        rows.append(
            {
                "name": manifest.name,
                "default": manifest.default,
                "version": manifest.version,
                "languages": list(manifest.languages),
                "size_mb": round(size / 1e6, 1) if size is not None else None,
                "installed": size is not None,
                "packages": list(manifest.packages),
                "sha256": model_bin,
                "description": manifest.description,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="Speech models (faster-whisper, CTranslate2)")
    for column in ("name", "version", "languages", "size", "source package", "sha256 (model.bin)"):
        table.add_column(column, overflow="fold")
    for row in rows:
        name = f"{row['name']} (default)" if row["default"] else str(row["name"])
        shown = f"{row['size_mb']} MB" if row["installed"] else "not installed"
        table.add_row(
            name,
            str(row["version"]),
            ", ".join(row["languages"]),
            shown,
            " + ".join(row["packages"]),
            str(row["sha256"])[:16] + "…",
        )
    Console().print(table)
    print("Full sha256 of every file: `ambient models list --json` and models/*.toml.")
    print(
        "Also accepted by --model: a local CTranslate2 folder, or a faster-whisper model name "
        "(downloaded by faster-whisper where the machine has network)."
    )
    return 0
