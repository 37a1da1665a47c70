"""An independent reference evaluator of the rule files, for differential tests.

It reads the YAML itself (``yaml.safe_load``), evaluates conditions with exact Fraction
arithmetic straight from the report, and applies escalation rules by counting findings at
a level until nothing changes. It shares no code with ``marrow_triage.pack.loader``,
``conditions``, ``compile``, ``facts``, ``units`` or ``engine``: only the report model is
used, as input. Kept small on purpose, so that it can be read and trusted.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from marrow_triage.models import SymptomReport

LEVELS = ("self_care", "soon", "urgent", "emergency")

# Report field each fact name is read from (all the same name except the temperature).
FACT_SOURCE = {"temperature_c": "temperature"}


def exact(number: float | int) -> Fraction:
    """The decimal a number was written as, exactly."""
    if isinstance(number, bool):
        raise TypeError("a boolean is not a number")
    return Fraction(Decimal(repr(number))) if isinstance(number, float) else Fraction(number)


def report_facts(report: SymptomReport) -> dict[str, Any]:
    """Fact name -> exact value; unanswered fields are absent."""
    data = report.model_dump(mode="json", exclude_none=True)
    facts: dict[str, Any] = {}
    for name, value in data.items():
        if name == "temperature":
            reading = exact(value["value"])
            facts["temperature_c"] = (
                reading if value["unit"] == "C" else (reading - 32) * Fraction(5, 9)
            )
        elif isinstance(value, bool | str):
            facts[name] = value
        else:
            facts[name] = exact(value)
    return facts


def _same(a: object, b: object) -> bool:
    # True == 1 in Python; a flag must never equal a number here.
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def holds(condition: dict[str, Any], facts: dict[str, Any]) -> bool:
    """Every entry of the mapping holds."""
    for key, tests in condition.items():
        if key == "all":
            if not all(holds(part, facts) for part in tests):
                return False
        elif key == "any":
            if not any(holds(part, facts) for part in tests):
                return False
        elif not all(_test(facts.get(key), op, arg) for op, arg in tests.items()):
            return False
    return True


def _test(value: Any, op: str, arg: Any) -> bool:
    if op == "missing":
        return (value is None) == arg
    if value is None:
        return False
    if op in ("at_least", "below") and (isinstance(value, bool | str)):
        return False  # a trial answer of another kind (see ReferencePack._answers)
    if op == "at_least":
        return bool(value >= exact(arg))
    if op == "below":
        return bool(value < exact(arg))
    if op == "is":
        return _same(value, arg)
    if op == "one_of":
        return any(_same(value, a) for a in arg)
    raise ValueError(f"unknown test {op!r}")


def _condition_facts(condition: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for key, value in condition.items():
        if key in ("all", "any"):
            for part in value:
                out |= _condition_facts(part)
        else:
            out.add(key)
    return out


def _condition_tests(condition: dict[str, Any], fact: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in condition.items():
        if key in ("all", "any"):
            for part in value:
                out.extend(_condition_tests(part, fact))
        elif key == fact:
            out.extend(value.items())
    return out


def _resolved(item: Any, parameters: dict[str, Any]) -> Any:
    """``item`` with every ``$name`` threshold replaced by the parameter's value."""
    if isinstance(item, dict):
        return {k: _resolved(v, parameters) for k, v in item.items()}
    if isinstance(item, list):
        return [_resolved(v, parameters) for v in item]
    if isinstance(item, str) and item.startswith("$"):
        return parameters[item[1:]]
    return item


class Verdict(NamedTuple):
    """(level, fired rule ids, question ids): unpacks like a tuple."""

    level: str
    rules: frozenset[str]
    questions: frozenset[str]


