"""FHIR R4 interface: the Questionnaire, reading QuestionnaireResponses, RiskAssessments.

Every resource is validated with the R4B models of fhir.resources (wire-compatible with
R4 for these resources); the engine is the real one.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.questionnaireresponse import QuestionnaireResponse as QuestionnaireResponseR5
from fhir.resources.R4B.codesystem import CodeSystem
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from fhir.resources.R4B.riskassessment import RiskAssessment
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marrow_triage import SymptomReport, Temperature, TemperatureUnit, Urgency, triage
from marrow_triage.adapters.fhir.resources import (
    QUESTIONNAIRE_URL,
    URGENCY_SYSTEM,
    QuestionnaireResponseError,
    code_systems,
    from_questionnaire_response,
    questionnaire,
    to_questionnaire_response,
    to_risk_assessment,
)
from marrow_triage.audit import library_version
from marrow_triage.models import MAX_HOURS_SINCE_PROCEDURE
from marrow_triage.pack.facts import FACT_FIELDS
from marrow_triage.testing import reports, reports_at_level

ROOT = Path(__file__).resolve().parent.parent
FHIR_EXAMPLES = sorted((ROOT / "examples" / "fhir").glob("*.json"))
REPORT_EXAMPLES = sorted((ROOT / "examples").glob("*.json"))
WHEN = datetime(2026, 3, 2, 9, 16, tzinfo=UTC)
MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
UNIT_OPTION = "http://hl7.org/fhir/StructureDefinition/questionnaire-unitOption"


def _items() -> dict[str, dict[str, Any]]:
    return {item["linkId"]: item for item in questionnaire()["item"]}


def _ext(item: dict[str, Any], url: str) -> list[dict[str, Any]]:
    return [e for e in item.get("extension", []) if e["url"] == url]


def _problems(qr: dict[str, Any]) -> list[tuple[str | None, str]]:
    with pytest.raises(QuestionnaireResponseError) as caught:
        from_questionnaire_response(qr)
    assert isinstance(caught.value, ValueError)
    return [(p.link_id, p.message) for p in caught.value.problems]


def _qr(**answers: Any) -> dict[str, Any]:
    """A response answering ``hours_since_procedure`` = 30 plus the given raw answers."""
    items = [{"linkId": "hours_since_procedure", "answer": [{"valueDecimal": 30}]}]
    items += [{"linkId": link_id, "answer": [answer]} for link_id, answer in answers.items()]
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{QUESTIONNAIRE_URL}|{questionnaire()['version']}",
        "status": "completed",
        "item": items,
    }


# -- the Questionnaire ------------------------------------------------------------------


def test_questionnaire_is_valid_fhir_and_identified() -> None:
    data = questionnaire()
    Questionnaire.model_validate(data)
    assert data["resourceType"] == "Questionnaire"
    assert data["url"] == QUESTIONNAIRE_URL
    assert data["status"] == "active"
    assert data["version"] == metadata.version("marrow-triage") == library_version()


def test_questionnaire_is_a_fresh_copy() -> None:
    questionnaire()["item"].clear()
    assert len(questionnaire()["item"]) == len(SymptomReport.model_fields)


def test_link_ids_are_exactly_the_report_fields() -> None:
    link_ids = [item["linkId"] for item in questionnaire()["item"]]
    assert len(link_ids) == len(set(link_ids))
    assert set(link_ids) == set(SymptomReport.model_fields)
    # Every fact the rules can test is read from a question.
    assert {f.report_field for f in FACT_FIELDS.values()} <= set(link_ids)
    assert all("item" not in item for item in questionnaire()["item"])


def _schema(prop: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of a report field's JSON Schema, with ``$ref`` resolved."""
    defs = SymptomReport.model_json_schema()["$defs"]
    branches = [b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"]
    assert len(branches) == 1
    branch = branches[0]
    return dict(defs[branch["$ref"].rsplit("/", 1)[1]]) if "$ref" in branch else dict(branch)


def test_item_types_match_report_field_types() -> None:
    """Each item's type, range, options and required flag follow the report's schema."""
    items = _items()
    schema = SymptomReport.model_json_schema()
    for name, prop in schema["properties"].items():
        item = items[name]
        field = _schema(prop)
        assert item.get("required", False) == (name in schema["required"]), name
        assert item["text"].strip(), name
        if "enum" in field:
            assert item["type"] == "choice", name
            codings = [o["valueCoding"] for o in item["answerOption"]]
            assert [c["code"] for c in codings] == field["enum"], name
            assert {c["system"] for c in codings} == {
                f"https://marrow-triage.example/fhir/CodeSystem/{name.replace('_', '-')}"
            }
            assert all(c["display"] for c in codings)
        elif field.get("type") == "object":
            assert set(field["properties"]) == {"value", "unit"}, name
            assert item["type"] == "quantity", name
            units = [e["valueCoding"] for e in _ext(item, UNIT_OPTION)]
            assert [(u["system"], u["code"]) for u in units] == [
                ("http://unitsofmeasure.org", "Cel"), ("http://unitsofmeasure.org", "[degF]")
            ]
            assert [m.value for m in TemperatureUnit] == ["C", "F"]
        elif field.get("type") == "string":
            assert item["type"] == "text", name
            assert item["maxLength"] == field["maxLength"], name
        else:
            fhir_type, value_key = {
                "boolean": ("boolean", ""),
                "integer": ("integer", "valueInteger"),
                "number": ("decimal", "valueDecimal"),
            }[field["type"]]
            assert item["type"] == fhir_type, name
            if value_key:
                assert [e[value_key] for e in _ext(item, MIN_VALUE)] == [field["minimum"]], name
                assert [e[value_key] for e in _ext(item, MAX_VALUE)] == [field["maximum"]], name
    assert _items()["hours_since_procedure"]["type"] == "decimal"
    assert [e["valueDecimal"] for e in _ext(items["hours_since_procedure"], MAX_VALUE)] == [
        MAX_HOURS_SINCE_PROCEDURE
    ]
    assert [e["valueInteger"] for e in _ext(items["site_pain"], MAX_VALUE)] == [10]


def test_code_systems_define_every_code_used() -> None:
    systems = {cs["url"]: cs for cs in code_systems()}
    for cs in systems.values():
        CodeSystem.model_validate(cs)
        assert cs["count"] == len(cs["concept"])
        assert cs["version"] == questionnaire()["version"]
    defined = {(url, c["code"]) for url, cs in systems.items() for c in cs["concept"]}
    used = {
        (o["valueCoding"]["system"], o["valueCoding"]["code"])
        for item in questionnaire()["item"] for o in item.get("answerOption", [])
    }
    used |= {(URGENCY_SYSTEM, level.value) for level in Urgency}
    risk = to_risk_assessment(triage({"hours_since_procedure": 3}),
                              subject_reference="Patient/1", occurrence=WHEN)
    used.add((risk["code"]["coding"][0]["system"], risk["code"]["coding"][0]["code"]))
    assert used == defined
    assert [c["code"] for c in systems[URGENCY_SYSTEM]["concept"]] == [u.value for u in Urgency]


# -- the example QuestionnaireResponses -------------------------------------------------


@pytest.mark.parametrize("path", FHIR_EXAMPLES, ids=lambda p: p.stem)
def test_example_responses_are_valid_fhir_and_read(path: Path) -> None:
    data = json.loads(path.read_text("utf-8"))
    QuestionnaireResponse.model_validate(data)
    assert data["questionnaire"] == f"{QUESTIONNAIRE_URL}|{questionnaire()['version']}"
    report = from_questionnaire_response(data)
    regenerated = to_questionnaire_response(report)
    assert [i["linkId"] for i in regenerated["item"]] == [i["linkId"] for i in data["item"]]
    assert from_questionnaire_response(regenerated) == report


def test_example_responses_triage_as_described() -> None:
    names = {p.stem for p in FHIR_EXAMPLES}
    assert {"fever-101F", "expected-after-effects", "emergency-bleeding"} <= names

    def level(name: str) -> Urgency:
        data = json.loads((ROOT / "examples" / "fhir" / f"{name}.json").read_text("utf-8"))
        return triage(from_questionnaire_response(data)).level

    assert level("fever-101F") is Urgency.URGENT
    assert level("expected-after-effects") is Urgency.SELF_CARE
    assert level("emergency-bleeding") is Urgency.EMERGENCY
    fever = json.loads((ROOT / "examples" / "fhir" / "fever-101F.json").read_text("utf-8"))
    report = from_questionnaire_response(fever)
    assert report.temperature == Temperature(value=101.3, unit="F")
    assert report == SymptomReport.model_validate_json(
        (ROOT / "examples" / "fever-101F.json").read_text("utf-8")
    )


# -- round trips ------------------------------------------------------------------------


def _round_trip(report: SymptomReport) -> None:
    qr = to_questionnaire_response(report, subject_reference="Patient/1", authored=WHEN)
    QuestionnaireResponse.model_validate(qr)
    assert from_questionnaire_response(qr) == report
    # Over the wire as JSON text, and as a fhir.resources model object.
    wire = json.loads(json.dumps(qr))
    assert from_questionnaire_response(wire) == report
    assert from_questionnaire_response(QuestionnaireResponse.model_validate(wire)) == report


@pytest.mark.parametrize("path", REPORT_EXAMPLES, ids=lambda p: p.stem)
def test_example_reports_round_trip(path: Path) -> None:
    _round_trip(SymptomReport.model_validate_json(path.read_text("utf-8")))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reports())
