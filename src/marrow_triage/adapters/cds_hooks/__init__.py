"""CDS Hooks 2.0: discovery, cards and client JWT checks, served by the HTTP service."""
