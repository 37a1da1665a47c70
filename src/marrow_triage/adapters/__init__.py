"""Adapters: the ways in from outside (CLI, HTTP service, CDS Hooks, FHIR).

They import the core; the core (models, units, pack, engine, timeline) never imports them.
"""

__all__: list[str] = []  # its modules are imported by name