def test_generated_reports_round_trip(report: SymptomReport) -> None:
    _round_trip(report)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reports(complete=True))
def test_complete_reports_round_trip(report: SymptomReport) -> None:
    _round_trip(report)
    assert len(to_questionnaire_response(report)["item"]) == len(SymptomReport.model_fields)


def test_r5_model_objects_are_read_too() -> None:
    data = json.loads((ROOT / "examples" / "fhir" / "fever-101F.json").read_text("utf-8"))
    model = QuestionnaireResponseR5.model_validate(data)
    assert from_questionnaire_response(model) == from_questionnaire_response(data)


# -- errors -----------------------------------------------------------------------------


def test_unknown_link_id_is_named_with_a_suggestion() -> None:
    problems = _problems(_qr(chils={"valueBoolean": True}))
    assert problems == [("chils", problems[0][1])]
    assert "did you mean 'chills'" in problems[0][1]


@pytest.mark.parametrize(
    ("link_id", "answer", "expected"),
    [
        ("chills", {"valueString": "yes"}, "expected a valueBoolean answer"),
        ("chills", {"valueInteger": 1}, "expected a valueBoolean answer"),
        ("chills", {"valueBoolean": "true"}, "valueBoolean must be true or false"),
        ("chills", {"valueBoolean": 1}, "valueBoolean must be true or false"),
        ("site_pain", {"valueDecimal": 3.5}, "expected a valueInteger answer"),
        ("site_pain", {"valueInteger": "5"}, "valueInteger must be a whole number"),
        ("site_pain", {"valueInteger": 5.0}, "valueInteger must be a whole number"),
        ("site_pain", {"valueInteger": True}, "valueInteger must be a whole number"),
        ("bleeding", {"valueString": "heavy"}, "expected a valueCoding answer"),
        ("temperature", {"valueDecimal": 38.5}, "expected a valueQuantity answer"),
    ],
)
def test_wrong_answer_type_is_named(link_id: str, answer: dict[str, Any], expected: str) -> None:
    problems = _problems(_qr(**{link_id: answer}))
    assert len(problems) == 1
    assert problems[0][0] == link_id
    assert expected in problems[0][1]


