"""Who said what: speaker attribution of transcripts (channels, or GE2E voice embeddings).

``attribute_speakers(transcript, audio_path, mode)`` is the entry point; see
:mod:`ambient.diarize.attribute`. Heavy dependencies (torch, resemblyzer) load on first use only.
"""

from __future__ import annotations

from ambient.diarize.attribute import MODES, Attribution, attribute, attribute_speakers

__all__ = ["MODES", "Attribution", "attribute", "attribute_speakers"]
