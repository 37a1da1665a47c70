"""The report and result models: invalid input is refused with the field named; valid
boundaries are accepted; the levels are ordered; JSON Schemas can be generated."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from pydantic import ValidationError

from marrow_triage import SymptomReport, Temperature, TriageResult, Urgency, triage
from marrow_triage.errors import MAX_LISTED_PROBLEMS
from marrow_triage.testing import report_dicts

BASE: dict[str, Any] = {"hours_since_procedure": 30}

INVALID: list[tuple[str, dict[str, Any], tuple[str | int, ...], str]] = [
    ("temperature 60 C", {"temperature": {"value": 60, "unit": "C"}}, ("temperature",),
     "not a plausible body temperature (expected 30 to 45 °C)"),
    ("temperature 29.99 C", {"temperature": {"value": 29.99, "unit": "C"}}, ("temperature",),
     "plausible"),
    ("temperature 45.01 C", {"temperature": {"value": 45.01, "unit": "C"}}, ("temperature",),
     "plausible"),
    ("temperature 113.5 F", {"temperature": {"value": 113.5, "unit": "F"}}, ("temperature",),
     "expected 86 to 113 °F"),
    ("temperature 38 F", {"temperature": {"value": 38, "unit": "F"}}, ("temperature",),
     "plausible"),
    ("temperature in kelvin", {"temperature": {"value": 311, "unit": "K"}},
     ("temperature", "unit"), "'C' or 'F'"),
    ("temperature without unit", {"temperature": {"value": 38.3}}, ("temperature", "unit"),
     "required"),
    ("temperature as a bare number", {"temperature": 38.3}, ("temperature",), ""),
    ("temperature as a string", {"temperature": {"value": "38.3", "unit": "C"}},
     ("temperature", "value"), "valid number"),
    ("temperature NaN", {"temperature": {"value": float("nan"), "unit": "C"}},
     ("temperature", "value"), "finite"),
    ("temperature infinite", {"temperature": {"value": float("inf"), "unit": "F"}},
     ("temperature", "value"), "finite"),
    ("pain 11", {"site_pain": 11}, ("site_pain",), "less than or equal to 10"),
    ("pain -1", {"back_or_abdominal_pain": -1}, ("back_or_abdominal_pain",),
     "greater than or equal to 0"),
    ("pain 6.5", {"site_pain": 6.5}, ("site_pain",), "integer"),
    ("pain 7.0", {"site_pain": 7.0}, ("site_pain",), "integer"),
    ("bool as pain", {"site_pain": True}, ("site_pain",), "integer"),
    ("string as pain", {"site_pain": "7"}, ("site_pain",), "integer"),
    ("string as hours", {"hours_since_procedure": "30"}, ("hours_since_procedure",),
     "valid number"),
    ("bool as hours", {"hours_since_procedure": True}, ("hours_since_procedure",),
     "valid number"),
    ("NaN hours", {"hours_since_procedure": float("nan")}, ("hours_since_procedure",),
     "finite"),
    ("negative hours", {"hours_since_procedure": -0.5}, ("hours_since_procedure",),
     "greater than or equal to 0"),
    ("more than a year", {"hours_since_procedure": 24 * 365 + 1}, ("hours_since_procedure",),
     "less than or equal to"),
    ("hours missing", {"hours_since_procedure": None}, ("hours_since_procedure",), ""),
    ("unknown bleeding", {"bleeding": "heavy"}, ("bleeding",), "'none'"),
    ("unknown discharge", {"site_discharge": "pus"}, ("site_discharge",), "'unusual'"),
    ("unknown bruising", {"bruising": "large"}, ("bruising",), "'large_or_spreading'"),
    ("string as flag", {"chills": "yes"}, ("chills",), "valid boolean"),
    ("number as flag", {"chest_pain": 1}, ("chest_pain",), "valid boolean"),
    ("typo in a field name", {"temprature": {"value": 38.3, "unit": "C"}}, ("temprature",),
     "Extra inputs are not permitted"),
    ("typo in a flag name", {"chils": True}, ("chils",), "Extra inputs are not permitted"),
    ("extra temperature field", {"temperature": {"value": 38.3, "unit": "C", "site": "oral"}},
     ("temperature", "site"), "Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("case", "fields", "loc", "message"), INVALID,
                         ids=[c[0] for c in INVALID])
def test_invalid_reports_name_the_field(case: str, fields: dict[str, Any],
                                        loc: tuple[str | int, ...], message: str) -> None:
    data = {k: v for k, v in {**BASE, **fields}.items() if v is not None}
    for attempt in (lambda: SymptomReport.model_validate(data), lambda: triage(data)):
        with pytest.raises(ValidationError) as info:
            attempt()
        errors = info.value.errors()
        located = [e for e in errors if tuple(e["loc"])[: len(loc)] == loc]
        assert located, errors
        assert any(message in e["msg"] for e in located), errors
        assert loc[0] in str(info.value)


@pytest.mark.parametrize(("case", "fields", "loc", "message"),
                         [c for c in INVALID if "NaN" not in c[0] and "infinite" not in c[0]],
                         ids=[c[0] for c in INVALID if "NaN" not in c[0]
                              and "infinite" not in c[0]])
def test_invalid_json_reports_name_the_field(case: str, fields: dict[str, Any],
                                             loc: tuple[str | int, ...], message: str) -> None:
    data = {k: v for k, v in {**BASE, **fields}.items() if v is not None}
    with pytest.raises(ValidationError) as info:
        SymptomReport.model_validate_json(json.dumps(data))
    assert any(tuple(e["loc"])[: len(loc)] == loc for e in info.value.errors())


@pytest.mark.parametrize("text", [
    '{"hours_since_procedure": NaN}',
    '{"hours_since_procedure": Infinity}',
    '{"hours_since_procedure": 1, "temperature": {"value": -Infinity, "unit": "C"}}',
    '{"hours_since_procedure": 1e400}',
])
def test_non_finite_json_numbers_are_refused(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        SymptomReport.model_validate_json(text)
    assert info.value.errors()[0]["loc"][0] in ("hours_since_procedure", "temperature")


def test_every_error_is_reported_at_once() -> None:
    with pytest.raises(ValidationError) as info:
        SymptomReport.model_validate({"hours_since_procedure": -1, "site_pain": 11,
                                      "bleeding": "lots"})
    assert {e["loc"][0] for e in info.value.errors()} == {
        "hours_since_procedure", "site_pain", "bleeding"}


@pytest.mark.parametrize(("value", "unit"), [(30, "C"), (30.0, "C"), (45, "C"), (86, "F"),
                                             (113.0, "F"), (37, "C"), (98.6, "F")])
def test_plausible_temperature_limits_are_accepted(value: float, unit: str) -> None:
    reading = Temperature.model_validate({"value": value, "unit": unit})
    assert reading.value == value


def test_valid_edges_are_accepted() -> None:
    report = SymptomReport.model_validate({
        "hours_since_procedure": 0, "site_pain": 0, "back_or_abdominal_pain": 10,
    })
    assert report.hours_since_procedure == 0 and report.back_or_abdominal_pain == 10
    assert SymptomReport.model_validate({"hours_since_procedure": 24 * 365})
    # null means "not answered", the same as leaving the field out
    assert SymptomReport.model_validate({**BASE, "chills": None}) == SymptomReport(**BASE)


def test_reports_are_immutable() -> None:
    report = SymptomReport(**BASE)
    with pytest.raises(ValidationError):
        report.site_pain = 3  # type: ignore[misc]


@settings(max_examples=60)
@given(report_dicts())
def test_reports_round_trip_through_json(data: dict[str, Any]) -> None:
    report = SymptomReport.model_validate(data)
    assert SymptomReport.model_validate_json(report.model_dump_json()) == report
    assert report.model_dump(mode="json", exclude_none=True) == data


# --- the levels -------------------------------------------------------------------------

def test_levels_are_ordered() -> None:
    order = [Urgency.SELF_CARE, Urgency.SOON, Urgency.URGENT, Urgency.EMERGENCY]
    assert sorted(reversed(order)) == order
    assert [u.rank for u in order] == [0, 1, 2, 3]
    assert max(order) is Urgency.EMERGENCY and min(order) is Urgency.SELF_CARE
    assert Urgency.URGENT > Urgency.SOON >= Urgency.SOON > Urgency.SELF_CARE
    assert Urgency.EMERGENCY.action == "Call emergency services now."
    assert Urgency.URGENT.action == "Call your care team now, day or night."
    assert Urgency.SOON.action == "Contact your care team within 24 hours."
    assert "warning signs" in Urgency.SELF_CARE.action
    assert "expected" not in Urgency.SELF_CARE.action  # nothing reported expects nothing
    assert Urgency.SELF_CARE.label == "Self care"
    assert str(Urgency.SOON) == "soon" and Urgency.SOON == "soon"


def test_levels_compare_with_level_names_by_rank_not_alphabet() -> None:
    """An app writing ``result.level >= "urgent"`` must page for an emergency."""
    assert Urgency.EMERGENCY >= "urgent"
    assert Urgency.EMERGENCY > "self_care"
    assert not Urgency.SOON >= "emergency"
    assert Urgency.SELF_CARE < "soon"
    assert "urgent" < Urgency.EMERGENCY  # noqa: SIM300 (the reflected comparison)
    assert "emergency" > Urgency.URGENT  # noqa: SIM300
    with pytest.raises(ValueError):
        _ = Urgency.SOON < "critical"
    with pytest.raises(TypeError):
        _ = Urgency.SOON < 2


# --- JSON Schema -------------------------------------------------------------------------

def test_json_schema_of_the_report() -> None:
    schema = SymptomReport.model_json_schema()
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["hours_since_procedure"]
    assert set(schema["properties"]) == set(SymptomReport.model_fields)
    assert "description" in schema["properties"]["site_pain"]
    pain = json.dumps(schema["properties"]["site_pain"])
    assert '"maximum": 10' in pain and '"minimum": 0' in pain
    bleeding = schema["$defs"]["Bleeding"]["enum"]
    assert bleeding == ["none", "spots_on_dressing", "stops_with_pressure", "soaks_dressing",
                        "does_not_stop"]
    assert schema["$defs"]["TemperatureUnit"]["enum"] == ["C", "F"]
    json.dumps(schema)


def test_json_schema_of_the_result() -> None:
    schema = TriageResult.model_json_schema(mode="serialization")
    assert {"level", "action", "summary", "findings", "advice", "reassurance", "questions",
            "ruleset"} <= set(schema["properties"])
    assert schema["$defs"]["Urgency"]["enum"] == ["self_care", "soon", "urgent", "emergency"]
    finding = schema["$defs"]["Finding"]["properties"]
    assert {"rule_id", "level", "explanation", "source"} <= set(finding)
    json.dumps(schema)


def test_a_result_round_trips_through_json() -> None:
    result = triage({**BASE, "temperature": {"value": 101.3, "unit": "F"}, "chills": True})
    assert TriageResult.model_validate_json(result.model_dump_json()) == result


@pytest.mark.parametrize("nested", [False, True], ids=["report", "temperature"])
def test_validation_stops_after_the_listed_number_of_unknown_keys(nested: bool) -> None:
    """Issue 13: 29,612 unknown keys gave 29,613 errors; past the limit they are counted."""
    junk = {f"k{i:05d}": 1 for i in range(29_612)}
    data: dict[str, Any] = {**BASE, "site_pain": 99}
    if nested:
        data["temperature"] = {"value": 37, "unit": "C", **junk}
    else:
        data.update(junk)
    with pytest.raises(ValidationError) as info:
        SymptomReport.model_validate_json(json.dumps(data))
    errors = info.value.errors(include_url=False)
    prefix = ("temperature",) if nested else ()
    if nested:  # the report around the temperature is still validated
        assert errors.pop()["loc"] == ("site_pain",)
    assert len(errors) == MAX_LISTED_PROBLEMS + 1
    assert [e["loc"] for e in errors[:-1]] == [(*prefix, f"k{i:05d}") for i in range(20)]
    assert {e["type"] for e in errors[:-1]} == {"extra_forbidden"}
    assert errors[-1]["loc"] == prefix
    assert "29592 more unknown field(s)" in errors[-1]["msg"]


def test_a_few_unknown_keys_are_all_listed_with_the_other_errors() -> None:
    data = {**BASE, "site_pain": 99, **{f"k{i}": 1 for i in range(MAX_LISTED_PROBLEMS)}}
    with pytest.raises(ValidationError) as info:
        SymptomReport.model_validate(data)
    locs = [e["loc"] for e in info.value.errors()]
    assert ("site_pain",) in locs
    assert sum(1 for loc in locs if str(loc[0]).startswith("k")) == MAX_LISTED_PROBLEMS


def test_implausible_temperature_message_does_not_repeat_the_reading() -> None:
    with pytest.raises(ValidationError) as info:
        SymptomReport.model_validate({**BASE, "temperature": {"value": 41.73, "unit": "F"}})
    [error] = info.value.errors()
    assert "41.73" not in error["msg"]
    assert "expected 86 to 113 °F" in error["msg"]


def test_an_invalid_report_is_a_report_error_naming_each_field_and_still_pydantics() -> None:
    """triage() raises the library's ReportError (problems by field, a did-you-mean, no
    values quoted); callers catching pydantic's ValidationError keep working; the error
    survives pickling (worker processes) with its problems and its count of the rest."""
    import pickle

    from marrow_triage import ReportError, triage

    data = {**BASE, "chils": True, "site_pain": 99,
            **{f"k{i:02d}": 1 for i in range(MAX_LISTED_PROBLEMS + 5)}}
    with pytest.raises(ReportError) as info:
        triage(data)
    error = info.value
    assert isinstance(error, ValidationError)
    assert isinstance(error.__cause__, ValidationError)
    assert error.errors() == error.__cause__.errors()
    assert "99" not in str(error)
    assert error.problems[0].field == "chils"
    assert "did you mean 'chills'?" in error.problems[0].message
    assert len(error.problems) == MAX_LISTED_PROBLEMS and error.unlisted > 0
    again = pickle.loads(pickle.dumps(error))
    assert (again.problems, again.unlisted, str(again)) == (error.problems, error.unlisted,
                                                             str(error))
