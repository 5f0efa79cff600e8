"""Real EHR peers for the delivery tests, on loopback: the sekmet FHIR R4 server and an MLLP listener.

Nothing here is a stub. sekmet-fhir (FastAPI + SQLite) runs in a child process so a test can stop
it mid-way and start it again on the same port and database; the MLLP listener is the ``hl7``
package's asyncio server in a thread, answering with real ACKs built by ``hl7``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ambient.config import load_settings, resolve_paths
from ambient.pipeline import Pipeline
from ambient.types import EncounterContext, NoteDraft

DIALOGUE = """\
[doctor] What brings you in today?
[patient] I have had chest pain for two days, worse when I climb stairs.
[patient] I take metformin 500 milligrams twice a day.
[doctor] Your blood pressure is 150 over 90 and the heart sounds are normal.
[doctor] I think this is likely angina.
[doctor] I will order an ECG and see you in one week.
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_note(folder: Path, encounter_id: str, extra: str = "") -> NoteDraft:
    """A real drafted note (the product's drafter on a dialogue text), no speech model needed."""
    path = folder / f"{encounter_id}.txt"
    path.write_text(DIALOGUE + extra, encoding="utf-8")
    paths = resolve_paths()
    pipeline = Pipeline(load_settings(paths), paths)
    return pipeline.draft(pipeline.load_input(path, encounter_id))


def context_for(encounter_id: str) -> EncounterContext:
    return EncounterContext(
        encounter_id=encounter_id,
        patient_reference="Patient/pat-1",
        patient_identifier="MRN12345",
        patient_identifier_system="HOSP",
        encounter_reference=f"Encounter/{encounter_id}",
        author_reference="Practitioner/dr-1",
        author_identifier="DR1",
        patient_display="Doe, Jane",
        author_display="Dr Alex Smith",
    )


@dataclass
class SekmetServer:
    """sekmet-fhir 0.1.1 in a child process, bound to 127.0.0.1, with its own SQLite file."""

    root: Path
    port: int = field(default_factory=free_port)
    extra_settings: str = ""
    scheme: str = "http"
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/fhir"

    def _write_settings(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        settings = self.root / "settings.yaml"
        settings.write_text(
            f"base_url: {self.base_url}\n"
            "host: 127.0.0.1\n"
            f"port: {self.port}\n"
            f"data_dir: {self.root / 'data'}\n"
            f"db_path: {self.root / 'data' / 'sekmet.db'}\n"
            f"own_private_key_path: {self.root / 'keys' / 'own.pem'}\n"
            "simulator: {enabled: false}\n"
            "log_inbound: false\n" + self.extra_settings,
            encoding="utf-8",
        )
        (self.root / "data").mkdir(exist_ok=True)
        return settings

    def start(self, timeout_s: float = 60.0) -> None:
        settings = self._write_settings()
        env = {**os.environ, "SEKMET_CONFIG": str(settings)}
        cmd = [sys.executable, "-m", "uvicorn", "sekmet.main:app_factory", "--factory"]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        if self.scheme == "https":
            cmd += ["--ssl-certfile", str(self.root / "tls" / "cert.pem")]
            cmd += ["--ssl-keyfile", str(self.root / "tls" / "key.pem")]
        log = (self.root / "server.log").open("ab")
        self.process = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sekmet exited: {(self.root / 'server.log').read_text()[-2000:]}")
            try:
                if (
                    httpx.get(f"{self.base_url}/metadata", timeout=2, verify=self._verify()).status_code
                    == 200
                ):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("sekmet did not start within the timeout")

    def _verify(self) -> ssl.SSLContext | bool:
        if self.scheme != "https":
            return True
        return ssl.create_default_context(cafile=str(self.root / "tls" / "cert.pem"))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def search(self, rtype: str, **params: str) -> list[dict[str, Any]]:
        """Every matching resource, read straight from the server (paged)."""
        out: list[dict[str, Any]] = []
        url: str | None = f"{self.base_url}/{rtype}"
        query: dict[str, str] | None = {**params, "_count": "100"}
        while url:
            response = httpx.get(
                url, params=query, timeout=10, verify=self._verify(), headers=self.auth_headers
            )
            bundle = response.json()
            out += [e["resource"] for e in bundle.get("entry", [])]
            url = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)
            query = None
        return out

    auth_headers: dict[str, str] = field(default_factory=dict)


def sekmet(root: Path, extra_settings: str = "") -> Iterator[SekmetServer]:
    server = SekmetServer(root, extra_settings=extra_settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class MllpListener:
    """The ``hl7`` package's asyncio MLLP server in a thread; ``mode`` picks its answer."""

    mode: str = "AA"  # "AA", "AE", "AR", or "silent" (reads and never answers)
    port: int = field(default_factory=free_port)
    received: list[str] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    async def _handle(self, reader: Any, writer: Any) -> None:

        try:
            while not writer.is_closing():
                message = await reader.readmessage()
                self.received.append(str(message))
                if self.mode == "silent":
                    continue
                ack = str(message.create_ack(self.mode))
                if self.mode != "AA":  # a real engine says why; hl7's create_ack leaves MSA-3 empty
                    ack = "\r".join(
                        f"{seg}|Unknown patient MRN12345" if seg.startswith("MSA") else seg
                        for seg in ack.split("\r")
                    )
                writer.writeblock(ack.encode("utf-8"))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def start(self) -> None:
        import hl7.mllp

        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def serve() -> Any:
                return await hl7.mllp.start_hl7_server(
                    self._handle, host="127.0.0.1", port=self.port, encoding="utf-8"
                )

            server = loop.run_until_complete(serve())
            ready.set()
            try:
                loop.run_forever()
            finally:
                server.close()
                loop.run_until_complete(server.wait_closed())
                loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("MLLP listener did not start")

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
