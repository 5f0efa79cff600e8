"""Test helper: warm the drafter once, then fork a fresh agent process for every restart.

Why: a cold ``ambient agent --foreground`` spends ~25 s (on the shared 2-core machine) building the
drafter's vocabularies before it listens; a kill -9 loop of 20+ restarts would take ten minutes.
This process does that warm-up once and then, for each ``fork`` line on stdin, forks a child that
runs the agent's own start path (:func:`ambient.agent.runner.serve_agent`: load the speech model,
finalise interrupted journals, serve the WebSocket). The child is a separate process with its
own pid, sockets and files, killed for real with SIGKILL by the test; only the warm,
single-threaded drafter state is inherited. ``tests/test_agent.py`` kills a cold-started
``ambient agent --foreground`` the same way.

Protocol: ``fork LOGFILE`` → the child's pid on stdout. The parent reaps the previous child
before forking the next; EOF ends it.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    from ambient.agent.runner import live_options, serve_agent, warm_drafter
    from ambient.agent.server import Agent
    from ambient.config import load_settings, resolve_paths
    from ambient.logs import configure
    from ambient.pipeline import Pipeline
    from ambient.streaming.live import LiveRecognizer

    paths = resolve_paths()
    settings = load_settings(paths)
    warm_drafter(settings, paths)
    print("ready", flush=True)
    child = 0
    for line in sys.stdin:
        command, _, log_file = line.strip().partition(" ")
        if command != "fork":
            continue
        if child:
            os.waitpid(child, 0)
        child = os.fork()
        if child == 0:
            fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.stdin.close()
            configure(settings.logging.format)
            live = LiveRecognizer(live_options(settings), paths.model_cache)
            os._exit(serve_agent(Agent(settings, paths, live, Pipeline(settings, paths))))
        print(child, flush=True)
    if child:
        os.waitpid(child, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