def test_hours_given_as_text_is_refused() -> None:
    qr = _qr()
    qr["item"][0]["answer"] = [{"valueDecimal": "30"}]
    assert _problems(qr) == [("hours_since_procedure", "valueDecimal must be a number, got text")]


def test_problems_never_repeat_the_answers() -> None:
    """Issue 13: error answers (a 422 from CDS Hooks too) must not echo the report."""
    qr = _qr(site_pain={"valueInteger": 17}, chills={"valueBoolean": "Jane Doe says yes"})
    qr["item"][0]["answer"] = [{"valueDecimal": "Jane Doe, 30 hours"}]
    problems = dict(_problems(qr))
    assert set(problems) == {"hours_since_procedure", "chills"}
    text = repr(problems)
    assert "Jane" not in text and "30 hours" not in text
    [(link_id, message)] = _problems(_qr(site_pain={"valueInteger": 17}))
    assert link_id == "site_pain"
    assert "17" not in message and "less than or equal to 10" in message


def test_missing_required_hours() -> None:
    qr = _qr(chills={"valueBoolean": True})
    del qr["item"][0]
    assert _problems(qr) == [("hours_since_procedure", "is required but was not answered")]
    qr["item"].append({"linkId": "hours_since_procedure"})  # present but unanswered
    assert _problems(qr) == [("hours_since_procedure", "is required but was not answered")]


