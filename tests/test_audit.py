"""Audit records: the validated report, its result and their provenance, as JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from importlib import metadata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from marrow_triage import (
    AuditRecord,
    SymptomReport,
    TriageEngine,
    Urgency,
    audit_record,
)
from marrow_triage.testing import reports_at_level

WHEN = datetime(2026, 11, 25, 9, 30, 15, 123456, tzinfo=UTC)


def test_an_audit_record_carries_provenance(engine: TriageEngine) -> None:
    report = SymptomReport.model_validate(
        {"hours_since_procedure": 30, "temperature": {"value": 100.94, "unit": "F"}})
    result = engine.triage(report)
    record = audit_record(report, result, WHEN)
    assert record.kind == "marrow_triage.audit/1"
    assert record.recorded_at == WHEN
    assert record.report == report and record.result == result
    assert record.ruleset.name == engine.pack.name == "marrow-aftercare"
    assert record.ruleset.version == engine.pack.version
    assert record.ruleset.sha256 == engine.pack.sha256
    assert len(record.ruleset.sha256) == 64
    assert record.library_version == metadata.version("marrow-triage")
    data = json.loads(record.model_dump_json())
    own = {"name": engine.pack.name, "version": engine.pack.version,
           "sha256": engine.pack.sha256}
    assert data["ruleset"] == {**own, "chain": [own]}
    assert data["recorded_at"] == "2026-11-25T09:30:15.123456Z"
    assert data["report"]["temperature"] == {"value": 100.94, "unit": "F"}
    assert data["result"]["level"] == "urgent"


@settings(max_examples=40)
@given(st.sampled_from(list(Urgency)).flatmap(reports_at_level),
       st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                                               timezone(timedelta(hours=-8))])))
def test_audit_records_round_trip_and_reproduce(engine: TriageEngine, report: SymptomReport,
                                                when: datetime) -> None:
    result = engine.triage(report)
    record = audit_record(report, result, when)
    text = record.model_dump_json()
    again = AuditRecord.model_validate_json(text)
    assert again == record
    assert again.model_dump_json() == text
    assert again.recorded_at == when and again.recorded_at.utcoffset() == when.utcoffset()
    # The stored report, triaged again with the same pack, gives the stored result.
    assert engine.triage(again.report) == again.result


def test_naive_datetimes_are_refused(engine: TriageEngine) -> None:
    report = SymptomReport(hours_since_procedure=3)
    result = engine.triage(report)
    with pytest.raises(ValueError, match="timezone-aware"):
        audit_record(report, result, datetime(2026, 11, 25, 9, 30))
    stored = json.loads(audit_record(report, result, WHEN).model_dump_json())
    stored["recorded_at"] = "2026-11-25T09:30:15"
    with pytest.raises(ValidationError) as info:
        AuditRecord.model_validate(stored)
    assert info.value.errors()[0]["loc"] == ("recorded_at",)


def test_a_tampered_record_is_refused(engine: TriageEngine) -> None:
    report = SymptomReport(hours_since_procedure=3, chest_pain=True)
    stored = json.loads(audit_record(report, engine.triage(report), WHEN).model_dump_json())
    stored["result"]["level"] = "sooner"
    with pytest.raises(ValidationError):
        AuditRecord.model_validate(stored)
    stored["result"]["level"] = "emergency"
    stored["kind"] = "marrow_triage.audit/2"
    with pytest.raises(ValidationError):
        AuditRecord.model_validate(stored)
