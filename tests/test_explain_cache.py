"""The explainer shares immutable findings and results between reports through bounded
caches. A key that missed something a finding or result depends on would show one
patient another patient's values: every cached answer must equal a freshly built one."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from marrow_triage import SymptomReport, TriageEngine, Urgency
from marrow_triage.engine.durable import report_members
from marrow_triage.engine.explain import Explainer
from marrow_triage.testing import reports

ENGINE = TriageEngine.default()


def _fired(report: SymptomReport) -> tuple[list[str], list[str]]:
    """What the engine's rules recorded for ``report``: rule ids and question keys."""
    fired = ENGINE._evaluators.evaluate(report_members(report))
    return list(fired.rules), list(fired.questions)


@settings(max_examples=60, deadline=None)
@given(st.lists(reports(), min_size=2, max_size=12), st.integers(1, 5))
def test_cached_answers_equal_fresh_ones_even_when_the_cache_overflows(
        batch: list[SymptomReport], max_cached: int) -> None:
    shared = Explainer(ENGINE.pack, max_cached=max_cached)
    for report in batch + batch[::-1]:
        rules, questions = _fired(report)
        fresh = Explainer(ENGINE.pack).build(report, rules, questions)
        assert shared.build(report, rules, questions) == fresh


def test_a_shared_result_cannot_be_changed_by_one_of_its_holders() -> None:
    """Equal reports may share one cached result: it must be immutable, or one caller's
    change would show in another patient's result."""
    report = {"hours_since_procedure": 30, "site_pain": 3, "bruising": "mild"}
    first = ENGINE.triage(report)
    with pytest.raises(ValidationError):
        first.level = Urgency.EMERGENCY  # type: ignore[misc]
    with pytest.raises(ValidationError):
        first.findings[0].explanation = "changed"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        first.advice.append("changed")  # type: ignore[attr-defined]
    second = ENGINE.triage(dict(report))
    assert second == first
    assert second.model_dump_json() == first.model_dump_json()
