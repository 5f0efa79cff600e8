"""Build the agent once (model, drafter, token), finalise what a crash left, then serve until told to stop.

The speech model is loaded with the same options ``ambient listen`` uses, so the agent streams
exactly as the benchmark measures. The drafter is warmed up (one draft of a two-line dialogue)
before the socket opens: its first use builds vocabularies and matchers, which costs seconds, and
that must not land between a clinician's first stop and the note.
"""

from __future__ import annotations

import asyncio
import signal
import tempfile
from dataclasses import replace
from pathlib import Path

from ambient import PIPELINE_VERSION
from ambient.agent.metrics import serve_agent_metrics
from ambient.agent.server import Agent, log
from ambient.config import Paths, Settings
from ambient.localsock import load_or_create_token
from ambient.logs import configure as configure_logs
from ambient.pipeline import Pipeline
from ambient.streaming.live import LiveOptions, LiveRecognizer, tuned_options
from ambient.transcript.serialise import transcript_from_turns

TOKEN_NAME = "agent"


def live_options(settings: Settings) -> LiveOptions:
    return tuned_options(
        settings.asr.model,
        language=settings.asr.language,
        cpu_threads=settings.asr.cpu_threads,
        vad=settings.asr.vad_filter,
        clinical_prompt=settings.asr.clinical_prompt,
    )


def warm_drafter(settings: Settings, paths: Paths) -> None:
    """One throwaway draft: builds the drafter's process-wide vocabularies and matchers."""
    warm = transcript_from_turns(
        [("doctor", "Any chest pain today?"), ("patient", "No, I take aspirin 81 mg daily.")],
        source_path="warm-up",
        source_sha256="0" * 64,
        encounter_id="warm-up",
        pipeline_version=PIPELINE_VERSION,
    )
    # The warm-up draft is discarded; its audit events go to a throwaway folder, not the real trail.
    with tempfile.TemporaryDirectory() as scratch:
        throwaway = replace(paths, data_dir=Path(scratch) / "data", log_dir=Path(scratch) / "logs")
        Pipeline(settings, throwaway).draft(warm)


def build_agent(settings: Settings, paths: Paths) -> Agent:
    live = LiveRecognizer(live_options(settings), paths.model_cache)
    warm_drafter(settings, paths)
    return Agent(settings, paths, live, Pipeline(settings, paths))


def run_agent(settings: Settings, paths: Paths, port: int | None = None) -> int:
    configure_logs(settings.logging.format)
    log.info("agent.loading", "loading the speech model and the drafter")
    return serve_agent(build_agent(settings, paths), port)


def serve_agent(agent: Agent, port: int | None = None) -> int:
    """Finalise what a crash left, then serve until SIGTERM/SIGINT."""
    token, token_file = load_or_create_token(agent.paths, TOKEN_NAME)
    serve_agent_metrics(agent, agent.settings.agent.metrics_port)
    recovered = agent.recover_interrupted()
    if recovered:
        log.info("agent.recovered", "{count} interrupted encounter(s) finalised", count=len(recovered))
    log.info("agent.token", "token in {token_file}", token_file=str(token_file))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await agent.serve(token, agent.settings.agent.port if port is None else port, stop)

    asyncio.run(main())
    log.info("agent.stopped", "stopped")
    return 0
