"""Speech recognition: model resolution and the faster-whisper backend."""
