"""From the rules that fired to a :class:`~marrow_triage.models.TriageResult` people can read.

Explanations are the rule's own template filled with the measured values, so each one
shows what was measured and (as the loader checks) the threshold it was held against.
"""

from __future__ import annotations

import operator
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Protocol, TypeVar

from marrow_triage.models import (
    Finding,
    Question,
    RulesetInfo,
    SymptomReport,
    TriageResult,
    Urgency,
)
from marrow_triage.pack.facts import FACT_FIELDS, FactValue, report_facts
from marrow_triage.pack.spec import RulePack, RuleSpec
from marrow_triage.units import decimal_of, format_number, format_temperature

__all__ = ["Explainer", "FiredRule", "MeasuredValues", "render_value", "summary"]

NOT_ANSWERED = "not answered"
_T = TypeVar("_T")


class FiredRule(Protocol):
    """A rule that fired, as results count and name it (a rule or a timeline rule)."""

    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def level(self) -> Urgency: ...


def render_value(name: str, report: SymptomReport, facts: Mapping[str, FactValue]) -> str:
    """A fact's measured value, as shown in an explanation."""
    if name not in facts:
        return NOT_ANSWERED
    value = facts[name]
    field = FACT_FIELDS[name]
    if name == "temperature_c" and report.temperature is not None:
        return format_temperature(report.temperature)
    if name == "hours_since_procedure":
        assert isinstance(value, Fraction)
        # The hours as given: rounding 23.99 up to "24" would contradict "below 24".
        # abs(): -0.0 (which validation lets through) shows as "0", as 0 and 0.0 do.
        hours = format(decimal_of(abs(report.hours_since_procedure)).normalize(), "f")
        days = format_number(value / 24, 1)
        return f"{hours} hours (about {days} day{'' if days == '1' else 's'})"
    if field.kind == "boolean":
        return "yes" if value else "no"
    if field.kind == "integer" and field.maximum == 10:
        return f"{value}/10"
    if field.kind == "enum":
        return str(value).replace("_", " ")
    if field.kind == "text":
        return f"\u201c{value}\u201d"  # the patient's own words, quoted, unchanged
    return format_number(value)  # type: ignore[arg-type]


