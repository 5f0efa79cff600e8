"""Audio sources: files now; microphone and streams later. Everything leaves here as 16 kHz mono."""
