"""The patient timeline: check-ins over days, correlated by durable_rules, stored durably.

Each :meth:`Timeline.record` call

1. checks the episode id and the time, and triages the new report on its own with the
   :class:`~marrow_triage.TriageEngine`;
2. in one store transaction under the episode's lock: reads the episode's stored history
   state (or, when the check-in is earlier than the episode's latest or the state cannot
   be used, every check-in of the episode), refuses a time far from all of them, and
   derives the history facts of those up to it;
3. evaluates the current facts plus the history facts, as one fact, with the compiled
   timeline rules (on the engine's durable_rules boundary, ``engine.durable``); the
   pack's escalation rules count the report's and the timeline's findings together;
4. adds what fired to the report's result, explained by the engine's explainer (the
   highest level wins), stores the check-in with that result and the episode's new
   history state in the same transaction, commits (synced) and only then returns it.

Nothing about an episode is kept in memory between calls.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

from marrow_triage.engine.durable import EvaluatorPool, fact_members
from marrow_triage.engine.encode import compile_timeline, timeline_levels
from marrow_triage.engine.explain import Explainer, MeasuredValues, PackTexts
from marrow_triage.engine.triage import TriageEngine, default_engine, validate_report
from marrow_triage.errors import Problem, RulePackError, TimelineError
from marrow_triage.models import Bleeding, Finding, SymptomReport, Temperature, TriageResult
from marrow_triage.pack.conditions import condition_fields
from marrow_triage.pack.facts import HISTORY_FACT_FIELDS, FactValue, report_facts
from marrow_triage.pack.spec import HistorySettings, RulePack
from marrow_triage.pack.templates import render
from marrow_triage.timeline.history import (
    Earlier,
    Evidence,
    History,
    HistoryState,
    derive,
    describe_time,
    state_key,
)
from marrow_triage.timeline.store import (
    MAX_AT,
    MIN_AT,
    CheckIns,
    Forgotten,
    Recorded,
    Reported,
    Store,
    Unreadable,
    Weighed,
    Weighing,
)
from marrow_triage.units import format_cut, format_number, format_temperature

__all__ = ["Overdue", "OverdueList", "Timeline", "TimelineError", "check_checkin_id",
           "check_episode_id", "check_every_hours", "check_time"]

EPISODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
MAX_EVERY_HOURS = 24 * 366
"""The longest interval ``overdue`` takes: a year (longer than any episode is kept)."""
DEFAULT_EXPIRE_BATCH = 500


@dataclass(frozen=True)
class Overdue:
    """An episode whose next check-in was due and has not arrived."""

    episode_id: str
    last_at: datetime
    due_at: datetime


class OverdueList(list[Overdue]):
    """Overdue episodes by id; ``unreadable`` lists stored rows that could not be read."""

    def __init__(self, items: Iterable[Overdue] = (),
                 unreadable: Sequence[Unreadable] = ()) -> None:
        super().__init__(items)
        self.unreadable: tuple[Unreadable, ...] = tuple(unreadable)


def _id_check(value: object, name: str) -> str:
    if not isinstance(value, str) or not EPISODE_ID.fullmatch(value):
        message = (f"{name.replace('_', ' ')} {value!r} is not valid: use 1 to 128 letters, "
                   "digits or ._:@- starting with a letter or digit")
        raise TimelineError(message, [Problem(name, message)])
    return value


def check_episode_id(episode_id: object) -> str:
    """``episode_id`` if it is a valid id, else :class:`TimelineError`."""
    return _id_check(episode_id, "episode_id")


def check_checkin_id(checkin_id: object) -> str:
    """``checkin_id`` (an idempotency key) if valid, else :class:`TimelineError`."""
    return _id_check(checkin_id, "checkin_id")


def check_time(at: object, name: str = "at") -> datetime:
    """``at`` in UTC if it is a timezone-aware datetime a store can keep, else
    :class:`TimelineError` (naive, or outside 1970-01-01 to 9999-12-29 UTC)."""
    if not isinstance(at, datetime):
        raise _time_error(name, f"must be a datetime, not {type(at).__name__}")
    if at.tzinfo is None or at.utcoffset() is None:
        raise _time_error(name, f"{at.isoformat()} has no time zone; give one, e.g. "
                                "2026-11-25T10:00:00+00:00")
    try:
        utc = at.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not MIN_AT <= utc < MAX_AT:
        raise _time_error(name, f"{at.isoformat()} is outside the times a check-in can take "
                                f"({MIN_AT:%Y-%m-%d} to {MAX_AT - timedelta(days=1):%Y-%m-%d} "
                                "UTC)")
    return utc


def check_every_hours(every_hours: object) -> float:
    """``every_hours`` if it is a number of hours above 0 and at most a year."""
    if isinstance(every_hours, bool) or not isinstance(every_hours, int | float) or not (
            math.isfinite(every_hours) and 0 < every_hours <= MAX_EVERY_HOURS):
        message = (f"every_hours must be a number of hours above 0 and at most "
                   f"{MAX_EVERY_HOURS}, not {every_hours!r}")
        raise TimelineError(message, [Problem("every_hours", message)])
    return float(every_hours)


def _time_error(name: str, message: str) -> TimelineError:
    return TimelineError(f"{name} {message}" if not message.startswith(name) else message,
                         [Problem(name, message)])


class Timeline:
    """Follow-up check-ins of patient episodes, weighed together with their history.

    ``store`` keeps the check-ins (see :func:`~marrow_triage.timeline.open_store`); a
    timeline made with ``None`` only evaluates given check-ins (:meth:`evaluate`), as
    ``rules diff`` does, and refuses whatever needs a store. ``engine`` triages single
    reports and supplies the rule pack (the packaged one by default), whose ``history:``
    settings also bound the check-in times accepted.
    ``clock`` gives "now" when a call does not (the system clock by default). Episodes
    whose latest check-in is more than ``expire_after_days`` old are erased by
    :meth:`expire` only: recording never erases anything. Check-ins may arrive out of
    order; they are weighed and listed in the order of ``at``.
    """

    def __init__(self, store: Store | None, engine: TriageEngine | None = None, *,
                 expire_after_days: float = 30,
                 clock: Callable[[], datetime] | None = None) -> None:
        if engine is None:
            engine = default_engine()
        if not (math.isfinite(expire_after_days) and 0 < expire_after_days <= 36_600):
            raise ValueError("expire_after_days must be a number of days above 0")
        if engine.pack.history is None:
            raise RulePackError([Problem.in_pack(
                "pack.yaml", None, "history", "required by the timeline (its check-in time "
                "settings bound the times it accepts)")])
        self._store = store
        self.engine = engine
        self.pack: RulePack = engine.pack
        self.settings: HistorySettings = engine.pack.history
        self.expire_after = timedelta(days=expire_after_days)
        self.clock = clock or (lambda: datetime.now(UTC))
        self._state_key = state_key(self.settings)
        self._escalation_ids = {r.id for r in self.pack.rules if r.is_escalation}
        self._evaluators = EvaluatorPool(compile_timeline(self.pack), timeline_levels(self.pack))

    @property
    def store(self) -> Store:
        """Where the check-ins are kept; :class:`TimelineError` for a timeline made without
        one (it only evaluates)."""
        if self._store is None:
            message = "this timeline has no store: it only evaluates given check-ins"
            raise TimelineError(message, [Problem("store", message)])
        return self._store

    def record(self, episode_id: str, report: SymptomReport | Mapping[str, Any],
               at: datetime, *, checkin_id: str | None = None,
               now: datetime | None = None, locale: str | None = None) -> TriageResult:
        """Record a check-in taken at ``at`` and return its result, after storing both.

        See :meth:`record_checkin`.
        """
        return self.record_checkin(episode_id, report, at, checkin_id=checkin_id,
                                   now=now, locale=locale).checkin.result

    def record_checkin(self, episode_id: str, report: SymptomReport | Mapping[str, Any],
                       at: datetime, *, checkin_id: str | None = None,
                       now: datetime | None = None, locale: str | None = None) -> Recorded:
        """Record a check-in and return what was stored.

        ``at`` is refused (:class:`TimelineError`) when it is more than the pack's
        ``checkin_ahead_of_clock_minutes`` past ``now`` (the clock by default), or more than
        ``checkin_max_days_from_episode`` from every other check-in of the episode. With a
        ``checkin_id`` the episode already has, the stored check-in is returned
        (``replayed``) instead of recording it twice.

        ``locale`` picks the language of the result's texts as for
        :meth:`TriageEngine.triage` (``"es"``, ``"es-MX"``; None: English; one the pack
        has no texts in: :class:`~marrow_triage.LocaleError`, and nothing is stored). The
        result is stored as given, in that locale; a replayed check-in comes back in the
        locale it was recorded in (its ``locale`` says which).
        """
        explainer = self.engine.explainer_for(locale)
        check_episode_id(episode_id)
        if checkin_id is not None:
            check_checkin_id(checkin_id)
        when = check_time(at)
        clock = check_time(self.clock() if now is None else now, "now")
        validated = validate_report(report)
        single = self.engine.triage(validated, explainer.locale)
        ahead = timedelta(minutes=self.settings.checkin_ahead_of_clock_minutes)
        if when > clock + ahead:
            raise _time_error("at", (
                f"{when:%Y-%m-%d %H:%M} UTC is {_span(when - clock)} after the clock "
                f"({describe_time(clock)}); a check-in more than "
                f"{format_number(self.settings.checkin_ahead_of_clock_minutes, 6)} minutes "
                "ahead of it is refused: check the date, time and time zone"))

        def from_state(stored: str | None) -> Weighed | None:
            # The store calls this only when ``when`` is at or after every stored check-in.
            try:
                state = HistoryState() if stored is None else HistoryState.loads(stored)
            except ValueError:
                return None  # damaged, or not ours: the store reads the check-ins instead
            if state.last_at is not None:
                self._check_near(state.last_at, when)
            result = self._evaluate(
                lambda: state.history(validated, when, self.settings), validated, single,
                explainer)
            state.add(when, validated, self.settings)
            return Weighed(result, state.dumps())

        def from_checkins(episode: Sequence[Reported]) -> Weighed:
            times = [c.at for c in episode]
            if episode:
                i = bisect.bisect_left(times, when)
                self._check_near(min((times[j] for j in (i - 1, i) if 0 <= j < len(times)),
                                     key=lambda t: abs(t - when)), when)
            # At the same time as stored ones, the new check-in comes after them (it was
            # recorded later), in its history and in the stored order alike.
            position = bisect.bisect_right(times, when)
            earlier = episode[:position]
            result = self.evaluate(earlier, validated, when, single, explainer.locale)
            new = Reported(0, when, validated)
            state = HistoryState.of([*earlier, new, *episode[position:]], self.settings)
            return Weighed(result, state.dumps())

        weighing = Weighing(self._state_key, from_state, from_checkins)
        return self.store.record(episode_id, when, validated, weighing, checkin_id)

    def _check_near(self, nearest: datetime, at: datetime) -> None:
        """Refuse ``at`` when ``nearest``, the episode's nearest other check-in, is too far."""
        limit = timedelta(days=self.settings.checkin_max_days_from_episode)
        if abs(nearest - at) > limit:
            raise _time_error("at", (
                f"{at:%Y-%m-%d %H:%M} UTC is {_span(abs(nearest - at))} from the episode's "
                f"nearest other check-in ({describe_time(nearest)}); a check-in more than "
                f"{format_number(self.settings.checkin_max_days_from_episode, 6)} days from "
                "all of them is refused: check the date, or record a new procedure under a "
                "new episode id"))

    def evaluate(self, earlier: Sequence[Earlier], report: SymptomReport, at: datetime,
                 single: TriageResult | None = None,
                 locale: str | None = None) -> TriageResult:
        """The result of ``report`` at ``at`` given ``earlier`` check-ins; stores nothing.

        ``single`` is the report's own result, when the caller has it already, in
        ``locale`` (the language of the texts, as for :meth:`record_checkin`).
        """
        explainer = self.engine.explainer_for(locale)
        return self._evaluate(lambda: derive(earlier, report, at, self.settings), report,
                              single, explainer)

    def _evaluate(self, derived: Callable[[], History], report: SymptomReport,
                  single: TriageResult | None, explainer: Explainer) -> TriageResult:
        """The result of ``report`` with the history facts ``derived`` gives, in the
        locale of ``explainer``."""
        if single is not None and single.locale != explainer.locale:
            raise ValueError(f"the report's own result is in {single.locale!r}, not in "
                             f"{explainer.locale!r}, the locale asked for")
        report_result = (single if single is not None
                         else self.engine.triage(report, explainer.locale))
        if not self.pack.timeline_rules:  # the history cannot add a finding
            return report_result
        history = derived()
        facts: dict[str, FactValue] = {**report_facts(report), **history.facts}
        counted_already = Counter(f.level for f in report_result.findings
                                  if f.rule_id not in self._escalation_ids)
        fired = self._evaluators.evaluate(fact_members(facts), counted_already)
        if set(fired.rules) <= {f.rule_id for f in report_result.findings}:
            return report_result
        return self._with_history(report_result, report, facts, history, fired.rules,
                                  explainer)

    def history(self, episode_id: str) -> CheckIns:
        """The episode's check-ins in time order, each with the result given at the time.

        Rows that cannot be read are skipped and listed in the result's ``unreadable``.
        """
        return self.store.checkins(check_episode_id(episode_id))

    def forget(self, episode_id: str) -> Forgotten:
        """Erase the episode everywhere; say how many check-ins, and whether copies remain
        for a while (see :class:`~marrow_triage.timeline.Forgotten`)."""
        return self.store.forget(check_episode_id(episode_id))

    def expire(self, now: datetime, *, batch: int = DEFAULT_EXPIRE_BATCH,
               max_batches: int | None = None) -> list[str]:
        """Erase episodes whose latest check-in is older than the expiry; return their ids.

        Each transaction erases at most ``batch`` episodes, so other writers wait at most
        one batch; ``max_batches`` bounds the whole run (None: until none is left).
        """
        before = check_time(now, "now") - self.expire_after
        return self.expire_before(before, batch=batch, max_batches=max_batches)

    def expire_before(self, before: datetime, *, batch: int = DEFAULT_EXPIRE_BATCH,
                      max_batches: int | None = None) -> list[str]:
        """Erase episodes whose latest check-in is before ``before``, in batches."""
        check_time(before, "before")
        if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 100_000:
            raise TimelineError(f"batch must be a whole number from 1 to 100000, not {batch!r}",
                                [Problem("batch", "must be a whole number from 1 to 100000")])
        erased: list[str] = []
        runs = 0
        while max_batches is None or runs < max_batches:
            ids = self.store.expire(before, batch)
            erased += ids
            runs += 1
            if len(ids) < batch:
                break
        return erased

    def overdue(self, now: datetime, every_hours: float) -> OverdueList:
        """Episodes whose latest check-in is more than ``every_hours`` before ``now``.

        Expired episodes (older than the expiry) are not listed; rows whose time cannot be
        read are skipped and listed in the result's ``unreadable``.
        """
        now = check_time(now, "now")
        interval = timedelta(hours=check_every_hours(every_hours))
        latest = self.store.latest()
        return OverdueList(
            (Overdue(episode_id, last_at, last_at + interval)
             for episode_id, last_at in latest
             # Differences, not sums: a time near the end of the calendar cannot overflow.
             if now - last_at > interval and now - last_at <= self.expire_after),
            latest.unreadable)

    def _with_history(self, report_result: TriageResult, report: SymptomReport,
                      facts: Mapping[str, FactValue], history: History,
                      fired: Iterable[str], explainer: Explainer) -> TriageResult:
        """The report's result with the timeline's findings added and escalations counted
        again over both, explained by the engine's explainer in the result's locale."""
        kept = [f for f in report_result.findings if f.rule_id not in self._escalation_ids]
        shown_in_english: set[str] = set()
        added = [self._timeline_finding(rule_id, report, facts, history, explainer.texts,
                                        shown_in_english)
                 for rule_id in fired if rule_id not in self._escalation_ids]
        counted = sorted(kept + added, key=_result_order)
        counted_rules = [self.pack.any_rule(f.rule_id) for f in counted]
        escalated = [explainer.escalation_finding(self.pack.rule(rule_id), counted_rules)
                     for rule_id in fired if rule_id in self._escalation_ids]
        findings = sorted(counted + escalated, key=_result_order)
        # The same wording policy as a single report's result: history can raise the
        # level, and then lower findings' deferring advice and reassurance must go.
        return explainer.with_findings(report_result, findings,
                                       [self.pack.any_rule(f.rule_id) for f in findings],
                                       shown_in_english)

    def _timeline_finding(self, rule_id: str, report: SymptomReport,
                          facts: Mapping[str, FactValue], history: History,
                          texts: PackTexts, shown_in_english: set[str]) -> Finding:
        """The finding of timeline rule ``rule_id`` in the locale of ``texts``; adds to
        ``shown_in_english`` the keys of the texts it took from English."""
        rule = self.pack.timeline_rule(rule_id)
        used: set[str] = set()
        measured = _MeasuredWithHistory(report, facts, texts, used)
        settings = {} if self.pack.history is None else self.pack.history.placeholders()
        explanation = render(texts.text(f"rules.{rule.id}.explanation")[0],
                             lambda name: settings.get(name) or measured.get(name))
        evidence = [e for name in condition_fields(rule.when)
                    for e in history.evidence.get(name, ())]
        # Not set(): its order varies with string hashing from one process to the next,
        # and check-ins at the same instant must be listed the same way by every replica.
        unique = sorted(dict.fromkeys(evidence), key=lambda e: e.at)
        if unique:
            checkins = "; ".join(measured.evidence(e) for e in unique)
            used.add("timeline.earlier_checkins")
            explanation += " " + render(texts.text("timeline.earlier_checkins")[0],
                                        {"checkins": checkins}.get)
        shown_in_english.update(texts.fallbacks(sorted(used)))
        return Finding(rule_id=rule.id, level=rule.level, explanation=explanation,
                       advice=texts.items(f"rules.{rule.id}.advice"),
                       source=self.pack.source(rule),
                       acknowledged_downgrades=self.pack.overlays.acknowledged.get(rule.id, ()))