def test_two_answers_and_two_items_for_one_question() -> None:
    qr = _qr(chills={"valueBoolean": True})
    qr["item"][1]["answer"].append({"valueBoolean": False})
    assert _problems(qr) == [("chills", "has 2 answers, but this question takes one")]
    qr = _qr(chills={"valueBoolean": True})
    qr["item"].append({"linkId": "chills", "answer": [{"valueBoolean": False}]})
    assert _problems(qr) == [("chills", "answered more than once (items 1 and 2)")]


def test_nested_items_are_refused() -> None:
    qr = _qr(chills={"valueBoolean": True})
    qr["item"][1]["item"] = [{"linkId": "extra", "answer": [{"valueBoolean": True}]}]
    problems = _problems(qr)
    assert [p[0] for p in problems] == ["chills"]
    assert "nested" in problems[0][1]


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ({"value": 38.5, "unit": "°C"}, "unknown unit '°C'"),
        ({"value": 38.5, "system": "http://unitsofmeasure.org", "code": "K"}, "unknown unit 'K'"),
        ({"value": 38.5, "code": "Cel"}, "must have system 'http://unitsofmeasure.org'"),
        ({"value": 38.5, "comparator": ">", "system": "http://unitsofmeasure.org",
          "code": "Cel"}, "comparator '>'"),
        ({"system": "http://unitsofmeasure.org", "code": "Cel"}, "must be a number, got null"),
    ],
)
def test_temperature_units_and_values(quantity: dict[str, Any], expected: str) -> None:
    problems = _problems(_qr(temperature={"valueQuantity": quantity}))
    assert [p[0] for p in problems] == ["temperature"]
    assert expected in problems[0][1]


def test_temperature_units_are_read_as_given() -> None:
    qr = _qr(temperature={"valueQuantity": {
        "value": 100.94, "unit": "°F", "system": "http://unitsofmeasure.org", "code": "[degF]"
    }})
    report = from_questionnaire_response(qr)
    assert report.temperature == Temperature(value=100.94, unit="F")
    assert triage(report).level >= Urgency.URGENT  # 100.94 °F is exactly 38.3 °C


@pytest.mark.parametrize(
    ("coding", "expected"),
    [
        ({"system": "https://marrow-triage.example/fhir/CodeSystem/bleeding",
          "code": "heavy"}, "unknown code 'heavy'"),
        ({"code": "Heavy"}, "unknown code 'Heavy'"),
        ({"system": "http://snomed.info/sct", "code": "none"}, "code system 'http://snomed"),
    ],
)
def test_unknown_codes(coding: dict[str, Any], expected: str) -> None:
    problems = _problems(_qr(bleeding={"valueCoding": coding}))
    assert [p[0] for p in problems] == ["bleeding"]
    assert expected in problems[0][1]


def test_code_without_system_is_read() -> None:
    report = from_questionnaire_response(_qr(bleeding={"valueCoding": {"code": "soaks_dressing"}}))
    assert report.bleeding is not None and report.bleeding.value == "soaks_dressing"


def test_report_validation_errors_are_labelled_by_link_id() -> None:
    problems = _problems(_qr(
        site_pain={"valueInteger": 11},
        temperature={"valueQuantity": {"value": 380, "system": "http://unitsofmeasure.org",
                                       "code": "Cel"}},
    ))
    by_id = dict(problems)
    assert set(by_id) == {"site_pain", "temperature"}
    assert "less than or equal to 10" in by_id["site_pain"]
    assert "not a plausible body temperature" in by_id["temperature"]
    qr = _qr()
    qr["item"][0]["answer"] = [{"valueDecimal": -1}]
    [(link_id, message)] = _problems(qr)
    assert link_id == "hours_since_procedure"
    assert "greater than or equal to 0" in message


