"""The patient timeline: check-ins over days, correlated by durable_rules, stored durably.

Each :meth:`Timeline.record` call

1. triages the new report on its own with the :class:`~marrow_triage.TriageEngine`;
2. reads the episode's earlier check-ins from the store and derives the history facts;
3. evaluates the current facts plus the history facts, as one fact, with the compiled
   timeline rules (on the engine's durable_rules boundary, ``engine.durable``); the
   pack's escalation rules count the report's and the timeline's findings together;
4. adds what fired to the report's result, explained by the engine's explainer (the
   highest level wins), stores the check-in with that result, committed and synced,
   and only then returns it.

Nothing about an episode is kept in memory between calls.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from marrow_triage.engine.durable import EvaluatorPool, fact_members
from marrow_triage.engine.encode import compile_timeline
from marrow_triage.engine.explain import MeasuredValues
from marrow_triage.engine.triage import TriageEngine, default_engine
from marrow_triage.errors import TimelineError
from marrow_triage.models import Finding, SymptomReport, TriageResult, Urgency
from marrow_triage.pack.conditions import condition_fields
from marrow_triage.pack.facts import HISTORY_FACT_FIELDS, FactValue, report_facts
from marrow_triage.pack.spec import RulePack
from marrow_triage.timeline.history import History, derive
from marrow_triage.timeline.store import CheckIn, Store, to_micros
from marrow_triage.units import format_cut

__all__ = ["Overdue", "Timeline", "TimelineError", "check_episode_id", "check_time"]

EPISODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


@dataclass(frozen=True)
class Overdue:
    """An episode whose next check-in was due and has not arrived."""

    episode_id: str
    last_at: datetime
    due_at: datetime


def check_episode_id(episode_id: object) -> str:
    """``episode_id`` if it is a valid id, else :class:`TimelineError`."""
    if not isinstance(episode_id, str) or not EPISODE_ID.fullmatch(episode_id):
        raise TimelineError(
            f"episode id {episode_id!r} is not valid: use 1 to 128 letters, digits or "
            "._:@- starting with a letter or digit")
    return episode_id


def check_time(at: object, name: str = "at") -> datetime:
    """``at`` if it is a timezone-aware datetime, else :class:`TimelineError`."""
    if not isinstance(at, datetime):
        raise TimelineError(f"{name} must be a datetime, not {type(at).__name__}")
    if at.tzinfo is None or at.utcoffset() is None:
        raise TimelineError(f"{name} {at.isoformat()} has no time zone; give one, e.g. "
                            "2026-11-25T10:00:00+00:00")
    return at


class Timeline:
    """Follow-up check-ins of patient episodes, weighed together with their history.

    ``store`` keeps the check-ins (see :class:`~marrow_triage.timeline.SQLiteStore`);
    ``engine`` triages single reports and supplies the rule pack (the packaged one by
    default). Episodes whose latest check-in is more than ``expire_after_days`` old are
    erased by :meth:`expire`, and by :meth:`record` when that episode gets a new check-in.
    Check-ins may arrive out of order; they are weighed and listed in the order of ``at``.
    """

    def __init__(self, store: Store, engine: TriageEngine | None = None, *,
                 expire_after_days: float = 30) -> None:
        if engine is None:
            engine = default_engine()
        if not expire_after_days > 0:
            raise ValueError("expire_after_days must be positive")
        self.store = store
        self.engine = engine
        self.pack: RulePack = engine.pack
        self.expire_after = timedelta(days=expire_after_days)
        escalations = [r for r in self.pack.rules if r.is_escalation]
        self._escalation_ids = {r.id for r in escalations}
        levels = {r.id: r.level for r in (*self.pack.timeline_rules, *escalations)}
        self._evaluators = EvaluatorPool(compile_timeline(self.pack), levels)

    def record(self, episode_id: str, report: SymptomReport | Mapping[str, Any],
               at: datetime) -> TriageResult:
        """Record a check-in taken at ``at`` and return its result, after storing both."""
        check_episode_id(episode_id)
        check_time(at)
        validated = report if isinstance(report, SymptomReport) else \
            SymptomReport.model_validate(report)
        report_result = self.engine.triage(validated)
        stored = self.store.checkins(episode_id)
        if stored and stored[-1].at < at - self.expire_after:
            self.store.forget(episode_id)  # expired: this check-in starts a new episode
            stored = []
        earlier = [c for c in stored if c.at <= at]
        result = self.evaluate(earlier, validated, at, report_result)
        self.store.add(episode_id, at, validated, result)
        return result

    def evaluate(self, earlier: list[CheckIn], report: SymptomReport, at: datetime,
                 single: TriageResult | None = None) -> TriageResult:
        """The result of ``report`` at ``at`` given ``earlier`` check-ins; stores nothing.

        ``single`` is the report's own result, when the caller has it already.
        """
        report_result = single if single is not None else self.engine.triage(report)
        settings = self.pack.history
        if settings is None:  # no timeline rules: the history cannot add a finding
            return report_result
        history = derive(earlier, report, at, settings)
        facts: dict[str, FactValue] = {**report_facts(report), **history.facts}
        counted_already = Counter(f.level for f in report_result.findings
                                  if f.rule_id not in self._escalation_ids)
        fired = self._evaluators.evaluate(fact_members(facts), counted_already)
        if set(fired.rules) <= {f.rule_id for f in report_result.findings}:
            return report_result
        return self._with_history(report_result, report, facts, history, fired.rules)

    def history(self, episode_id: str) -> list[CheckIn]:
        """The episode's check-ins in time order, each with the result given at the time."""
        return self.store.checkins(check_episode_id(episode_id))

    def forget(self, episode_id: str) -> int:
        """Erase the episode everywhere; return how many check-ins were erased."""
        return self.store.forget(check_episode_id(episode_id))

    def expire(self, now: datetime) -> list[str]:
        """Erase episodes whose latest check-in is older than the expiry; return their ids."""
        return self.store.expire(check_time(now, "now") - self.expire_after)

    def overdue(self, now: datetime, every_hours: float) -> list[Overdue]:
        """Episodes whose latest check-in is more than ``every_hours`` before ``now``.

        Expired episodes (older than the expiry) are not listed.
        """
        check_time(now, "now")
        if not every_hours > 0:
            raise ValueError("every_hours must be positive")
        interval = timedelta(hours=every_hours)
        oldest = to_micros(now - self.expire_after)
        return [
            Overdue(episode_id, last_at, last_at + interval)
            for episode_id, last_at in self.store.latest()
            if last_at + interval < now and to_micros(last_at) >= oldest
        ]

    def _with_history(self, report_result: TriageResult, report: SymptomReport,
                      facts: Mapping[str, FactValue], history: History,
                      fired: Iterable[str]) -> TriageResult:
        """The report's result with the timeline's findings added and escalations counted
        again over both, explained by the engine's explainer."""
        explainer = self.engine.explainer
        kept = [f for f in report_result.findings if f.rule_id not in self._escalation_ids]
        added = [self._timeline_finding(rule_id, report, facts, history) for rule_id in fired
                 if rule_id not in self._escalation_ids]
        counted = sorted(kept + added, key=_result_order)
        counted_rules = [self.pack.any_rule(f.rule_id) for f in counted]
        escalated = [explainer.escalation_finding(self.pack.rule(rule_id), counted_rules)
                     for rule_id in fired if rule_id in self._escalation_ids]
        findings = sorted(counted + escalated, key=_result_order)
        level = findings[0].level if findings else Urgency.SELF_CARE
        label, action = explainer.level_texts(level)
        return report_result.model_copy(update={
            "level": level,
            "level_label": label,
            "action": action,
            "summary": explainer.summary(level, [self.pack.any_rule(f.rule_id) for f in findings],
                                         len(report_result.questions)),
            "findings": tuple(findings),
            "advice": tuple(dict.fromkeys(a for f in findings for a in f.advice)),
        })

    def _timeline_finding(self, rule_id: str, report: SymptomReport,
                          facts: Mapping[str, FactValue], history: History) -> Finding:
        rule = self.pack.timeline_rule(rule_id)
        explanation = rule.explanation.format_map(
            _MeasuredWithHistory(report, facts, self.engine.explainer.words))
        used = [e for name in condition_fields(rule.when) for e in history.evidence.get(name, ())]
        unique = sorted(set(used), key=lambda e: e.at)
        if unique:
            explanation += " Earlier check-ins used: " + "; ".join(map(str, unique)) + "."
        return Finding(rule_id=rule.id, level=rule.level, explanation=explanation,
                       advice=rule.advice, source=self.pack.source(rule),
                       acknowledged_downgrades=self.pack.overlays.acknowledged.get(rule.id, ()))


def _result_order(finding: Finding) -> tuple[int, str]:
    return -finding.level.rank, finding.rule_id


class _MeasuredWithHistory(MeasuredValues):
    """Renders the placeholders of a timeline rule's explanation, history facts too."""

    def __missing__(self, name: str) -> str:
        if name not in HISTORY_FACT_FIELDS:
            return super().__missing__(name)
        value = self._facts.get(name)
        if value is None:
            return "not known"
        if isinstance(value, bool):
            return self._words["values.answer_yes" if value else "values.answer_no"]
        if isinstance(value, str):  # worst_earlier_bleeding, a Bleeding value
            return self._words.get(f"values.bleeding.{value}", value.replace("_", " "))
        # Cut, not rounded, so a value never appears to reach a threshold it is below.
        if name == "max_earlier_temperature_c":
            return f"{format_cut(Fraction(value), 2)} °C"
        return format_cut(Fraction(value), 1)