class Explainer:
    """Builds the :class:`TriageResult` for the rules and questions that fired.

    Made once per engine: everything that depends only on the pack (rule order, citations,
    questions, the ruleset's identity) is built here, once. A finding depends only on its
    rule and the report fields its explanation shows (or, for an escalation, the findings
    it counts), and is immutable, so it is kept in a bounded cache keyed by exactly those
    and shared between results instead of being rendered and validated again. Results,
    immutable too, are cached the same way by their findings' keys and question ids.
    """

    def __init__(self, pack: RulePack, max_cached: int = 4096) -> None:
        self._rules = {rule.id: rule for rule in pack.rules}
        self._order = {rule.id: (-rule.level.rank, rule.id) for rule in pack.rules}
        self._sources = {rule.id: pack.source(rule) for rule in pack.rules}
        self._read_shown: dict[str, Callable[[SymptomReport], object]] = {
            rule.id: _shown_reader(rule.explanation)
            for rule in pack.rules if rule.when_findings is None}
        self._questions = {q.id: Question(field=q.field, text=q.text) for q in pack.questions}
        self._ruleset = RulesetInfo(name=pack.name, version=pack.version, sha256=pack.sha256)
        self._findings: dict[tuple[object, ...], Finding] = {}
        self._results: dict[tuple[object, ...], TriageResult] = {}
        self._max_cached = max_cached

    def build(self, report: SymptomReport, fired_rules: Iterable[str],
              fired_questions: Iterable[str]) -> TriageResult:
        """The result for ``report`` given the ids of the rules and questions that fired."""
        ordered = sorted(fired_rules, key=self._order.__getitem__)
        rules = [self._rules[rule_id] for rule_id in ordered]
        facts: dict[str, FactValue] | None = None
        findings = []
        keys = []
        for rule in rules:
            if rule.when_findings is not None:
                level = rule.when_findings.level
                key: tuple[object, ...] = (rule.id, *(r.id for r in rules if r.level is level))
            else:
                key = (rule.id, self._read_shown[rule.id](report))
            finding = self._findings.get(key)
            if finding is None:
                if facts is None:
                    facts = report_facts(report)
                finding = self._remember(self._findings, key,
                                         self._finding(rule, rules, report, facts))
            findings.append(finding)
            keys.append(key)
        question_ids = tuple(sorted(set(fired_questions)))
        # A result is a function of its findings and questions, each cached by a key
        # that determines it, so the pair of key lists determines the result.
        result_key = (tuple(keys), question_ids)
        result = self._results.get(result_key)
        if result is None:
            result = self._remember(self._results, result_key,
                                    self._result(rules, tuple(findings), question_ids))
        return result

    def _result(self, rules: list[RuleSpec], findings: tuple[Finding, ...],
                question_ids: tuple[str, ...]) -> TriageResult:
        level = rules[0].level if rules else Urgency.SELF_CARE
        questions = tuple(self._questions[qid] for qid in question_ids)
        return TriageResult(
            level=level,
            action=level.action,
            summary=summary(level, rules, len(questions)),
            findings=findings,
            advice=_unique(a for rule in rules for a in rule.advice),
            reassurance=_unique(r for rule in rules for r in rule.reassurance),
            questions=questions,
            ruleset=self._ruleset,
        )

    def _remember(self, cache: dict[tuple[object, ...], _T], key: tuple[object, ...],
                  value: _T) -> _T:
        if len(cache) >= self._max_cached:
            cache.clear()
        cache[key] = value
        return value

    def _finding(self, rule: RuleSpec, fired: list[RuleSpec], report: SymptomReport,
                 facts: Mapping[str, FactValue]) -> Finding:
        if rule.when_findings is not None:
            return self.escalation_finding(rule, fired)
        return Finding(
            rule_id=rule.id,
            level=rule.level,
            explanation=rule.explanation.format_map(MeasuredValues(report, facts)),
            advice=rule.advice,
            source=self._sources[rule.id],
        )

    def escalation_finding(self, rule: RuleSpec, fired: Iterable[FiredRule]) -> Finding:
        """The finding of escalation ``rule``, counting the ``fired`` rules at its level.

        ``fired`` is in result order (level, then id); the timeline passes its own rules
        along with the report's.
        """
        assert rule.when_findings is not None
        counted = [r for r in fired if r.level is rule.when_findings.level]
        return Finding(
            rule_id=rule.id,
            level=rule.level,
            explanation=rule.explanation.format(
                count=len(counted), findings="; ".join(r.title for r in counted)),
            advice=rule.advice,
            source=self._sources[rule.id],
            based_on=tuple(r.id for r in counted),
        )


def _shown_reader(template: str) -> Callable[[SymptomReport], object]:
    """Reads the report fields whose values a report rule's explanation shows.

    Equal values of a field always render the same (``20`` and ``20.0`` hours both show
    as "20"), so these values, with the rule, determine the explanation.
    """
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    fields = sorted({FACT_FIELDS[name].report_field for name in names})
    return operator.attrgetter(*fields) if fields else _nothing


def _nothing(_report: SymptomReport) -> None:
    return None


class MeasuredValues(dict[str, str]):
    """The measured values of a report, for ``template.format_map``: renders only the
    placeholders a template uses."""

    def __init__(self, report: SymptomReport, facts: Mapping[str, FactValue]) -> None:
        super().__init__()
        self._report = report
        self._facts = facts

    def __missing__(self, name: str) -> str:
        return render_value(name, self._report, self._facts)


def summary(level: Urgency, fired: Sequence[FiredRule], unanswered: int) -> str:
    """The one-line summary of a result: its level, the warning signs (or that there are
    none), the action, and how many questions are still to answer."""
    warnings = [r.title for r in fired if r.level is not Urgency.SELF_CARE]
    if warnings:
        shown = ", ".join(warnings[:3]) + (f" and {len(warnings) - 3} more" if
                                           len(warnings) > 3 else "")
        text = f"{level.label}: {shown}. {level.action}"
    elif fired:
        text = f"{level.label}: expected after-effects only ({', '.join(r.title for r in fired)})."
    else:
        text = f"{level.label}: no warning signs in what was reported."
    if unanswered:
        text += f" {unanswered} question(s) still to answer."
    return text


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
