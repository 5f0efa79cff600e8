"""Where the bridge listens and which browser origins may use it.

``ambient.toml`` has no ``[editor]`` section yet (config.py rejects unknown sections), so these
come from flags and from ``AMBIENT_EDITOR_PORT`` / ``AMBIENT_EDITOR_ORIGINS`` /
``AMBIENT_EDITOR_EXTENSION_IDS`` (comma-separated). TODO(merge): move into config.py's sections.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ambient.errors import ConfigError
from ambient.localsock import LocalSocketPolicy

DEFAULT_PORT = 47615
SUBPROTOCOL = "ambient.editor.v1"
_EXTENSION_ID = re.compile(r"^[a-p]{32}$")  # Chrome ids: 32 letters, a to p
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$|^https?://\[[0-9a-fA-F:]+\](:\d{1,5})?$")


@dataclass(frozen=True)
class BridgeSettings:
    port: int = DEFAULT_PORT
    page_origins: tuple[str, ...] = ()  # EHR pages that may use the bridge (e.g. https://ehr.example.org)
    extension_ids: tuple[str, ...] = ()  # our extension as installed in this browser

    def policy(self) -> LocalSocketPolicy:
        origins = self.page_origins + tuple(f"chrome-extension://{i}" for i in self.extension_ids)
        # Browsers always send Origin; allowing none lets the CLI's own tools and tests connect.
        return LocalSocketPolicy(allowed_origins=origins, subprotocol=SUBPROTOCOL, max_message_bytes=1 << 20)


def check_origin(origin: str) -> str:
    origin = origin.strip().rstrip("/")
    if not _ORIGIN.match(origin):
        raise ConfigError(
            f"{origin!r} is not a web origin; give scheme://host[:port] with no path, "
            "e.g. https://ehr.example.org"
        )
    return origin


def check_extension_id(ext: str) -> str:
    ext = ext.strip()
    if not _EXTENSION_ID.match(ext):
        raise ConfigError(
            f"{ext!r} is not a Chrome extension id (32 letters a–p); copy it from chrome://extensions"
        )
    return ext


def _split(value: str) -> list[str]:
    return [v for v in (p.strip() for p in value.split(",")) if v]


def bridge_settings(
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    origins: Iterable[str] = (),
    extension_ids: Iterable[str] = (),
) -> BridgeSettings:
    """Environment first, then flags (flags add origins; a flag port replaces the env port)."""
    env = os.environ if env is None else env
    raw_port = env.get("AMBIENT_EDITOR_PORT", "")
    try:
        env_port = int(raw_port) if raw_port else DEFAULT_PORT
    except ValueError:
        raise ConfigError(f"$AMBIENT_EDITOR_PORT must be a port number, got {raw_port!r}") from None
    chosen = env_port if port is None else port
    if not 0 <= chosen <= 65535:
        raise ConfigError(f"port {chosen} is out of range 0–65535")
    page = [check_origin(o) for o in [*_split(env.get("AMBIENT_EDITOR_ORIGINS", "")), *origins]]
    env_ids = _split(env.get("AMBIENT_EDITOR_EXTENSION_IDS", ""))
    ids = [check_extension_id(i) for i in [*env_ids, *extension_ids]]
    return BridgeSettings(chosen, tuple(dict.fromkeys(page)), tuple(dict.fromkeys(ids)))