def _result_order(finding: Finding) -> tuple[int, str]:
    return -finding.level.rank, finding.rule_id


class _MeasuredWithHistory(MeasuredValues):
    """Renders the placeholders of a timeline rule's explanation, history facts too, and
    the earlier check-ins it used, in the words of one locale's texts; collects the keys
    of the texts it read in ``used``."""

    def __init__(self, report: SymptomReport, facts: Mapping[str, FactValue],
                 texts: PackTexts, used: set[str]) -> None:
        super().__init__(report, facts, texts.words, used)
        self._texts = texts
        self._read = used

    def _text(self, key: str) -> str:
        self._read.add(key)
        return self._texts.text(key)[0]

    def get(self, name: str) -> str | None:
        """The value shown for placeholder ``name``, history facts too."""
        if name not in HISTORY_FACT_FIELDS:
            return super().get(name)
        value = self._facts.get(name)
        if value is None:
            return self._text("timeline.not_known")
        if isinstance(value, bool):
            return self._text("values.answer_yes" if value else "values.answer_no")
        if isinstance(value, str):  # worst_earlier_bleeding, a Bleeding value
            return self._text(f"values.bleeding.{value}")
        # Cut, not rounded, so a value never appears to reach a threshold it is below.
        if name == "max_earlier_temperature_c":
            return f"{format_cut(Fraction(value), 2)} °C"
        return format_cut(Fraction(value), 1)

    def evidence(self, evidence: Evidence) -> str:
        """An earlier check-in a finding used: its time and what it showed."""
        value = evidence.value
        if isinstance(value, Temperature):
            shown = format_temperature(value)
        elif isinstance(value, Bleeding):
            shown = self._text(f"values.bleeding.{value.value}")
        else:
            shown = "" if value is None else str(value)
        shows = render(self._text(f"timeline.{evidence.shows}"), {evidence.shows: shown}.get)
        return render(self._text("timeline.checkin"),
                      {"time": describe_time(evidence.at), "shows": shows}.get)


def _span(delta: timedelta) -> str:
    """A time difference in words, to the minute."""
    minutes = int(delta.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days} day(s)"] if days else []
    if hours or (days and minutes):
        parts.append(f"{hours} h")
    if minutes or not parts:
        parts.append(f"{minutes} min")
    return " ".join(parts)
