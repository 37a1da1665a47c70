"""FHIR R4 interface: the check-in as a Questionnaire, reports from QuestionnaireResponses,
results as RiskAssessments.

Needs the ``[fhir]`` extra (``pip install 'marrow-triage[fhir]'``). Resources are
validated with the R4B models of fhir.resources (``fhir.resources.R4B``): fhir.resources
8 puts R5 at its top level, and R4B is wire-compatible with R4 for the resources
used here (Questionnaire, QuestionnaireResponse, RiskAssessment, CodeSystem), so what this module
reads and writes is plain R4 JSON.

>>> from marrow_triage import triage
>>> from marrow_triage.adapters.fhir import from_questionnaire_response, to_questionnaire_response
>>> qr = to_questionnaire_response({"hours_since_procedure": 30, "chills": True})
>>> from_questionnaire_response(qr).chills
True

fhir.resources coerces loosely (``"5"`` passes as an integer, ``1`` as a boolean), so the
answers are read from the JSON with strict types after the resource has been validated:
a wrong answer type is an error naming the question, never a guess.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from marrow_triage._json import loads
from marrow_triage.audit import library_version
from marrow_triage.errors import (
    InstallError,
    Problem,
    QuestionnaireResponseError,
    ReportError,
    suggest,
)
from marrow_triage.models import (
    Finding,
    RulesetInfo,
    SymptomReport,
    TemperatureUnit,
    TriageResult,
    Urgency,
)

try:
    from fhir.resources.R4B.codesystem import CodeSystem
    from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
    from fhir.resources.R4B.riskassessment import RiskAssessment
except ImportError as exc:  # one line naming the extra, not a traceback into fhir.resources
    raise InstallError.missing_extra("marrow_triage.adapters.fhir", "fhir", exc) from None

__all__ = [
    "ACCEPTED_STATUSES",
    "BASE_URL",
    "QUESTIONNAIRE_URL",
    "URGENCY_SYSTEM",
    "QuestionnaireResponseError",
    "ResponseProblem",
    "code_systems",
    "from_questionnaire_response",
    "questionnaire",
    "to_questionnaire_response",
    "to_risk_assessment",
]

BASE_URL = "https://marrow-triage.example/fhir"
"""Namespace of the canonical URLs and code systems defined by marrow_triage."""
QUESTIONNAIRE_URL = f"{BASE_URL}/Questionnaire/marrow-aftercare-check-in"
"""Canonical URL of the aftercare check-in Questionnaire."""
URGENCY_SYSTEM = f"{BASE_URL}/CodeSystem/urgency"
"""Code system of the urgency levels (codes: the values of :class:`Urgency`)."""
RULE_PACK_SYSTEM = f"{BASE_URL}/CodeSystem/rule-pack"
ASSESSMENT_SYSTEM = f"{BASE_URL}/CodeSystem/assessment"
RULE_PACK_SHA256_EXTENSION = f"{BASE_URL}/StructureDefinition/rule-pack-sha256"
LIBRARY_VERSION_EXTENSION = f"{BASE_URL}/StructureDefinition/library-version"
UCUM = "http://unitsofmeasure.org"
UCUM_TEMPERATURE_UNITS: Mapping[str, TemperatureUnit] = MappingProxyType(
    {"Cel": TemperatureUnit.CELSIUS, "[degF]": TemperatureUnit.FAHRENHEIT}
)
ACCEPTED_STATUSES = frozenset({"completed", "amended", "in-progress"})
"""QuestionnaireResponse statuses that are triaged; ``stopped`` and
``entered-in-error`` are refused."""

_ANSWER_KEYS: Mapping[str, str] = MappingProxyType({
    "decimal": "valueDecimal",
    "integer": "valueInteger",
    "boolean": "valueBoolean",
    "choice": "valueCoding",
    "quantity": "valueQuantity",
    "text": "valueString",
})


ResponseProblem = Problem  # kept for callers of 0.1: a problem by linkId


@dataclass(frozen=True)
class _Item:
    link_id: str
    type: str
    text: str
    required: bool
    system: str | None = None
    codes: tuple[str, ...] = ()


@lru_cache(maxsize=1)
def _questionnaire_text() -> str:
    here = resources.files("marrow_triage.adapters.fhir")
    return here.joinpath("questionnaire.json").read_text("utf-8")


def questionnaire() -> dict[str, Any]:
    """The aftercare check-in Questionnaire (FHIR R4 JSON), a fresh copy on every call.

    Its items map one to one to :class:`SymptomReport` fields: ``linkId`` is the field
    name. Only ``hours_since_procedure`` is required.
    """
    data: dict[str, Any] = json.loads(_questionnaire_text())
    return data


@lru_cache(maxsize=1)
def _items() -> Mapping[str, _Item]:
    items: dict[str, _Item] = {}
    for raw in questionnaire()["item"]:
        options = [o["valueCoding"] for o in raw.get("answerOption", ())]
        items[raw["linkId"]] = _Item(
            link_id=raw["linkId"],
            type=raw["type"],
            text=raw["text"],
            required=bool(raw.get("required", False)),
            system=options[0]["system"] if options else None,
            codes=tuple(o["code"] for o in options),
        )
    return MappingProxyType(items)


def _canonical() -> str:
    q = questionnaire()
    return f"{q['url']}|{q['version']}"


def code_systems() -> list[dict[str, Any]]:
    """The FHIR CodeSystems behind the codes this module writes and reads.

    One for the urgency levels (:data:`URGENCY_SYSTEM`), one for the assessment code,
    and one per choice question (codes = the report's enum values, displays = the
    Questionnaire's answer texts). Each is validated with fhir.resources.
    """
    version = questionnaire()["version"]
    systems: list[dict[str, Any]] = [
        _code_system(
            URGENCY_SYSTEM, "urgency", "Urgency levels of marrow_triage", version,
            "How soon the patient needs care, ordered self_care < soon < urgent < emergency.",
            [(u.value, u.label, u.action) for u in Urgency],
        ),
        _code_system(
            ASSESSMENT_SYSTEM, "assessment", "Assessments made by marrow_triage", version,
            "What a marrow_triage RiskAssessment assesses.",
            [("bone-marrow-aftercare-urgency",
              "Urgency of symptoms after a bone marrow aspiration or biopsy",
              "The urgency level of the symptoms reported at one check-in after a bone "
              "marrow aspiration or biopsy.")],
        ),
    ]
    for item in questionnaire()["item"]:
        options = [o["valueCoding"] for o in item.get("answerOption", ())]
        if options:
            systems.append(_code_system(
                options[0]["system"], item["linkId"],
                f"Answers to the marrow_triage question {item['linkId']}", version,
                item["text"], [(o["code"], o["display"], o["display"]) for o in options],
            ))
    for system in systems:
        CodeSystem.model_validate(system)
    return systems


def _code_system(
    url: str, name: str, title: str, version: str, description: str,
    concepts: Sequence[tuple[str, str, str]],
) -> dict[str, Any]:
    return {
        "resourceType": "CodeSystem",
        "id": f"marrow-triage-{name.replace('_', '-')}",
        "url": url,
        "version": version,
        "name": "".join(part.capitalize() for part in re.split(r"[-_]", name)),
        "title": title,
        "status": "active",
        "publisher": "marrow_triage",
        "description": description,
        "caseSensitive": True,
        "content": "complete",
        "count": len(concepts),
        "concept": [
            {"code": code, "display": display, "definition": definition}
            for code, display, definition in concepts
        ],
    }


# -- QuestionnaireResponse -> SymptomReport --------------------------------------------


def from_questionnaire_response(
    qr: Mapping[str, Any] | QuestionnaireResponse | str | bytes,
) -> SymptomReport:
    """Read a completed check-in (a QuestionnaireResponse to :func:`questionnaire`).

    ``qr`` is the resource as JSON text (read strictly: a key given twice is refused,
    a UTF-8 byte-order mark accepted), as parsed JSON (a dict) or a fhir.resources R4B
    ``QuestionnaireResponse``. It is validated as FHIR, must reference this
    Questionnaire (``questionnaire`` is its url, optionally ``|version``), and each
    answer must have the type of its question. An unanswered question stays unset in
    the report (not asked, never "no").

    Raises :class:`QuestionnaireResponseError` listing every problem by linkId.
    """
    raw = _resource_json(qr)
    _validate_fhir(raw)
    problems = _check_header(raw)
    values, answer_problems = _read_items(raw.get("item") or ())
    problems += answer_problems
    problems += _unanswered_required(values, problems)
    if problems:
        raise QuestionnaireResponseError(problems)
    try:
        return SymptomReport.model_validate(values)
    except ValidationError as exc:
        raise QuestionnaireResponseError(
            [_report_problem(error) for error in exc.errors()]
        ) from None


def _resource_json(
    qr: Mapping[str, Any] | QuestionnaireResponse | str | bytes,
) -> Mapping[str, Any]:
    """The resource as parsed JSON; it must say it is a QuestionnaireResponse.

    Text is read strictly: a key given twice is refused, a byte-order mark accepted.
    """
    if isinstance(qr, str | bytes | bytearray):
        try:
            raw: Any = loads(qr)
        except ReportError as exc:
            raise QuestionnaireResponseError(exc.problems) from None
    elif isinstance(qr, Mapping):
        raw = qr
    elif callable(getattr(qr, "model_dump_json", None)):  # a fhir.resources model (R4B or R5)
        raw = json.loads(qr.model_dump_json())
    else:
        raw = qr
    if not isinstance(raw, Mapping):
        raise QuestionnaireResponseError([ResponseProblem(
            None, f"expected a QuestionnaireResponse resource (a JSON object), got "
                  f"{type(raw).__name__}"
        )])
    if raw.get("resourceType") != "QuestionnaireResponse":
        raise QuestionnaireResponseError([ResponseProblem(
            None, f"resourceType is {raw.get('resourceType')!r}, expected 'QuestionnaireResponse'"
        )])
    return raw


def _read_items(items: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], list[Problem]]:
    """The report values the items answer, and what is wrong with them, by linkId."""
    questions = _items()
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        link_id = item["linkId"]
        spec = questions.get(link_id)
        if spec is None:
            problems.append(ResponseProblem(link_id, _unknown_question(link_id)))
            continue
        if link_id in seen:
            problems.append(ResponseProblem(
                link_id, f"answered more than once (items {seen[link_id]} and {index})"
            ))
            continue
        seen[link_id] = index
        if item.get("item"):
            problems.append(ResponseProblem(
                link_id, "has nested items, but this question has no sub-questions"
            ))
        answers = item.get("answer") or []
        if len(answers) > 1:
            problems.append(ResponseProblem(
                link_id, f"has {len(answers)} answers, but this question takes one"
            ))
            continue
        if not answers:
            continue
        answer = answers[0]
        if answer.get("item"):
            problems.append(ResponseProblem(
                link_id, "has items nested in its answer, but this question has no sub-questions"
            ))
        value, problem = _read_answer(spec, answer)
        if problem is not None:
            problems.append(ResponseProblem(link_id, problem))
        else:
            values[link_id] = value
    return values, problems


def _unanswered_required(values: Mapping[str, Any], problems: Sequence[Problem]) -> list[Problem]:
    """A problem per required question neither answered nor already at fault."""
    at_fault = {p.field for p in problems}
    return [ResponseProblem(spec.link_id, "is required but was not answered")
            for spec in _items().values()
            if spec.required and spec.link_id not in values and spec.link_id not in at_fault]


def _validate_fhir(raw: Mapping[str, Any]) -> None:
    try:
        QuestionnaireResponse.model_validate(dict(raw))
    except (ValueError, TypeError) as exc:
        errors = exc.errors() if isinstance(exc, ValidationError) else []
        if not errors:
            raise QuestionnaireResponseError([ResponseProblem(
                None, f"not a valid FHIR QuestionnaireResponse: {exc}"
            )]) from None
        problems = []
        for error in errors:
            loc = tuple(error.get("loc", ()))
            path = ".".join(str(part) for part in loc)
            problems.append(ResponseProblem(
                _link_id_at(raw, loc),
                f"not valid FHIR at {path or 'the resource'}: {_message(error)}",
            ))
        raise QuestionnaireResponseError(problems) from None


def _link_id_at(raw: Mapping[str, Any], loc: tuple[Any, ...]) -> str | None:
    """The linkId of the top-level item a validation error points into, if any."""
    if len(loc) >= 2 and loc[0] == "item" and isinstance(loc[1], int):
        items = raw.get("item")
        if isinstance(items, list) and 0 <= loc[1] < len(items):
            item = items[loc[1]]
            link_id = item.get("linkId") if isinstance(item, Mapping) else None
            if isinstance(link_id, str) and link_id.strip():
                return link_id
    return None


def _message(error: Mapping[str, Any]) -> str:
    message = str(error.get("msg", "invalid"))
    return message.removeprefix("Value error, ")


def _check_header(raw: Mapping[str, Any]) -> list[ResponseProblem]:
    problems: list[ResponseProblem] = []
    status = raw.get("status")
    if status not in ACCEPTED_STATUSES:
        problems.append(ResponseProblem(
            None, f"status is {status!r}; only {', '.join(sorted(ACCEPTED_STATUSES))} "
                  "responses are triaged"
        ))
    reference = raw.get("questionnaire")
    q = questionnaire()
    if not isinstance(reference, str) or not reference:
        problems.append(ResponseProblem(
            None, f"does not say which Questionnaire it answers; expected "
                  f"'questionnaire': '{q['url']}|{q['version']}'"
        ))
    else:
        url, _, version = reference.partition("|")
        if url != q["url"]:
            problems.append(ResponseProblem(
                None, f"answers Questionnaire {url!r}, not the marrow_triage check-in "
                      f"{q['url']!r}"
            ))
        elif version and version != q["version"]:
            problems.append(ResponseProblem(
                None, f"answers version {version!r} of the check-in; this library reads "
                      f"version {q['version']!r}"
            ))
    return problems


def _unknown_question(link_id: str) -> str:
    return f"is not a question of the marrow_triage check-in{suggest(link_id, _items())}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _float(value: int | float | Decimal, name: str) -> tuple[float | None, str | None]:
    try:
        return float(value), None
    except OverflowError:
        return None, f"{name} is far out of range (got a number of {len(str(value))} digits)"


def _read_answer(spec: _Item, answer: Mapping[str, Any]) -> tuple[Any, str | None]:
    """The report value of one answer, or a message saying what is wrong with it."""
    expected = _ANSWER_KEYS[spec.type]
    given = [key for key in answer if key.startswith("value")]
    if given != [expected]:
        got = given[0] if given else "no value"
        return None, f"expected a {expected} answer ({spec.type} question), got {got}"
    value = answer[expected]
    if spec.type == "decimal":
        if not _is_number(value):
            return None, f"valueDecimal must be a number, got {_kind(value)}"
        return _float(value, "valueDecimal")
    if spec.type == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return None, f"valueInteger must be a whole number, got {_kind(value)}"
        return value, None
    if spec.type == "boolean":
        if not isinstance(value, bool):
            return None, f"valueBoolean must be true or false, got {_kind(value)}"
        return value, None
    if spec.type == "choice":
        return _read_coding(spec, value)
    if spec.type == "text":
        if not isinstance(value, str):
            return None, f"valueString must be text, got {_kind(value)}"
        return value, None
    return _read_temperature(value)


def _kind(value: Any) -> str:
    """What a wrong answer is, said without repeating it (it is the patient's)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "a list" if isinstance(value, list) else "an object"


def _read_coding(spec: _Item, coding: Any) -> tuple[Any, str | None]:
    if not isinstance(coding, Mapping):
        return None, "valueCoding must be a Coding"
    system = coding.get("system")
    if system is not None and system != spec.system:
        return None, f"code system {system!r} is not {spec.system!r}"
    code = coding.get("code")
    if code not in spec.codes:
        return None, f"unknown code {code!r}; expected one of {', '.join(spec.codes)}"
    return code, None


def _read_temperature(quantity: Any) -> tuple[Any, str | None]:
    if not isinstance(quantity, Mapping):
        return None, "valueQuantity must be a Quantity"
    if quantity.get("comparator") is not None:
        return None, (
            f"a reading with comparator {quantity['comparator']!r} is not a temperature; "
            "give the value shown on the thermometer"
        )
    units = " or ".join(f"{code!r}" for code in UCUM_TEMPERATURE_UNITS)
    code = quantity.get("code")
    if not isinstance(code, str) or code not in UCUM_TEMPERATURE_UNITS:
        return None, (
            f"unknown unit {code if code is not None else quantity.get('unit')!r}; give the "
            f"UCUM code {units} with system {UCUM!r}"
        )
    if quantity.get("system") != UCUM:
        return None, f"unit {code!r} must have system {UCUM!r}"
    value: Any = quantity.get("value")
    if not _is_number(value):
        return None, f"the temperature value must be a number, got {_kind(value)}"
    number, problem = _float(value, "the temperature value")
    if problem is not None:
        return None, problem
    return {"value": number, "unit": UCUM_TEMPERATURE_UNITS[code].value}, None


def _report_problem(error: Mapping[str, Any]) -> ResponseProblem:
    loc = tuple(error.get("loc", ()))
    link_id = str(loc[0]) if loc else None
    inner = ".".join(str(part) for part in loc[1:])
    # The answer itself is not repeated: error messages never echo a patient's report.
    message = _message(error)
    return ResponseProblem(link_id, f"{inner}: {message}" if inner else message)


# -- SymptomReport -> QuestionnaireResponse ---------------------------------------------


def to_questionnaire_response(
    report: SymptomReport | Mapping[str, Any],
    *,
    subject_reference: str | None = None,
    authored: datetime | None = None,
) -> dict[str, Any]:
    """The QuestionnaireResponse (R4 JSON) answering the check-in as ``report`` does.

    Fields left unset in the report are left out of the response, so
    ``from_questionnaire_response(to_questionnaire_response(r)) == r``.
    """
    if not isinstance(report, SymptomReport):
        report = SymptomReport.model_validate(report)
    items: list[dict[str, Any]] = []
    for spec in _items().values():
        value = getattr(report, spec.link_id)
        if value is None:
            continue
        items.append({
            "linkId": spec.link_id,
            "text": spec.text,
            "answer": [_answer(spec, value)],
        })
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": _canonical(),
        "status": "completed",
    }
    if subject_reference is not None:
        resource["subject"] = {"reference": subject_reference}
    if authored is not None:
        resource["authored"] = _datetime(authored, "authored")
    resource["item"] = items
    QuestionnaireResponse.model_validate(resource)
    return resource


def _answer(spec: _Item, value: Any) -> dict[str, Any]:
    if spec.type == "quantity":
        code = next(c for c, unit in UCUM_TEMPERATURE_UNITS.items() if unit is value.unit)
        return {"valueQuantity": {
            "value": value.value,
            "unit": f"°{value.unit.value}",
            "system": UCUM,
            "code": code,
        }}
    if spec.type == "choice":
        return {"valueCoding": {
            "system": spec.system,
            "code": value.value,
            "display": _display(spec.link_id, value.value),
        }}
    return {_ANSWER_KEYS[spec.type]: value}


def _display(link_id: str, code: str) -> str:
    for item in questionnaire()["item"]:
        if item["linkId"] == link_id:
            for option in item.get("answerOption", ()):
                if option["valueCoding"]["code"] == code:
                    return str(option["valueCoding"]["display"])
    return code  # pragma: no cover - every enum value has an answer option (tested)


def _datetime(value: datetime, name: str) -> str:
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware, e.g. datetime.now(timezone.utc)")
    return value.isoformat()


# -- TriageResult -> RiskAssessment -----------------------------------------------------


def to_risk_assessment(
    result: TriageResult,
    *,
    subject_reference: str,
    occurrence: datetime,
    questionnaire_response_reference: str | None = None,
) -> dict[str, Any]:
    """A FHIR R4 RiskAssessment recording ``result`` for ``subject_reference``.

    ``prediction[0].qualitativeRisk`` carries the urgency level (system
    :data:`URGENCY_SYSTEM`), ``method`` the rule pack (name, version, sha256), ``note``
    one entry per finding with its explanation and source, and per unanswered question
    that matters; ``mitigation`` the action and advice. ``occurrence`` must be
    timezone-aware. ``questionnaire_response_reference`` (e.g. a
    ``QuestionnaireResponse/123``) is recorded as the ``basis``.
    """
    if not subject_reference.strip():
        raise ValueError("subject_reference must name the patient, e.g. 'Patient/123'")
    version = library_version()
    resource: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "language": result.locale,
        "extension": [
            {"url": RULE_PACK_SHA256_EXTENSION, "valueString": result.ruleset.sha256},
            {"url": LIBRARY_VERSION_EXTENSION, "valueString": version},
        ],
        "status": "final",
        "method": _method(result.ruleset, version),
        "code": _assessment_code(),
        "subject": {"reference": subject_reference},
        "occurrenceDateTime": _datetime(occurrence, "occurrence"),
    }
    if questionnaire_response_reference is not None:
        resource["basis"] = [{"reference": questionnaire_response_reference}]
    resource["prediction"] = [_prediction(result)]
    resource["mitigation"] = "\n".join([result.action, *(f"- {a}" for a in result.advice)])
    notes = _notes(result)
    if notes:
        resource["note"] = notes
    RiskAssessment.model_validate(resource)
    return resource


