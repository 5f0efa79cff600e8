"""Data at rest: sealed files and records (AES-256-GCM), data keys, rotation, retention and purge.

Everything ``ambient`` writes that holds PHI goes through :class:`ambient.protect.sealed.Protector`:
the encounter journal, outbox note and context fields, batch transcripts and notes. Readers accept
both sealed and plain (older) data, so code that reads never has to care which it got.
"""