class ReferencePack:
    """The rules and questions of a rule directory, read with ``yaml.safe_load``."""

    def __init__(self, directory: Path) -> None:
        self.rules: list[dict[str, Any]] = []
        self.questions: list[dict[str, Any]] = []
        meta = yaml.safe_load((directory / "pack.yaml").read_text(encoding="utf-8")) or {}
        self.parameters = {name: p["value"] for name, p in
                           (meta.get("parameters") or {}).items()}
        for path in sorted(directory.glob("*.yaml")):
            if path.name == "pack.yaml":
                continue
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            self.rules.extend(_resolved(r, self.parameters) for r in data.get("rules", []))
            self.questions.extend(_resolved(q, self.parameters)
                                  for q in data.get("questions", []))

    def evaluate(self, report: SymptomReport | Mapping[str, Any], *,
                 questions: bool = True) -> Verdict:
        """Triage a report (or its JSON-form dict) by the rule files alone.

        Questions are found by brute force: an unanswered fact is asked when some answer
        to it, with the rest of the report as it is, gives a higher level.
        """
        if not isinstance(report, SymptomReport):
            report = SymptomReport.model_validate(report)
        facts = report_facts(report)
        level, fired = self._level(facts)
        if not questions:  # the brute force below is slow; the benchmark needs levels only
            return Verdict(level, frozenset(fired), frozenset())
        asked = self.reach(report)
        by_field = {q["field"]: q["id"] for q in self.questions}
        questions = {by_field.get(fact, f"fallback-{fact.replace('_', '-')}")
                     for fact in asked
                     if holds(self._question_when(by_field.get(fact)), facts)}
        return Verdict(level, frozenset(fired), frozenset(questions))

    def reach(self, report: SymptomReport) -> dict[str, str]:
        """Unanswered fact -> the highest level some answer to it gives, for the facts
        where that is above the report's level."""
        facts = report_facts(report)
        level = self._level(facts)[0]
        out = {}
        for fact in self._read_facts():
            if fact in facts or fact == "hours_since_procedure":
                continue
            reach = max((self._level({**facts, fact: value})[0]
                         for value in self._answers(fact)), key=LEVELS.index)
            if LEVELS.index(reach) > LEVELS.index(level):
                out[fact] = reach
        return out

    def questions_in_order(self, report: SymptomReport) -> list[str]:
        """The report fields to ask about: highest reach first, ties in the order of the
        report's fields (``SymptomReport``'s field order)."""
        from marrow_triage.pack.facts import FACT_FIELDS

        field_order = list(SymptomReport.model_fields)
        reach = {FACT_FIELDS[fact].report_field: level
                 for fact, level in self.reach(report).items()}
        return sorted(reach, key=lambda name: (-LEVELS.index(reach[name]),
                                               field_order.index(name)))

    def _question_when(self, question_id: str | None) -> dict[str, Any]:
        for q in self.questions:
            if q["id"] == question_id:
                return q.get("when") or {}
        return {}

    def _read_facts(self) -> set[str]:
        return {fact for rule in self.rules if "when" in rule
                for fact in _condition_facts(rule["when"])}

    def _answers(self, fact: str) -> list[Any]:
        """Every answer to ``fact`` that can matter: each value the rules name, each
        threshold and just either side of it, yes and no, a text."""
        values: set[Any] = {True, False, "some text"}
        for rule in self.rules:
            if "when" not in rule:
                continue
            for op, arg in _condition_tests(rule["when"], fact):
                if op in ("at_least", "below"):
                    point = exact(arg)
                    values.update({point, point - Fraction(1, 100), point + Fraction(1, 100)})
                elif op == "is":
                    values.add(arg)
                elif op == "one_of":
                    values.update(arg)
        return sorted(values, key=repr)

    def _level(self, facts: dict[str, Any]) -> tuple[str, dict[str, str]]:
        fired = {r["id"]: r["level"] for r in self.rules
                 if "when" in r and holds(r["when"], facts)}
        while True:  # escalations, until nothing new fires
            added = False
            for rule in self.rules:
                trigger = rule.get("when_findings")
                if trigger is None or rule["id"] in fired:
                    continue
                count = sum(1 for level in fired.values() if level == trigger["level"])
                if count >= trigger["at_least"]:
                    fired[rule["id"]] = rule["level"]
                    added = True
            if not added:
                break
        level = max(fired.values(), key=LEVELS.index, default="self_care")
        return level, fired
