"""Checks of a rule pack beyond its schema: citations, explanations, escalations, questions.

Each check appends a :class:`~marrow_triage.errors.Problem` naming the file, rule id and
field; the loader raises them all together.
"""

from __future__ import annotations

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
    PATIENT_TEXT_PLACEHOLDERS,
    PackMeta,
    QuestionSpec,
    RuleSpec,
    SourceRef,
    TimelineRuleSpec,
)
from marrow_triage.pack.templates import placeholders as template_placeholders
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
        _check_patient_texts({"advice": rule.advice, "reassurance": rule.reassurance}, problem)
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
        _check_patient_texts({"text": (question.text,)}, _reporter(problems, label, question_id))
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
        _check_patient_texts({"advice": rule.advice}, problem)
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


def _placeholders(template: str, problem: Any, field: str = "explanation") -> set[str]:
    """The template's placeholder names; a template that is not plain is a problem."""
    try:
        return set(template_placeholders(template))
    except ValueError as exc:  # the schema refuses these too; packs built in code may not
        problem(field, str(exc))
        return set()


def _check_patient_texts(texts: dict[str, tuple[str, ...]], problem: Any) -> None:
    """Advice, reassurance and question texts use only the placeholders someone fills."""
    allowed = PATIENT_TEXT_PLACEHOLDERS
    for field, items in texts.items():
        for index, text in enumerate(items):
            where = field if field == "text" else f"{field}.{index}"
            for name in sorted(_placeholders(text, problem, where) - set(allowed)):
                known = f"; known: {', '.join(allowed)}" if allowed else \
                    "; this text has none (write {{ and }} for literal braces)"
                problem(where, f"unknown placeholder {{{name}}}{suggest(name, allowed)}{known}")