def test_every_problem_is_listed_at_once() -> None:
    qr = _qr(chils={"valueBoolean": True}, site_pain={"valueString": "bad"})
    qr["status"] = "entered-in-error"
    del qr["item"][0]
    problems = _problems(qr)
    assert [p[0] for p in problems] == [None, "chils", "site_pain", "hours_since_procedure"]
    with pytest.raises(QuestionnaireResponseError) as caught:
        from_questionnaire_response(qr)
    text = str(caught.value)
    for link_id in ("chils", "site_pain", "hours_since_procedure", "entered-in-error"):
        assert link_id in text


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"questionnaire": "https://example.org/Questionnaire/other"}, "not the marrow_triage"),
        ({"questionnaire": f"{QUESTIONNAIRE_URL}|0.0.1"}, "version '0.0.1'"),
        ({"questionnaire": None}, "does not say which Questionnaire"),
        ({"status": "stopped"}, "status is 'stopped'"),
    ],
)
def test_resource_level_problems(change: dict[str, Any], expected: str) -> None:
    qr = _qr()
    for key, value in change.items():
        if value is None:
            del qr[key]
        else:
            qr[key] = value
    problems = _problems(qr)
    assert len(problems) == 1
    assert problems[0][0] is None
    assert expected in problems[0][1]


def test_bare_questionnaire_url_and_other_statuses_are_accepted() -> None:
    for status in ("completed", "amended", "in-progress"):
        qr = _qr(chills={"valueBoolean": False})
        qr["questionnaire"] = QUESTIONNAIRE_URL
        qr["status"] = status
        assert from_questionnaire_response(qr).chills is False


def test_invalid_fhir_is_refused_with_the_link_id() -> None:
    qr = _qr(chills={"valueBoolean": True, "valueInteger": 1})
    problems = _problems(qr)
    assert problems[0][0] == "chills"
    assert "not valid FHIR" in problems[0][1]
    qr = _qr()
    qr["unexpected"] = 1
    assert "not valid FHIR at unexpected" in _problems(qr)[0][1]


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Patient", "id": "1"},
        {"status": "completed"},
        ["not", "a", "resource"],
        "QuestionnaireResponse",
        None,
    ],
)
def test_not_a_questionnaire_response(resource: Any) -> None:
    problems = _problems(resource)
    assert len(problems) == 1 and problems[0][0] is None


# -- RiskAssessment ---------------------------------------------------------------------


@pytest.mark.parametrize("level", list(Urgency))
def test_risk_assessment_records_the_result(level: Urgency) -> None:
    @settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(reports_at_level(level))
    def check(report: SymptomReport) -> None:
        result = triage(report)
        assert result.level is level
        risk = to_risk_assessment(
            result, subject_reference="Patient/123", occurrence=WHEN,
            questionnaire_response_reference="QuestionnaireResponse/abc",
        )
        RiskAssessment.model_validate(risk)
        assert risk["status"] == "final"
        assert risk["subject"] == {"reference": "Patient/123"}
        assert risk["basis"] == [{"reference": "QuestionnaireResponse/abc"}]
        assert datetime.fromisoformat(risk["occurrenceDateTime"]) == WHEN
        [prediction] = risk["prediction"]
        [coding] = prediction["qualitativeRisk"]["coding"]
        assert (coding["system"], coding["code"]) == (URGENCY_SYSTEM, level.value)
        assert prediction["qualitativeRisk"]["text"] == f"{result.level_label}: {result.action}"
        assert risk["language"] == result.locale == "en"
        assert prediction["rationale"] == result.summary
        ruleset = result.ruleset
        [method] = risk["method"]["coding"]
        assert (method["code"], method["version"]) == (ruleset.name, ruleset.version)
        assert ruleset.sha256 in risk["method"]["text"]
        assert {"url": "https://marrow-triage.example/fhir/StructureDefinition/rule-pack-sha256",
                "valueString": ruleset.sha256} in risk["extension"]
        notes = [note["text"] for note in risk.get("note", [])]
        for finding in result.findings:
            [note] = [n for n in notes if f"({finding.rule_id})" in n]
            assert finding.explanation in note
            assert finding.source.quote in note and finding.source.title in note
        for question in result.questions:
            assert any(question.text in n for n in notes)
        assert risk["mitigation"].splitlines()[0] == result.action
        for advice in result.advice:
            assert f"- {advice}" in risk["mitigation"].splitlines()

    check()


def test_risk_assessment_refuses_naive_times_and_empty_subjects() -> None:
    result = triage({"hours_since_procedure": 30})
    with pytest.raises(ValueError, match="timezone-aware"):
        to_risk_assessment(result, subject_reference="Patient/1", occurrence=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="subject_reference"):
        to_risk_assessment(result, subject_reference=" ", occurrence=WHEN)
    risk = to_risk_assessment(result, subject_reference="Patient/1", occurrence=WHEN)
    assert "basis" not in risk


