"""Settings: ``ambient.toml`` → typed dataclasses, one section per stage.

Precedence, lowest first: built-in defaults, the TOML file, ``AMBIENT_<SECTION>_<KEY>`` environment
variables, then command-line flags (applied by the CLI with :func:`dataclasses.replace`).

All state ``ambient`` keeps lives under one root so a site can back it up, encrypt it or wipe it
as one folder: ``$AMBIENT_HOME`` when set, otherwise the platform's per-user directories.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

from ambient.errors import ConfigError

APP_NAME = "ambient"


@dataclass(frozen=True)
class Paths:
    """Where state lives. ``home`` is set only when ``$AMBIENT_HOME`` is."""

    config_dir: Path
    data_dir: Path
    cache_dir: Path
    log_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "ambient.toml"

    @property
    def model_cache(self) -> Path:
        return self.cache_dir / "models"

    @property
    def default_inbox(self) -> Path:
        return self.data_dir / "inbox"

    @property
    def samples_dir(self) -> Path:
        return self.data_dir / "samples"


def resolve_paths(env: dict[str, str] | None = None) -> Paths:
    env = dict(os.environ) if env is None else env
    home = env.get("AMBIENT_HOME")
    if home:
        root = Path(home).expanduser()
        return Paths(root / "config", root / "data", root / "cache", root / "logs")
    return Paths(
        Path(platformdirs.user_config_dir(APP_NAME)),
        Path(platformdirs.user_data_dir(APP_NAME)),
        Path(platformdirs.user_cache_dir(APP_NAME)),
        Path(platformdirs.user_log_dir(APP_NAME)),
    )


@dataclass(frozen=True)
class AsrSettings:
    model: str = "tiny.en"
    language: str | None = "en"
    beam_size: int = 5
    compute_type: str = "int8"
    cpu_threads: int = 0  # 0: let CTranslate2 pick (all cores)
    vad_filter: bool = True
    clinical_prompt: bool = False
    word_timestamps: bool = True
    batch_size: int = 8  # 30-second windows decoded together
    block_s: float = 300.0
    speakers: str = "none"  # who said what: auto | channels | embeddings | none (speakers extra)


@dataclass(frozen=True)
class NotesSettings:
    template: str = "soap"
    templates_dir: str = ""  # extra folder of user templates, searched before the built-in ones
    unsupported: str = "remove"  # faithfulness check: "remove" or "mark" unsupported statements
    # Abstractive drafting through the site's OpenAI-compatible endpoint (ambient/notes/llm.py).
    llm_url: str = ""  # empty: off. http only to loopback; otherwise https. The prompt holds PHI.
    llm_model: str = ""  # empty: the first model the endpoint lists
    llm_timeout_s: float = 60.0
    llm_api_key: str = field(default="", repr=False)  # bearer key; or $AMBIENT_NOTES_LLM_API_KEY


@dataclass(frozen=True)
class InboxSettings:
    dir: str = ""  # empty: <data_dir>/inbox


@dataclass(frozen=True)
class BatchSettings:
    workers: int = 1


@dataclass(frozen=True)
class DeliverySettings:
    # Where drafted notes go besides the local inbox, for `ambient batch` (and the agent): targets
    # as `ambient deliver --to` takes them. TOML list, or comma-separated in AMBIENT_DELIVERY_TARGETS.
    targets: tuple[str, ...] = ()


@dataclass(frozen=True)
class AgentSettings:
    # The background agent's loopback WebSocket (``ambient agent``); ``ambient encounter`` uses the
    # same port. Origins: web pages (an EHR) allowed to connect; local tools send no Origin.
    port: int = 47616
    origins: tuple[str, ...] = ()
    # Prometheus metrics (ambient/agent/metrics.py) on 127.0.0.1 only; 0 turns them off.
    metrics_port: int = 47617
    # After a crash, an interrupted encounter waits this long for its client to resume it (same
    # encounter_id) before it is finalised; 0: finalise at once (ambient/agent/resume.py).
    resume_window_s: float = 0.0
    # Audio of an encounter started from the editor page: "microphone", or "replay:FILE" (demos).
    editor_source: str = "microphone"
    # Seconds between the agent's passes over the outbox (notes a peer did not take at stop go out
    # when it is back); 0: only `ambient outbox drain` retries.
    outbox_retry_s: float = 30.0


@dataclass(frozen=True)
class LoggingSettings:
    # Agent logs on stderr (or <log dir>/agent.log): "text" for people, "json" lines for a collector.
    # Either way ids, hashes, durations and counts only (ambient/logs.py); `--log-json` overrides.
    format: str = "text"


@dataclass(frozen=True)
class ProtectSettings:
    # Encryption at rest (ambient/protect/): journals, outbox rows and batch outputs are sealed with
    # AES-256-GCM. key_store: "auto" (the OS keyring when a real one exists, else a 0600 key file),
    # "keyring" or "file". batch_dirs: batch output folders `ambient keys rotate` and `purge` visit
    # besides those ambient remembers writing to.
    encrypt: bool = True
    key_store: str = "auto"
    plain_batch_outputs: bool = False
    batch_dirs: tuple[str, ...] = ()


@dataclass(frozen=True)
class RetentionSettings:
    # Audio is deleted once the encounter's note is delivered everywhere, unless keep_audio.
    # older_than: the default age for `ambient purge` (e.g. "30d", "12h").
    keep_audio: bool = False
    older_than: str = "30d"


@dataclass(frozen=True)
class Settings:
    asr: AsrSettings = field(default_factory=AsrSettings)
    notes: NotesSettings = field(default_factory=NotesSettings)
    inbox: InboxSettings = field(default_factory=InboxSettings)
    batch: BatchSettings = field(default_factory=BatchSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    agent: AgentSettings = field(default_factory=AgentSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    protect: ProtectSettings = field(default_factory=ProtectSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)

    def inbox_dir(self, paths: Paths) -> Path:
        return Path(self.inbox.dir).expanduser() if self.inbox.dir else paths.default_inbox


_SECTIONS: dict[str, type[Any]] = {
    "asr": AsrSettings,
    "notes": NotesSettings,
    "inbox": InboxSettings,
    "batch": BatchSettings,
    "delivery": DeliverySettings,
    "agent": AgentSettings,
    "logging": LoggingSettings,
    "protect": ProtectSettings,
    "retention": RetentionSettings,
}


def _coerce(section: str, key: str, value: Any, default: Any, origin: str) -> Any:
    """Convert a TOML or environment value to the type of the default, or say what is wrong."""
    where = f"[{section}] {key} in {origin}"
    if isinstance(default, tuple):
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"{where}: expected a list of text, got {value!r}")
        return tuple(i.strip() for i in items if i.strip())
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            return value.lower() in {"1", "true", "yes", "on"}
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if isinstance(default, int):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}") from None
    if isinstance(default, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if value is None or (
        isinstance(value, str) and value.lower() in {"", "auto", "none"} and key == "language"
    ):
        return None if key == "language" else ""
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected text, got {value!r}")
    return value


def _apply(settings: Settings, section: str, values: dict[str, Any], origin: str) -> Settings:
    cls = _SECTIONS[section]
    current = getattr(settings, section)
    known = {f.name for f in fields(cls)}
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(
                f"unknown setting [{section}] {key} in {origin}; known: {', '.join(sorted(known))}"
            )
        changes[key] = _coerce(section, key, value, getattr(current, key), origin)
    return replace(settings, **{section: replace(current, **changes)})


def load_settings(
    paths: Paths | None = None,
    env: dict[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Read defaults, then the TOML file (if any), then ``AMBIENT_<SECTION>_<KEY>`` variables."""
    env = dict(os.environ) if env is None else env
    paths = paths or resolve_paths(env)
    file = config_file or Path(env.get("AMBIENT_CONFIG", "") or paths.config_file)
    settings = Settings()
    try:
        exists = file.is_file()
    except PermissionError:  # state is 0700: another user's config dir cannot even be looked into
        raise ConfigError(
            f"cannot read {file} (permission denied); run ambient as the user who owns it"
        ) from None
    if exists:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file} is not valid TOML ({exc}); fix or remove it") from None
        for section, values in data.items():
            if section not in _SECTIONS or not isinstance(values, dict):
                raise ConfigError(
                    f"unknown section [{section}] in {file}; known: {', '.join(sorted(_SECTIONS))}"
                )
            settings = _apply(settings, section, values, str(file))
    elif config_file is not None:
        raise ConfigError(f"config file {file} does not exist")
    for name, value in env.items():
        if not name.startswith("AMBIENT_") or name in {"AMBIENT_HOME", "AMBIENT_CONFIG"}:
            continue
        parts = name[len("AMBIENT_") :].lower().split("_", 1)
        if len(parts) == 2 and parts[0] in _SECTIONS:
            settings = _apply(settings, parts[0], {parts[1]: value}, f"${name}")
    return settings
