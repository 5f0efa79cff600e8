"""Command-line interface: one module per command, wired together in :mod:`ambient.cli.main`."""
