"""Settings precedence (defaults < file < env) and clear errors for a malformed config."""

from __future__ import annotations

from pathlib import Path

import pytest

from ambient.config import load_settings, resolve_paths
from ambient.errors import ConfigError


def test_ambient_home_holds_all_state(tmp_path: Path) -> None:
    paths = resolve_paths({"AMBIENT_HOME": str(tmp_path)})
    for folder in (paths.config_dir, paths.data_dir, paths.cache_dir, paths.log_dir, paths.default_inbox):
        assert folder.is_relative_to(tmp_path)


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings(resolve_paths({"AMBIENT_HOME": str(tmp_path)}), env={})
    assert settings.asr.model == "tiny.en"
    assert settings.notes.template == "soap"


def test_file_then_env(tmp_path: Path) -> None:
    paths = resolve_paths({"AMBIENT_HOME": str(tmp_path)})
    paths.config_dir.mkdir(parents=True)
    paths.config_file.write_text('[asr]\nmodel = "base"\nbeam_size = 2\n[inbox]\ndir = "/srv/inbox"\n')
    settings = load_settings(paths, env={"AMBIENT_ASR_BEAM_SIZE": "3", "AMBIENT_ASR_CLINICAL_PROMPT": "yes"})
    assert settings.asr.model == "base"
    assert settings.asr.beam_size == 3
    assert settings.asr.clinical_prompt is True
    assert settings.inbox_dir(paths) == Path("/srv/inbox")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[asr\nmodel=1", "not valid TOML"),
        ("[bogus]\nx = 1\n", "unknown section"),
        ("[asr]\nspeed = 2\n", "unknown setting"),
        ('[asr]\nbeam_size = "wide"\n', "expected a whole number"),
        ('[asr]\nvad_filter = "maybe"\n', "expected true or false"),
    ],
)
def test_bad_config_files(tmp_path: Path, content: str, message: str) -> None:
    file = tmp_path / "ambient.toml"
    file.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(resolve_paths({"AMBIENT_HOME": str(tmp_path)}), env={}, config_file=file)


def test_explicit_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(env={}, config_file=tmp_path / "missing.toml")


def test_delivery_targets_from_file_and_env(tmp_path: Path) -> None:
    paths = resolve_paths({"AMBIENT_HOME": str(tmp_path)})
    paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    paths.config_file.write_text('[delivery]\ntargets = ["inbox:/srv/inbox", "mllp://127.0.0.1:2575"]\n')
    assert load_settings(paths, env={}).delivery.targets == ("inbox:/srv/inbox", "mllp://127.0.0.1:2575")
    env = {"AMBIENT_DELIVERY_TARGETS": "fhir:https://ehr.example/fhir, inbox:/tmp/x"}
    assert load_settings(paths, env=env).delivery.targets == ("fhir:https://ehr.example/fhir", "inbox:/tmp/x")
    paths.config_file.write_text("[delivery]\ntargets = 3\n")
    with pytest.raises(ConfigError, match="list of text"):
        load_settings(paths, env={})
