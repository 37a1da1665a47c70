"""Compilation of a :class:`~marrow_triage.pack.spec.RulePack` to durable_rules definitions.

What the engine sees; how facts reach it (and every call into durable_rules) is
:mod:`marrow_triage.engine.durable`.

The engine sees three kinds of fact, each tagged by ``t``:

* ``report``: the report's facts. Warning-sign, after-effect and question rules match it
  (a question key that needs nothing but its field unanswered is not compiled: see
  :func:`unconditional_questions`).
* ``findings``: how many findings fired at each level so far. Escalation rules match it.
* every fact is also matched by a catch-all rule, because durable_rules crashes when a
  session holding an unmatched fact is deleted.

Numbers enter the engine as whole millionths, rounded down, and thresholds have at most
six decimal places, so ``x ≥ t`` and ``x < t`` in the engine agree exactly with the same
comparison on the exact value: ``floor(x·10⁶) ≥ t·10⁶ ⇔ x ≥ t`` when ``t·10⁶`` is whole.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from marrow_triage.models import Urgency
from marrow_triage.pack.conditions import AllOf, AnyOf, Condition, FieldTest
from marrow_triage.pack.spec import FindingsCount, RulePack

__all__ = [
    "CATCH_ALL",
    "QUESTION_PREFIX",
    "RULE_PREFIX",
    "SCALE",
    "CompiledRuleset",
    "compile_pack",
    "compile_timeline",
    "count_field",
    "engine_number",
    "parse_question_key",
    "question_key",
    "timeline_levels",
    "unconditional_questions",
]

SCALE = 10**6
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


def question_key(question_id: str, rule_id: str) -> str:
    """What a question's engine rule records when it fires: the question, and the rule
    some answer to it could make fire (``ask-temperature@fever``)."""
    return f"{question_id}@{rule_id}"


def parse_question_key(key: str) -> tuple[str, str]:
    """The question id and rule id of a :func:`question_key` (ids never hold ``@``)."""
    question_id, _, rule_id = key.partition("@")
    return question_id, rule_id


def compile_pack(pack: RulePack) -> CompiledRuleset:
    """Compile every rule and question of ``pack``."""
    rules: dict[str, Any] = {}
    for rule in pack.rules:
        if rule.when_findings is not None:
            pattern: Any = _findings_pattern(rule.when_findings)
        else:
            assert rule.when is not None
            pattern = {"$and": [{"t": "report"}, _condition(rule.when)]}
        rules[RULE_PREFIX + rule.id] = {"all": [{"m": pattern}]}
    read_from_report = {key for keys in unconditional_questions(pack).values() for key in keys}
    for question in pack.questions_to_ask:
        # One rule per rule an answer could fire: it fires when the field is unanswered
        # and the rest of that rule already holds (recorded as ``question_key``).
        for rule_id, rest in pack.raising_answers(question.field).items():
            if question_key(question.id, rule_id) in read_from_report:
                continue
            tests: list[Any] = [{"t": "report"}, {"$nex": {question.field: 1}}]
            if question.when is not None:
                tests.append(_condition(question.when))
            if not isinstance(rest, bool):
                tests.append(_condition(rest))
            rules[QUESTION_PREFIX + question_key(question.id, rule_id)] = {
                "all": [{"m": {"$and": tests}}]}
    rules[CATCH_ALL] = {"all": [{"m": {"$ex": {"t": 1}}}]}
    name = f"marrow_triage_{pack.sha256[:16]}"
    return CompiledRuleset(name=name, rules=dict(sorted(rules.items())),
                           escalation_thresholds=_escalation_thresholds(pack))


def unconditional_questions(pack: RulePack) -> dict[str, tuple[str, ...]]:
    """Per fact, the question keys that hold whenever that fact is unanswered.

    Such a key's question has no condition of its own, and the rule an answer could fire
    needs nothing but that answer. Its engine rule would only test that a field is
    missing (about twenty of them fired per report, a third of an evaluation's cost), so
    it is not compiled: the explainer reads it from the report instead, where a fact is
    missing exactly when its report field is None (as in :mod:`~marrow_triage.engine.durable`).
    """
    keys: dict[str, list[str]] = {}
    for question in pack.questions_to_ask:
        if question.when is not None:
            continue
        for rule_id, rest in pack.raising_answers(question.field).items():
            if rest is True:
                keys.setdefault(question.field, []).append(question_key(question.id, rule_id))
    return {fact: tuple(sorted(found)) for fact, found in sorted(keys.items())}


def timeline_levels(pack: RulePack) -> dict[str, Urgency]:
    """The level of each rule of the timeline ruleset: timeline rules and escalations."""
    levels = {rule.id: rule.level for rule in pack.timeline_rules}
    levels.update({rule.id: rule.level for rule in pack.rules if rule.is_escalation})
    return levels


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
            rules[RULE_PREFIX + escalation.id] = {
                "all": [{"m": _findings_pattern(escalation.when_findings)}]}
    rules[CATCH_ALL] = {"all": [{"m": {"$ex": {"t": 1}}}]}
    name = f"marrow_timeline_{pack.sha256[:16]}"
    return CompiledRuleset(name=name, rules=dict(sorted(rules.items())),
                           escalation_thresholds=_escalation_thresholds(pack))


def _findings_pattern(when: FindingsCount) -> Any:
    """An escalation's pattern: the findings fact counts enough findings at its level."""
    return {"$and": [{"t": "findings"}, {"$gte": {count_field(when.level): when.at_least}}]}


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
