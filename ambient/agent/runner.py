"""Build the agent once (model, drafter, token), finalise what a crash left, then serve until told to stop.

The speech model is loaded with the same options ``ambient listen`` uses, so the agent streams
exactly as the benchmark measures. The drafter's clinical vocabularies are built before the socket
opens: building them costs seconds, and that must not land between a clinician's stop and the note.
"""

from __future__ import annotations

import asyncio
import signal

from ambient.agent.server import Agent, log
from ambient.cli.listen import STREAM_BEAM_SIZE, STREAM_MIN_CHUNK_S, STREAM_MIN_SILENCE_S
from ambient.config import Paths, Settings
from ambient.localsock import load_or_create_token
from ambient.notes.clinical import clinical_nlp
from ambient.pipeline import Pipeline
from ambient.streaming.core import StreamingOptions
from ambient.streaming.live import LiveOptions, LiveRecognizer
from ambient.streaming.vad import GateOptions
from ambient.streaming.whisper import WhisperStreamOptions

TOKEN_NAME = "agent"


def live_options(settings: Settings) -> LiveOptions:
    streaming = StreamingOptions(
        vad=settings.asr.vad_filter,
        min_chunk_s=STREAM_MIN_CHUNK_S,
        gate=GateOptions(min_silence_s=STREAM_MIN_SILENCE_S),
    )
    whisper = WhisperStreamOptions(
        beam_size=STREAM_BEAM_SIZE, language=settings.asr.language, cpu_threads=settings.asr.cpu_threads
    )
    return LiveOptions(settings.asr.model, whisper, streaming, settings.asr.clinical_prompt)


def build_agent(settings: Settings, paths: Paths) -> Agent:
    live = LiveRecognizer(live_options(settings), paths.model_cache)
    pipeline = Pipeline(settings, paths)
    _ = pipeline.template
    clinical_nlp()
    return Agent(settings, paths, live, pipeline)


def run_agent(settings: Settings, paths: Paths, port: int | None = None) -> int:
    token, token_file = load_or_create_token(paths, TOKEN_NAME)
    log("loading the speech model and the drafter")
    agent = build_agent(settings, paths)
    recovered = agent.recover_interrupted()
    if recovered:
        log(f"{len(recovered)} interrupted encounter(s) finalised")
    log(f"token in {token_file}")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await agent.serve(token, settings.agent.port if port is None else port, stop)

    asyncio.run(main())
    log("stopped")
    return 0
