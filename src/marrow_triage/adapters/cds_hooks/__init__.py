"""CDS Hooks 2.0: discovery, cards and client JWT checks, served by the HTTP service."""

__all__: list[str] = []  # its modules are imported by name
