"""Audit records: what an app stores to show later why a patient was told what they were."""

from __future__ import annotations

from datetime import datetime

from marrow_triage._version import __version__
from marrow_triage.models import AuditRecord, SymptomReport, TriageResult

__all__ = ["audit_record", "library_version"]


def library_version() -> str:
    """The version of marrow_triage (``marrow_triage.__version__``)."""
    return __version__


def audit_record(report: SymptomReport, result: TriageResult, recorded_at: datetime) -> AuditRecord:
    """Bundle the validated report, its result and their provenance.

    ``recorded_at`` is given by the caller (the app's clock, timezone-aware), so that the
    record is reproducible; ``record.model_dump_json()`` is what to store.
    """
    if recorded_at.tzinfo is None:
        raise ValueError("recorded_at must be timezone-aware, e.g. datetime.now(timezone.utc)")
    return AuditRecord(
        recorded_at=recorded_at,
        library_version=library_version(),
        ruleset=result.ruleset,
        report=report,
        result=result,
    )
