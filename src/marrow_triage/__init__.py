"""marrow_triage: explained urgency triage of symptoms after a bone marrow aspiration or biopsy.

>>> from marrow_triage import triage
>>> result = triage({"hours_since_procedure": 30, "temperature": {"value": 101.3, "unit": "F"}})
>>> result.level
<Urgency.URGENT: 'urgent'>

It supports, and does not replace, clinical judgement.
"""

from __future__ import annotations

from typing import Any

from marrow_triage._version import __version__
from marrow_triage.audit import audit_record
from marrow_triage.engine.triage import TriageEngine, default_engine
from marrow_triage.errors import (
    BatchReportError,
    CdsAuthError,
    CdsError,
    CdsPrefetchError,
    ConditionError,
    DuplicateKeyError,
    EngineError,
    LocaleError,
    MarrowTriageError,
    Problem,
    QuestionnaireResponseError,
    ReportError,
    RulePackError,
    StoreError,
    TimelineError,
)
from marrow_triage.models import (
    AuditRecord,
    Bleeding,
    Bruising,
    Finding,
    PackRef,
    PainTrend,
    Question,
    RulesetInfo,
    SiteDischarge,
    Source,
    SymptomReport,
    Temperature,
    TemperatureUnit,
    TriageResult,
    Urgency,
)
from marrow_triage.pack.spec import RulePack

__all__ = [
    "AuditRecord",
    "BatchReportError",
    "Bleeding",
    "Bruising",
    "CdsAuthError",
    "CdsError",
    "CdsPrefetchError",
    "ConditionError",
    "DuplicateKeyError",
    "EngineError",
    "Finding",
    "LocaleError",
    "MarrowTriageError",
    "PackRef",
    "PainTrend",
    "Problem",
    "Question",
    "QuestionnaireResponseError",
    "ReportError",
    "RulePack",
    "RulePackError",
    "RulesetInfo",
    "SiteDischarge",
    "Source",
    "StoreError",
    "SymptomReport",
    "Temperature",
    "TemperatureUnit",
    "TimelineError",
    "TriageEngine",
    "TriageResult",
    "Urgency",
    "__version__",
    "audit_record",
    "default_engine",
    "triage",
]


def triage(report: SymptomReport | dict[str, Any], locale: str | None = None) -> TriageResult:
    """Triage one report with the packaged rule pack, its texts in ``locale`` (default
    English; ``"es"`` for Spanish)."""
    return default_engine().triage(report, locale)
