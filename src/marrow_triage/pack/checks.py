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
)
from marrow_triage.pack.explained_thresholds import condition_thresholds, threshold_problems
from marrow_triage.pack.facts import FACT_FIELDS, TIMELINE_FACT_FIELDS
from marrow_triage.pack.spec import (
    ESCALATION_PLACEHOLDERS,
    HISTORY_PLACEHOLDERS,
    PackMeta,
    QuestionSpec,
    RuleSpec,
    SourceRef,
    TimelineRuleSpec,
)
from marrow_triage.pack.templates import placeholders as template_placeholders
from marrow_triage.pack.templates import render

__all__ = [
    "MAX_GROUPS_PER_RULE",
    "MAX_RULES_PER_RULESET",
    "MAX_TESTS_PER_RULE",
    "MAX_TESTS_PER_RULESET",
    "check_engine_limits",
    "check_rules",
    "check_timeline_rules",
    "condition_groups",
    "condition_tests",
]

# durable_rules 2.0.28 refuses rulesets past fixed sizes of its C rule network (rules.h,
# rete.h); measured here and documented in docs/rules-format.md ("Limits").
MAX_GROUPS_PER_RULE = 14
"""``any``/``all``/``one_of`` groups (and mappings of several tests) in one ``when``.
Each group takes two of the 32 expression slots of a rule's pattern and the report tag
takes two more: 15 groups in one rule end in durable_rules error 113."""
MAX_TESTS_PER_RULE = 128
"""Tests in one ``when`` (each ``one_of`` value counts): durable_rules keeps at most 128
``missing`` tests below one node of its network (error 107 past that)."""
MAX_TESTS_PER_RULESET = 500
"""Tests of all the rules compiled together (a question's own ``missing`` test and an
escalation's count test included): with more than 512 different tests below one node,
durable_rules does not fail but loops for ever, so this stays below that."""
MAX_RULES_PER_RULESET = 256
"""Rules (with questions) compiled together: durable_rules lets at most 257 rules end in
the same test (error 108), and the catch-all rule is one of them."""


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
            numbers = [(Fraction(rule.when_findings.at_least), "")]
        else:
            assert rule.when is not None
            allowed = tuple(FACT_FIELDS)
            needed = [f for f in condition_fields(rule.when) if _reads_value(rule.when, f)]
            numbers = condition_thresholds(rule.when, FACT_FIELDS)
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
        settings = {} if meta.history is None else meta.history.placeholders()
        # The history settings are filled in first: the text states what they show.
        shown = render(rule.explanation, settings.get)
        _check_explanation(shown, placeholders, (*TIMELINE_FACT_FIELDS, *HISTORY_PLACEHOLDERS),
                           needed, condition_thresholds(rule.when, TIMELINE_FACT_FIELDS), problem)


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
                       needed: list[str], numbers: list[tuple[Fraction, str]],
                       problem: Any) -> None:
    """An explanation uses known placeholders, shows each measured value, and states its
    thresholds exactly (see :mod:`.explained_thresholds`)."""
    for name in sorted(placeholders - set(allowed)):
        problem("explanation", f"unknown placeholder {{{name}}}{suggest(name, allowed)}")
    for name in needed:
        if name not in placeholders:
            problem("explanation", f"must show the measured value: add {{{name}}}")
    for message in threshold_problems(text, numbers):
        problem("explanation", message)


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


def condition_groups(condition: Condition) -> int:
    """How many ``$and``/``$or`` groups the engine compiles the condition to."""
    if isinstance(condition, FieldTest):
        return 1 if condition.op == "one_of" else 0
    return 1 + sum(condition_groups(part) for part in condition.parts)


def condition_tests(condition: Condition) -> int:
    """How many single tests the engine compiles the condition to."""
    if isinstance(condition, FieldTest):
        return len(condition.value) if isinstance(condition.value, tuple) else 1
    return sum(condition_tests(part) for part in condition.parts)


def check_engine_limits(rules: dict[str, tuple[str, RuleSpec]],
                        questions: dict[str, tuple[str, QuestionSpec]],
                        timeline: dict[str, tuple[str, TimelineRuleSpec]],
                        problems: list[Problem]) -> None:
    """Refuse, before compiling, what durable_rules would refuse: a rule too large or too
    deeply grouped, a ruleset of too many rules (see the ``MAX_`` constants)."""
    conditions: list[tuple[str, str, str, Condition]] = []
    for rule_id, (label, rule) in rules.items():
        if rule.when is not None:
            conditions.append((label, rule_id, "when", rule.when))
    for question_id, (label, question) in questions.items():
        if question.when is not None:
            conditions.append((label, question_id, "when", question.when))
    conditions.extend((label, rule_id, "when", rule.when)
                      for rule_id, (label, rule) in timeline.items())
    for label, rule_id, field, condition in sorted(conditions, key=lambda c: (c[0], c[1])):
        groups = condition_groups(condition)
        if groups > MAX_GROUPS_PER_RULE:
            problems.append(Problem.in_pack(label, rule_id, field, (
                f"has {groups} any/all/one_of groups (a mapping of several tests counts as "
                f"one); the rule engine takes at most {MAX_GROUPS_PER_RULE} per rule: "
                "split the rule, or flatten nested any/all")))
        tests = condition_tests(condition)
        if tests > MAX_TESTS_PER_RULE:
            problems.append(Problem.in_pack(label, rule_id, field, (
                f"has {tests} tests (each one_of value counts); the rule engine takes at "
                f"most {MAX_TESTS_PER_RULE} per rule: split the rule")))
    escalations = sum(1 for _, rule in rules.values() if rule.when_findings is not None)
    report_tests = escalations + sum(
        condition_tests(rule.when) for _, rule in rules.values() if rule.when is not None) + \
        sum(1 + (0 if q.when is None else condition_tests(q.when)) for _, q in questions.values())
    timeline_tests = escalations + sum(condition_tests(r.when) for _, r in timeline.values())
    for what, count, tests in (
            ("rules and questions", len(rules) + len(questions), report_tests),
            ("timeline rules and escalation rules", len(timeline) + escalations, timeline_tests)):
        if count > MAX_RULES_PER_RULESET:
            problems.append(Problem.in_pack("pack", None, "rules", (
                f"the pack has {count} {what}, compiled together; the rule engine takes at "
                f"most {MAX_RULES_PER_RULESET}: split it into packs")))
        if tests > MAX_TESTS_PER_RULESET:
            problems.append(Problem.in_pack("pack", None, "rules", (
                f"the pack's {what} have {tests} tests in all, compiled together; the rule "
                f"engine takes at most {MAX_TESTS_PER_RULESET}: split it into packs")))
