"""Checks of a rule pack beyond its schema: citations, explanations, escalations, questions.

Each check appends a :class:`~marrow_triage.errors.Problem` naming the file, rule id and
field; the loader raises them all together.
"""

from __future__ import annotations

import string
from fractions import Fraction
from typing import Any

from marrow_triage.errors import Problem
from marrow_triage.models import Urgency
from marrow_triage.pack.conditions import (
    AllOf,
    AnyOf,
    Condition,
    FieldTest,
    condition_fields,
    suggest,
    thresholds,
)
from marrow_triage.pack.facts import FACT_FIELDS, TIMELINE_FACT_FIELDS
from marrow_triage.pack.spec import (
    ESCALATION_PLACEHOLDERS,
    PackMeta,
    QuestionSpec,
    RuleSpec,
    SourceRef,
    TimelineRuleSpec,
)
from marrow_triage.units import format_number

__all__ = ["check_rules", "check_timeline_rules"]


def check_rules(meta: PackMeta, rules: dict[str, tuple[str, RuleSpec]],
                 questions: dict[str, tuple[str, QuestionSpec]],
                problems: list[Problem]) -> None:
    """Check report rules and questions beyond their schema; append what is wrong."""
    for rule_id, (label, rule) in sorted(rules.items()):
        problem = _reporter(problems, label, rule_id)
        _check_document(meta, rule.source, problem)
        if (rule.when is None) == (rule.when_findings is None):
            problem("when", "give exactly one of `when` (report facts) or `when_findings`")
            continue
        if rule.reassurance and rule.level is not Urgency.SELF_CARE:
            problem("reassurance", "only self_care rules reassure; a warning sign never does")
        placeholders = _placeholders(rule.explanation, problem)
        if rule.when_findings is not None:
            if rule.level <= rule.when_findings.level:
                problem("when_findings.level", f"an escalation must raise the level: it counts "
                        f"{rule.when_findings.level.value} findings but is itself "
                        f"{rule.level.value}, so it could feed on its own findings (a cycle)")
            allowed: tuple[str, ...] = ESCALATION_PLACEHOLDERS
            needed = ["count"]
            numbers = [Fraction(rule.when_findings.at_least)]
        else:
            assert rule.when is not None
            allowed = tuple(FACT_FIELDS)
            needed = [f for f in condition_fields(rule.when) if _reads_value(rule.when, f)]
            numbers = thresholds(rule.when)
        _check_explanation(rule.explanation, placeholders, allowed, needed, numbers, problem)
    for question_id, (label, question) in sorted(questions.items()):
        if question.when is not None and question.field in condition_fields(question.when):
            problems.append(Problem.in_pack(label, question_id, "when", "a question is asked when "
                                        f"{question.field} is missing; do not also test it"))


def check_timeline_rules(meta: PackMeta, rules: dict[str, tuple[str, TimelineRuleSpec]],
                         problems: list[Problem]) -> None:
    """Check timeline rules beyond their schema; append what is wrong."""
    for rule_id, (label, rule) in sorted(rules.items()):
        problem = _reporter(problems, label, rule_id)
        _check_document(meta, rule.source, problem)
        if rule.level is Urgency.SELF_CARE:
            problem("level", "a timeline rule reports a warning sign; self_care adds nothing")
        placeholders = _placeholders(rule.explanation, problem)
        needed = [f for f in condition_fields(rule.when) if _reads_value(rule.when, f)]
        _check_explanation(rule.explanation, placeholders, tuple(TIMELINE_FACT_FIELDS), needed,
                           thresholds(rule.when), problem)


def _reporter(problems: list[Problem], label: str, rule_id: str) -> Any:
    """A ``problem(field, message)`` callback for one rule of one file."""
    def problem(field: str, message: str) -> None:
        problems.append(Problem.in_pack(label, rule_id, field, message))
    return problem


def _check_document(meta: PackMeta, source: SourceRef, problem: Any) -> None:
    if source.document not in meta.documents:
        problem("source.document", f"unknown document {source.document!r}"
                f"{suggest(source.document, tuple(meta.documents))}")


def _check_explanation(text: str, placeholders: set[str], allowed: tuple[str, ...],
                       needed: list[str], numbers: list[Fraction], problem: Any) -> None:
    """An explanation uses known placeholders, shows each measured value and threshold."""
    for name in sorted(placeholders - set(allowed)):
        problem("explanation", f"unknown placeholder {{{name}}}{suggest(name, allowed)}")
    for name in needed:
        if name not in placeholders:
            problem("explanation", f"must show the measured value: add {{{name}}}")
    for number in numbers:
        shown = format_number(number, 6)
        if shown not in text:
            problem("explanation", f"must state the threshold {shown}")


def _reads_value(condition: Condition, field: str) -> bool:
    """True when some test of ``field`` needs its value (not only ``missing``)."""
    if isinstance(condition, FieldTest):
        return condition.field == field and condition.op != "missing"
    assert isinstance(condition, AllOf | AnyOf)
    return any(_reads_value(part, field) for part in condition.parts)


def _placeholders(template: str, problem: Any) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name}
    except ValueError as exc:
        problem("explanation", f"bad template: {exc}")
        return set()
