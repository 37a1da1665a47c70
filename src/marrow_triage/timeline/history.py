"""History facts: what the earlier check-ins of an episode say, as typed facts for rules.

Each fact of :data:`~marrow_triage.pack.facts.HISTORY_FACT_FIELDS` is derived here from the
stored check-ins, together with the evidence (which check-ins it used), so that a finding
can name the check-ins behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Protocol

from marrow_triage.models import Bleeding, SymptomReport
from marrow_triage.pack.facts import FactValue
from marrow_triage.pack.spec import HistorySettings
from marrow_triage.units import celsius, decimal_of, format_temperature

__all__ = ["Earlier", "Evidence", "History", "derive", "describe_time"]

_BLEEDING_ORDER = tuple(Bleeding)


def describe_time(at: datetime) -> str:
    """A check-in time for people, in UTC: ``2026-11-25 10:00 UTC``."""
    return at.strftime("%Y-%m-%d %H:%M UTC")


class Earlier(Protocol):
    """An earlier check-in as history facts read it: its time and its report."""

    @property
    def at(self) -> datetime: ...

    @property
    def report(self) -> SymptomReport: ...


@dataclass(frozen=True)
class Evidence:
    """An earlier check-in a history fact used, and what it showed."""

    at: datetime
    shows: str

    def __str__(self) -> str:
        return f"{describe_time(self.at)} ({self.shows})"


@dataclass
class History:
    """The history facts at one check-in and the earlier check-ins each one used."""

    facts: dict[str, FactValue] = field(default_factory=dict)
    evidence: dict[str, list[Evidence]] = field(default_factory=dict)


def derive(earlier: Sequence[Earlier], report: SymptomReport, at: datetime,
           settings: HistorySettings) -> History:
    """History facts for ``report`` taken at ``at``, given the ``earlier`` check-ins.

    ``earlier`` holds the episode's check-ins up to ``at``, ordered by time; ``settings``
    are the pack's parameters of the history facts.
    """
    history = History()
    history.facts["earlier_checkins"] = len(earlier)
    _temperatures(history, earlier, report, at, settings)
    _bleeding(history, earlier)
    _site_pain(history, earlier, report)
    _neutropenia_risk(history, earlier, report)
    return history


def _temperatures(history: History, earlier: Sequence[Earlier], report: SymptomReport,
                  at: datetime, settings: HistorySettings) -> None:
    raised = Fraction(decimal_of(settings.raised_temperature_c))
    # Readings repeat (taken to 0.1 degree): convert each distinct one once, so a long
    # history costs a lookup per check-in rather than exact arithmetic.
    converted: dict[tuple[float, object], Fraction] = {}
    readings = []
    for c in earlier:
        reading = c.report.temperature
        if reading is None:
            continue
        key = (reading.value, reading.unit)
        value = converted.get(key)
        if value is None:
            value = converted[key] = celsius(reading)
        readings.append((c, value))
    if readings:
        highest = max(converted.values())
        history.facts["max_earlier_temperature_c"] = highest
        last = next(c for c, value in reversed(readings) if value == highest)
        assert last.report.temperature is not None
        history.evidence["max_earlier_temperature_c"] = [
            Evidence(last.at, format_temperature(last.report.temperature))]
    if report.temperature is None or celsius(report.temperature) < raised:
        return
    start, chain = at, []
    max_gap = timedelta(hours=settings.raised_run_max_gap_hours)
    for checkin, value in reversed(readings):
        if value < raised or start - checkin.at > max_gap:
            break
        start = checkin.at
        assert checkin.report.temperature is not None
        chain.append(Evidence(checkin.at, format_temperature(checkin.report.temperature)))
    micros = (at - start) // timedelta(microseconds=1)
    history.facts["raised_temperature_minutes"] = Fraction(micros, 60_000_000)
    history.evidence["raised_temperature_minutes"] = chain[::-1]


def _bleeding(history: History, earlier: Sequence[Earlier]) -> None:
    answered = [c for c in earlier if c.report.bleeding is not None]
    if not answered:
        return
    worst = max(answered, key=lambda c: (_BLEEDING_ORDER.index(c.report.bleeding), c.at))
    assert worst.report.bleeding is not None
    history.facts["worst_earlier_bleeding"] = worst.report.bleeding.value
    history.evidence["worst_earlier_bleeding"] = [
        Evidence(worst.at, f"bleeding {worst.report.bleeding.value.replace('_', ' ')}")]


def _site_pain(history: History, earlier: Sequence[Earlier], report: SymptomReport) -> None:
    if report.site_pain is None:
        return
    series = [(c, c.report.site_pain) for c in earlier if c.report.site_pain is not None]
    rises, current, chain = 0, report.site_pain, []
    for checkin, pain in reversed(series):
        if pain >= current:
            break
        rises += 1
        current = pain
        chain.append(Evidence(checkin.at, f"site pain {pain}/10"))
    history.facts["site_pain_rises"] = rises
    history.evidence["site_pain_rises"] = chain[::-1]


def _neutropenia_risk(history: History, earlier: Sequence[Earlier],
                      report: SymptomReport) -> None:
    flags: list[tuple[datetime | None, bool | None, bool | None]] = [
        (c.at, c.report.low_white_cell_count, c.report.recent_chemotherapy) for c in earlier]
    flags.append((None, report.low_white_cell_count, report.recent_chemotherapy))
    answered = [f for f in flags if f[1] is not None or f[2] is not None]
    if not answered:
        return
    positive = [f for f in answered if f[1] or f[2]]
    history.facts["neutropenia_risk_in_history"] = bool(positive)
    history.evidence["neutropenia_risk_in_history"] = [
        Evidence(when, "low white cell count" if low else "recent chemotherapy")
        for when, low, _ in positive if when is not None
    ]
