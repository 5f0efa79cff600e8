"""Data keys in a real OS keyring: GNOME Keyring's Secret Service on a private D-Bus session.

The keyring daemon and the bus are started for the test (``dbus-run-session`` + ``gnome-keyring-daemon
--unlock``), with a throwaway HOME, so nothing touches a developer's own keyring; ambient then runs
in that session exactly as on a Linux desktop.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    shutil.which("dbus-run-session") is None or shutil.which("gnome-keyring-daemon") is None,
    reason="needs dbus-run-session and gnome-keyring-daemon (apt-get install dbus-daemon gnome-keyring)",
)

CHILD = r"""
import json, sys
from pathlib import Path
from ambient.cli.main import main
from ambient.config import load_settings, resolve_paths
from ambient.protect.keys import KEYRING_SERVICE, key_store, real_keyring
from ambient.protect.outputs import read_output, remember_batch_dir, write_output
from ambient.protect.sealed import Protector, key_id_of

paths = resolve_paths()
backend = real_keyring()
out = Path(sys.argv[1])
note = write_output(Protector.for_paths(paths), out / "v.1" / "note.md", "Zebediah Quarterfield", plain=False)
remember_batch_dir(paths, out)
store = key_store(paths.config_dir, load_settings(paths).protect.key_store)
first = store.load().active
doc_before = (paths.config_dir / "keys.json").read_text()
secret_before = backend.get_password(KEYRING_SERVICE, f"{paths.config_dir}:{first.key_id}")
rotated = main(["keys", "rotate"])
second = store.load().active
print(json.dumps({
    "backend": type(backend).__name__,
    "first_store": first.store,
    "material_in_file": "material" in doc_before,
    "secret_in_keyring": bool(secret_before),
    "rotate_exit": rotated,
    "sealed_with": key_id_of(note.read_bytes()),
    "second": second.key_id,
    "first": first.key_id,
    "old_secret_left": backend.get_password(KEYRING_SERVICE, f"{paths.config_dir}:{first.key_id}"),
    "read_back": read_output(note),
}))
"""


def test_keys_live_in_the_os_keyring_and_rotation_removes_the_old_one(tmp_path: Path) -> None:
    home = tmp_path / "user"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBUS_", "XDG_", "AMBIENT_"))} | {
        "HOME": str(home),
        "AMBIENT_HOME": str(tmp_path / "ambient"),
        "PYTHONPATH": str(REPO),
    }
    script = (
        'printf "test-password" | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1; '
        f'exec "{sys.executable}" -c "$CHILD" "{tmp_path / "out"}"'
    )
    result = subprocess.run(
        ["dbus-run-session", "--", "sh", "-c", script],
        env=env | {"CHILD": CHILD},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["backend"] == "Keyring" and report["first_store"] == "keyring"
    assert report["material_in_file"] is False and report["secret_in_keyring"] is True
    assert report["rotate_exit"] == 0 and report["second"] != report["first"]
    assert report["sealed_with"] == report["second"]  # the batch output was re-sealed
    assert report["old_secret_left"] is None  # retired: gone from the keyring too
    assert report["read_back"] == "Zebediah Quarterfield"
    keys_file = (tmp_path / "ambient" / "config" / "keys.json").read_text()
    assert "material" not in keys_file and report["second"] in keys_file
