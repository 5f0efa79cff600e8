"""Transcripts after recognition: turns, speakers, and the file formats we read and write."""
