"""The ``marrow-triage`` command."""

from marrow_triage.adapters.cli.main import app, main

__all__ = ["app", "main"]
