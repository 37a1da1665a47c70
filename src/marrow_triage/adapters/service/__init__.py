"""The HTTP service (FastAPI): ``/v1`` triage endpoints and the CDS Hooks service."""

from marrow_triage.adapters.service.app import create_app

__all__ = ["create_app"]
