"""Batch re-processing of recorded encounters (local process pool; Ray later)."""
