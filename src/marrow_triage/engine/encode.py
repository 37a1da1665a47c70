"""Compilation of a :class:`~marrow_triage.pack.loader.RulePack` to durable_rules definitions.

The engine sees three kinds of fact, each tagged by ``t``:

* ``report``: the report's facts. Warning-sign, after-effect and question rules match it.
* ``findings``: how many findings fired at each level so far. Escalation rules match it.
* every fact is also matched by a catch-all rule, because durable_rules crashes when a
  session holding an unmatched fact is deleted.

Numbers enter the engine as whole millionths, rounded down, and thresholds have at most
six decimal places, so ``x ≥ t`` and ``x < t`` in the engine agree exactly with the same
comparison on the exact value: ``floor(x·10⁶) ≥ t·10⁶ ⇔ x ≥ t`` when ``t·10⁶`` is whole.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType
from typing import Any

from marrow_triage.models import SymptomReport, TemperatureUnit, Urgency
from marrow_triage.pack.conditions import AllOf, AnyOf, Condition, FieldTest
from marrow_triage.pack.facts import READ_PLAN, TIMELINE_FACT_FIELDS, FactValue
from marrow_triage.pack.spec import RulePack
from marrow_triage.units import decimal_of

__all__ = [
    "CATCH_ALL",
    "CompiledRuleset",
    "compile_pack",
    "compile_timeline",
    "engine_fact",
    "engine_number",
    "fact_members",
    "report_members",
]

SCALE = 10**6
_JSON_STRINGS: Mapping[str, str] = MappingProxyType({
    text: json.dumps(text)
    for field in TIMELINE_FACT_FIELDS.values()
    for text in (field.name, *field.values)
})
"""JSON literals of every fact name and enum value, computed once."""
CATCH_ALL = "catch-all"
RULE_PREFIX = "rule:"
QUESTION_PREFIX = "question:"

Action = Callable[[Any], None]


def engine_number(value: Fraction | int) -> int:
    """A number as the engine sees it: whole millionths, rounded down."""
    if isinstance(value, int):
        return value * SCALE
    # Integer floor division is exactly floor(value * SCALE): denominators are positive.
    return (value.numerator * SCALE) // value.denominator


def engine_fact(facts: Mapping[str, FactValue]) -> dict[str, int | bool | str]:
    """A fact's values as durable_rules sees them, as a dict.

    The plain statement of the encoding; :func:`fact_members` and :func:`report_members`
    build the same thing as JSON text, faster, and are tested against it.
    """
    out: dict[str, int | bool | str] = {}
    for name, value in facts.items():
        out[name] = value if isinstance(value, bool | str) else engine_number(value)
    return out


def fact_members(facts: Mapping[str, FactValue]) -> str:
    """The members of a fact's JSON object (``"name":value,…``) as durable_rules sees them.

    Built by hand because it runs for every report and ``json.dumps`` cost as much as
    durable_rules' own matching; names and strings are JSON-encoded through a table of
    the schema's names and enum values, with ``json.dumps`` for anything else.
    """
    return ",".join(f"{_json_string(name)}:{_json_value(value)}"
                    for name, value in facts.items())


def report_members(report: SymptomReport) -> str:
    """:func:`fact_members` of ``report_facts(report)``, computed without fractions.

    The engine's whole millionths come straight from the decimal the patient typed, as
    ``n / d`` in integers: ``floor(n·10⁶ / d)``, and in °F ``floor((n − 32d)·5·10⁶ / 9d)``.
    Tests check it against the exact route (fractions) for every report.
    """
    encoders = _MEMBER_ENCODERS
    return ",".join([encoders[field](value) for field, value in report.__dict__.items()
                     if value is not None and field in encoders])


def _member_encoder(name: str, kind: str) -> Callable[[Any], str]:
    """Encodes one answered report field as the member of its fact."""
    prefix = f"{_json_string(name)}:"
    if name == "temperature_c":
        return lambda reading: prefix + str(_engine_celsius(reading.value, reading.unit))
    if kind == "number":
        return lambda value: prefix + str(_engine_decimal(value))
    if kind == "integer":
        return lambda value: prefix + str(value * SCALE)
    if kind == "boolean":
        return {True: prefix + "true", False: prefix + "false"}.__getitem__
    return lambda member: prefix + _json_string(str(member.value))


def _written(value: float | int) -> tuple[int, int]:
    """``(n, d)``, ``d > 0``, with ``n / d`` exactly the decimal ``value`` was written as."""
    if isinstance(value, int):
        return value, 1
    text = repr(value)
    if "e" in text:  # exponent form: rare, let Decimal read it
        return decimal_of(value).as_integer_ratio()
    whole, _, fraction = text.partition(".")
    return int(whole + fraction), 10 ** len(fraction)


def _engine_decimal(value: float | int) -> int:
    numerator, denominator = _written(value)
    return numerator * SCALE // denominator


def _engine_celsius(value: float | int, unit: TemperatureUnit) -> int:
    numerator, denominator = _written(value)
    if unit is TemperatureUnit.CELSIUS:
        return numerator * SCALE // denominator
    # floor((n/d − 32) · 5/9 · 10⁶), in integers.
    return (numerator - 32 * denominator) * 5 * SCALE // (9 * denominator)


def _json_string(text: str) -> str:
    return _JSON_STRINGS.get(text) or json.dumps(text)


def _json_value(value: FactValue) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _json_string(value)
    return str(engine_number(value))


def count_field(level: Urgency) -> str:
    """Name of the findings-fact field counting findings at ``level``."""
    return f"n_{level.value}"


@dataclass(frozen=True)
class CompiledRuleset:
    """A pack compiled to a durable_rules ruleset definition (without actions)."""

    name: str
    rules: Mapping[str, Any]
    escalation_thresholds: Mapping[str, int]
    """Per findings-fact field, the fewest findings any escalation rule needs there.

    While every count is below these, no escalation rule can match, and the engine need
    not assert the findings fact at all.
    """

    def definitions(self, action_for: Callable[[str], Action]) -> dict[str, Any]:
        """A fresh definitions dict for one ``Host``; durable_rules mutates what it is given."""
        rules = copy.deepcopy(dict(self.rules))
        for key, rule in rules.items():
            rule["run"] = action_for(key)
        return {self.name: rules}


def compile_pack(pack: RulePack) -> CompiledRuleset:
    """Compile every rule and question of ``pack``."""
    rules: dict[str, Any] = {}
    for rule in pack.rules:
        if rule.when_findings is not None:
            pattern: Any = {"$and": [
                {"t": "findings"},
                {"$gte": {count_field(rule.when_findings.level): rule.when_findings.at_least}},
            ]}
        else:
            assert rule.when is not None
            pattern = {"$and": [{"t": "report"}, _condition(rule.when)]}
        rules[RULE_PREFIX + rule.id] = {"all": [{"m": pattern}]}
    for question in pack.questions:
        tests: list[Any] = [{"t": "report"}, {"$nex": {question.field: 1}}]
        if question.when is not None:
            tests.append(_condition(question.when))
        rules[QUESTION_PREFIX + question.id] = {"all": [{"m": {"$and": tests}}]}
    rules[CATCH_ALL] = {"all": [{"m": {"$ex": {"t": 1}}}]}
    name = f"marrow_triage_{pack.sha256[:16]}"
    return CompiledRuleset(name=name, rules=dict(sorted(rules.items())),
                           escalation_thresholds=_escalation_thresholds(pack))


def compile_timeline(pack: RulePack) -> CompiledRuleset:
    """Compile the pack's timeline rules, plus its escalation rules and the catch-all.

    The timeline fact (tag ``report``) holds the current check-in's facts and the history
    facts; escalations count the findings of the report and the timeline together.
    """
    rules: dict[str, Any] = {}
    for rule in pack.timeline_rules:
        pattern = {"$and": [{"t": "report"}, _condition(rule.when)]}
        rules[RULE_PREFIX + rule.id] = {"all": [{"m": pattern}]}
    for escalation in pack.rules:
        if escalation.when_findings is not None:
            rules[RULE_PREFIX + escalation.id] = {"all": [{"m": {"$and": [
                {"t": "findings"},
                {"$gte": {count_field(escalation.when_findings.level):
                          escalation.when_findings.at_least}},
            ]}}]}
    rules[CATCH_ALL] = {"all": [{"m": {"$ex": {"t": 1}}}]}
    name = f"marrow_timeline_{pack.sha256[:16]}"
    return CompiledRuleset(name=name, rules=dict(sorted(rules.items())),
                           escalation_thresholds=_escalation_thresholds(pack))


def _escalation_thresholds(pack: RulePack) -> dict[str, int]:
    thresholds: dict[str, int] = {}
    for rule in pack.rules:
        if rule.when_findings is not None:
            key = count_field(rule.when_findings.level)
            least = rule.when_findings.at_least
            thresholds[key] = min(least, thresholds.get(key, least))
    return dict(sorted(thresholds.items()))


def _condition(condition: Condition) -> Any:
    if isinstance(condition, AllOf):
        return {"$and": [_condition(part) for part in condition.parts]}
    if isinstance(condition, AnyOf):
        return {"$or": [_condition(part) for part in condition.parts]}
    return _test(condition)


def _test(test: FieldTest) -> Any:
    if test.op == "missing":
        return {"$nex" if test.value else "$ex": {test.field: 1}}
    if test.op == "at_least":
        assert isinstance(test.value, Fraction)
        return {"$gte": {test.field: engine_number(test.value)}}
    if test.op == "below":
        assert isinstance(test.value, Fraction)
        return {"$lt": {test.field: engine_number(test.value)}}
    if test.op == "is":
        return {test.field: _scalar(test.value)}
    assert isinstance(test.value, tuple)
    return {"$or": [{test.field: _scalar(v)} for v in test.value]}


def _scalar(value: object) -> int | bool | str:
    if isinstance(value, bool | str):
        return value
    assert isinstance(value, int)
    return engine_number(value)


_MEMBER_ENCODERS: Mapping[str, Callable[[Any], str]] = MappingProxyType({
    report_field: _member_encoder(name, kind) for name, report_field, kind in READ_PLAN
})
"""Report field name to its encoder, for the fields that are facts."""
