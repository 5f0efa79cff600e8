"""ambient: local-first ambient clinical documentation.

The flow is the architecture: ``audio`` → ``asr`` → ``transcript`` → ``notes`` → ``ehr``.
"""

from __future__ import annotations

__version__ = "0.1.0"
PIPELINE_VERSION = f"ambient-{__version__}"