def test_to_questionnaire_response_refuses_naive_authored() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        to_questionnaire_response({"hours_since_procedure": 1}, authored=datetime(2026, 1, 1))


def test_inputs_are_not_modified() -> None:
    data = json.loads((ROOT / "examples" / "fhir" / "emergency-bleeding.json").read_text("utf-8"))
    before = copy.deepcopy(data)
    from_questionnaire_response(data)
    assert data == before


# -- packaging and docs -----------------------------------------------------------------


def test_import_marrow_triage_does_not_import_fhir_resources() -> None:
    code = "import sys, marrow_triage; print('fhir.resources' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "False"


def test_docs_example_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
                           ) -> None:
    text = (ROOT / "docs" / "fhir.md").read_text("utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
    assert len(blocks) == 1
    monkeypatch.chdir(ROOT)
    exec(compile(blocks[0], "docs/fhir.md", "exec"), {"__name__": "docs_fhir"})
    out = capsys.readouterr().out
    assert QUESTIONNAIRE_URL in out
    assert "urgent" in out.splitlines()
    assert "back_or_abdominal_pain ->" in out


# -- any input: a report or a QuestionnaireResponseError, nothing else ------------------

_KEYS = ("linkId", "answer", "item", "valueDecimal", "valueInteger", "valueBoolean",
         "valueCoding", "valueQuantity", "valueString", "value", "code", "system", "unit",
         "comparator", "status", "questionnaire", "resourceType")
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
    | st.sampled_from([10**400, -(10**400), 2**63, 1e308, float("inf")])
    | st.sampled_from(["Cel", "[degF]", "none", "unusual", "chills", "hours_since_procedure"])
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


def _mutate(data: Any, draw: st.DrawFn) -> Any:
    """``data`` with one place replaced by arbitrary JSON, or one key deleted."""
    descend = draw(st.integers(0, 5)) > 0  # mostly deep, so that answers are hit
    if isinstance(data, dict) and data and descend:
        key = draw(st.sampled_from(sorted(data)))
        copied = dict(data)
        if draw(st.integers(0, 5)) == 0:
            del copied[key]
        else:
            copied[key] = _mutate(data[key], draw)
        return copied
    if isinstance(data, list) and data and descend:
        index = draw(st.integers(0, len(data) - 1))
        copied_list = list(data)
        copied_list[index] = _mutate(data[index], draw)
        return copied_list
    return draw(_JSON)


@st.composite
def _mutated_responses(draw: st.DrawFn) -> Any:
    qr = to_questionnaire_response(draw(reports()))
    for _ in range(draw(st.integers(1, 3))):
        qr = _mutate(qr, draw)
    return qr


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated_responses())
def test_any_input_gives_a_report_or_a_clear_error(qr: Any) -> None:
    try:
        report = from_questionnaire_response(qr)
    except QuestionnaireResponseError as error:
        assert error.problems
        assert all(p.message for p in error.problems)
    else:
        assert isinstance(report, SymptomReport)
        assert from_questionnaire_response(to_questionnaire_response(report)) == report


@pytest.mark.parametrize("number", [10**400, -(10**400), 2**63, 1e308, float("inf"),
                                    float("nan"), -0.0], ids=lambda v: repr(v)[:12])
@pytest.mark.parametrize("link_id", ["hours_since_procedure", "temperature", "site_pain"])
def test_extreme_numbers_give_a_clear_error(link_id: str, number: float) -> None:
    qr = _qr()
    answer: dict[str, Any] = {
        "hours_since_procedure": {"valueDecimal": number},
        "temperature": {"valueQuantity": {"value": number, "system": "http://unitsofmeasure.org",
                                          "code": "Cel"}},
        "site_pain": {"valueInteger": number},
    }[link_id]
    if link_id == "hours_since_procedure":
        qr["item"][0]["answer"] = [answer]
    else:
        qr["item"].append({"linkId": link_id, "answer": [answer]})
    if number == 0 and link_id == "hours_since_procedure":  # -0.0 hours: 0, valid
        assert from_questionnaire_response(qr).hours_since_procedure == 0
        return
    problems = _problems(qr)
    assert [p[0] for p in problems] == [link_id]


def test_module_docstring_example_runs() -> None:
    import doctest

    import marrow_triage.adapters.fhir.resources

    outcome = doctest.testmod(marrow_triage.adapters.fhir.resources)
    assert outcome.attempted >= 3
    assert outcome.failed == 0
