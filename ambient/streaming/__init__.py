"""Live transcription: a sans-I/O streaming core (LocalAgreement-2 over Whisper), its events,
the Silero VAD gate, the faster-whisper producer, and the runtime that feeds it from a source."""