_ASSESSMENT_TEXT = "Urgency of symptoms after a bone marrow aspiration or biopsy"


def _assessment_code() -> dict[str, Any]:
    """What every RiskAssessment assesses."""
    return {
        "coding": [{"system": ASSESSMENT_SYSTEM, "code": "bone-marrow-aftercare-urgency",
                    "display": _ASSESSMENT_TEXT}],
        "text": _ASSESSMENT_TEXT,
    }


def _method(ruleset: RulesetInfo, version: str) -> dict[str, Any]:
    """The rule pack (name, version, sha256, the packs it overlays) and library version
    that gave the result."""
    chain = "".join(f" on {ref.name} {ref.version}" for ref in reversed(ruleset.chain[:-1]))
    return {
        "coding": [{
            "system": RULE_PACK_SYSTEM,
            "version": ruleset.version,
            "code": ruleset.name,
            "display": f"marrow_triage rule pack {ruleset.name} {ruleset.version}",
        }],
        "text": (
            f"marrow_triage {version}, rule pack {ruleset.name} {ruleset.version}{chain} "
            f"(sha256 {ruleset.sha256})"
        ),
    }


def _prediction(result: TriageResult) -> dict[str, Any]:
    """The urgency level as the qualitative risk, with the summary as rationale."""
    level = result.level
    return {
        "outcome": {"text": "Care needed after a bone marrow aspiration or biopsy"},
        "qualitativeRisk": {
            "coding": [{"system": URGENCY_SYSTEM, "code": level.value, "display": level.label}],
            "text": f"{result.level_label or level.label}: {result.action}",
        },
        "rationale": result.summary,
    }


def _notes(result: TriageResult) -> list[dict[str, str]]:
    """A note per finding, per unanswered question that matters, and per reassurance."""
    notes = [{"text": _finding_note(finding)} for finding in result.findings]
    notes += [
        {"text": f"Not answered, and would change or confirm the result: {q.text} "
                 f"({q.field})"}
        for q in result.questions
    ]
    notes += [{"text": f"Reassurance: {text}"} for text in result.reassurance]
    return notes


def _finding_note(finding: Finding) -> str:
    source = finding.source
    where = f", {source.url}" if source.url else ""
    quoted = f'"{source.quote}"' if source.verbatim else f"({source.quote})"
    based_on = f" Based on: {', '.join(finding.based_on)}." if finding.based_on else ""
    return (
        f"{finding.level.label} ({finding.rule_id}): {finding.explanation}{based_on} "
        f"Source: {source.title}, {source.publisher}{where}, section "
        f"\"{source.section}\": {quoted}"
    )
