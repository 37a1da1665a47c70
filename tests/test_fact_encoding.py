"""How a report's facts reach durable_rules: the exact value of what was typed, and JSON
text that says the same as the facts (the engine builds it by hand, for speed)."""

from __future__ import annotations

import decimal
import json
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marrow_triage import SymptomReport
from marrow_triage.engine.durable import fact_members, report_members
from marrow_triage.pack.facts import FACT_FIELDS, FactValue, report_facts
from marrow_triage.testing import reports
from marrow_triage.units import decimal_of, exact
from plain_encoding import engine_fact

TAGS = '"t":"report","sid":"0","id":"r"'


def fact_json(facts: dict[str, FactValue], tags: str) -> str:
    members = fact_members(facts)
    return "{" + tags + ("," + members if members else "") + "}"


@given(st.floats(allow_nan=False, allow_infinity=False) | st.integers(-10**20, 10**20))
def test_exact_is_the_decimal_as_written(value: float) -> None:
    assert exact(value) == Fraction(decimal_of(value))


def test_exact_of_whole_floats_beyond_2_53_uses_the_written_decimal() -> None:
    # 1e23 is stored as 99999999999999991611392; the decimal written was 10**23.
    assert exact(1e23) == 10**23
    assert exact(20.0) == 20
    assert exact(100.94) == Fraction(10094, 100)


_names = st.sampled_from(sorted(FACT_FIELDS)) | st.text(max_size=12)
_values: st.SearchStrategy[FactValue] = st.one_of(
    st.booleans(),
    st.integers(-10**6, 10**6),
    st.fractions(min_value=-10**4, max_value=10**4, max_denominator=10**7),
    st.sampled_from([v for f in FACT_FIELDS.values() for v in f.values]),
    st.text(max_size=20),
)


@given(st.dictionaries(_names, _values, max_size=12))
def test_fact_json_says_what_engine_fact_says(facts: dict[str, FactValue]) -> None:
    parsed = json.loads(fact_json(facts, TAGS))
    assert parsed == {"t": "report", "sid": "0", "id": "r", **engine_fact(facts)}
    # Booleans stay booleans (True == 1 in Python, not in the engine).
    for name, value in facts.items():
        assert type(parsed[name]) is type(engine_fact({name: value})[name])


@given(reports())
def test_every_report_fact_is_encoded(report: SymptomReport) -> None:
    facts = report_facts(report)
    parsed = json.loads(fact_json(facts, TAGS))
    assert set(parsed) == {"t", "sid", "id", *facts}


@settings(max_examples=500)
@given(reports())
def test_the_direct_route_from_a_report_agrees_with_the_exact_facts(
        report: SymptomReport) -> None:
    # The engine encodes reports without building fractions; the exact facts are what
    # the rules are specified against, so the two must agree on every report.
    assert report_members(report) == fact_members(report_facts(report))


@pytest.mark.parametrize(("value", "unit", "millionths"), [
    (100.94, "F", 38_300_000),  # exactly 38.3 °C
    (100.939, "F", 38_299_444),
    (101.0, "F", 38_333_333),
    (38.3, "C", 38_300_000),
    (38.2999999, "C", 38_299_999),
    (86, "F", 30_000_000),
])
def test_engine_temperatures_are_floored_millionths_of_the_exact_celsius(
        value: float, unit: str, millionths: int) -> None:
    report = SymptomReport.model_validate(
        {"hours_since_procedure": 2, "temperature": {"value": value, "unit": unit}})
    assert json.loads("{" + report_members(report) + "}")["temperature_c"] == millionths


def test_encoding_ignores_the_applications_decimal_context() -> None:
    report = SymptomReport.model_validate(
        {"hours_since_procedure": 20.123456, "temperature": {"value": 100.939, "unit": "F"}})
    expected = report_members(report)
    with decimal.localcontext() as context:
        context.prec = 3
        context.rounding = decimal.ROUND_UP
        assert report_members(report) == expected


@pytest.mark.parametrize("hours", [1e-05, 5e-324, 0.1, 0.30000000000000004, 8760.0, 1234.5678901])
def test_hours_written_in_exponent_form_or_with_many_digits_agree(hours: float) -> None:
    report = SymptomReport.model_validate({"hours_since_procedure": hours})
    assert report_members(report) == fact_members(report_facts(report))
