"""History facts: what the earlier check-ins of an episode say, as typed facts for rules.

Each fact of :data:`~marrow_triage.pack.facts.HISTORY_FACT_FIELDS` is derived here from the
stored check-ins, together with the evidence (which check-ins it used), so that a finding
can name the check-ins behind it.

Two ways give the same facts and evidence: :func:`derive` reads every earlier check-in;
:class:`HistoryState` keeps the running values the facts need, folded over the episode's
check-ins in time order, so that a check-in arriving after all the others is weighed
without reading them (the store keeps the state beside the episode).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any, Protocol

from marrow_triage.models import Bleeding, SymptomReport, Temperature, TemperatureUnit
from marrow_triage.pack.facts import FactValue
from marrow_triage.pack.spec import HistorySettings
from marrow_triage.units import celsius, decimal_of

__all__ = ["STATE_FORMAT", "Earlier", "Evidence", "History", "HistoryState", "derive",
           "describe_time", "state_key"]

_BLEEDING_ORDER = tuple(Bleeding)
# What an Evidence shows (the pack's ``timeline.<name>`` texts say it in words).
_TEMPERATURE, _BLEEDING, _SITE_PAIN = "temperature", "bleeding", "site_pain"
_LOW_WHITE_CELLS, _CHEMOTHERAPY = "low_white_cell_count", "recent_chemotherapy"


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
    """An earlier check-in a history fact used, and what it showed.

    Data, not words: a finding names it in its result's locale, from the pack's
    ``timeline.<shows>`` text (``timeline.bleeding``: "bleeding {bleeding}").
    """

    at: datetime
    shows: str
    """The answer it showed: ``temperature``, ``bleeding``, ``site_pain``,
    ``low_white_cell_count`` or ``recent_chemotherapy``."""
    value: Temperature | Bleeding | int | None = None
    """That answer (the reading, the bleeding answer, the pain score); None for the
    yes-or-no answers, which are shown only when yes."""


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
            Evidence(last.at, _TEMPERATURE, last.report.temperature)]
    if report.temperature is None or celsius(report.temperature) < raised:
        return
    start, chain = at, []
    max_gap = timedelta(hours=settings.raised_run_max_gap_hours)
    for checkin, value in reversed(readings):
        if value < raised or start - checkin.at > max_gap:
            break
        start = checkin.at
        assert checkin.report.temperature is not None
        chain.append(Evidence(checkin.at, _TEMPERATURE, checkin.report.temperature))
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
        Evidence(worst.at, _BLEEDING, worst.report.bleeding)]


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
        chain.append(Evidence(checkin.at, _SITE_PAIN, pain))
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
        Evidence(when, _LOW_WHITE_CELLS if low else _CHEMOTHERAPY)
        for when, low, _ in positive if when is not None
    ]


# --- the running state: the same facts without reading every earlier check-in ---------

STATE_FORMAT = 1
"""Version of :meth:`HistoryState.dumps`; part of :func:`state_key`, so a state written by
code that folded differently is rebuilt rather than read."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def state_key(settings: HistorySettings) -> str:
    """What a stored :class:`HistoryState` depends on: its format and the pack's history
    settings the facts use (a SHA-256). A state stored under another key was folded with
    other cut-offs, by another pack or version, and is rebuilt from the check-ins."""
    text = json.dumps({"format": STATE_FORMAT,
                       "raised_temperature_c": settings.raised_temperature_c,
                       "raised_run_max_gap_hours": settings.raised_run_max_gap_hours},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class HistoryState:
    """The running values the history facts need, folded over an episode's check-ins in
    time order (then recording order): :meth:`history` gives exactly what :func:`derive`
    gives over those check-ins, for a new check-in at or after the last of them.

    Its size does not grow with the episode, except for what a finding must list: the
    readings of the current raised-temperature run and the check-ins that reported a
    neutropenia risk (the site-pain rise holds at most 11 scores, 0 to 10 rising).
    """

    count: int = 0
    last_at: datetime | None = None
    """Time of the latest check-in folded (the nearest one to a later check-in)."""
    highest: tuple[datetime, Temperature] | None = None
    """The latest check-in with the highest temperature, and its reading."""
    worst_bleeding: tuple[datetime, Bleeding] | None = None
    """The latest check-in with the worst bleeding answer, and that answer."""
    raised_run: list[tuple[datetime, Temperature]] = field(default_factory=list)
    """The latest readings all at or above the cut-off, no two more than the gap apart."""
    pain_rising: list[tuple[datetime, int]] = field(default_factory=list)
    """The latest answered site-pain scores, each above the one before."""
    risk_answered: bool = False
    """Whether any check-in answered low white cells or recent chemotherapy."""
    risk_reported: list[tuple[datetime, bool]] = field(default_factory=list)
    """Check-ins that reported either, with whether it was low white cells."""

    @classmethod
    def of(cls, checkins: Iterable[Earlier], settings: HistorySettings) -> HistoryState:
        """The state of ``checkins``, in time order."""
        state = cls()
        raised = _cut_off(settings)
        for checkin in checkins:
            state._add(checkin.at, checkin.report, raised, settings)
        return state

    def add(self, at: datetime, report: SymptomReport, settings: HistorySettings) -> None:
        """Fold in a check-in at ``at``, at or after every one folded so far."""
        self._add(at, report, _cut_off(settings), settings)

    def _add(self, at: datetime, report: SymptomReport, raised: Fraction,
             settings: HistorySettings) -> None:
        self.count += 1
        self.last_at = at
        reading = report.temperature
        if reading is not None:
            value = celsius(reading)
            # >=: derive() cites the latest of equal highest readings.
            if self.highest is None or value >= celsius(self.highest[1]):
                self.highest = (at, reading)
            max_gap = timedelta(hours=settings.raised_run_max_gap_hours)
            if value < raised:
                self.raised_run = []
            elif self.raised_run and at - self.raised_run[-1][0] <= max_gap:
                self.raised_run.append((at, reading))
            else:
                self.raised_run = [(at, reading)]
        if report.bleeding is not None and (
                self.worst_bleeding is None
                or _BLEEDING_ORDER.index(report.bleeding)
                > _BLEEDING_ORDER.index(self.worst_bleeding[1])
                # Equally bad later: derive() cites the latest (times only grow here).
                or (report.bleeding is self.worst_bleeding[1]
                    and at > self.worst_bleeding[0])):
            self.worst_bleeding = (at, report.bleeding)
        pain = report.site_pain
        if pain is not None:
            if self.pain_rising and self.pain_rising[-1][1] < pain:
                self.pain_rising.append((at, pain))
            else:
                self.pain_rising = [(at, pain)]
        low, chemotherapy = report.low_white_cell_count, report.recent_chemotherapy
        if low is not None or chemotherapy is not None:
            self.risk_answered = True
            if low or chemotherapy:
                self.risk_reported.append((at, bool(low)))

    def history(self, report: SymptomReport, at: datetime,
                settings: HistorySettings) -> History:
        """The history facts for ``report`` taken at ``at`` (at or after :attr:`last_at`):
        the same as :func:`derive` over the check-ins folded."""
        history = History()
        history.facts["earlier_checkins"] = self.count
        if self.highest is not None:
            when, reading = self.highest
            history.facts["max_earlier_temperature_c"] = celsius(reading)
            history.evidence["max_earlier_temperature_c"] = [
                Evidence(when, _TEMPERATURE, reading)]
        if report.temperature is not None and celsius(report.temperature) >= _cut_off(settings):
            max_gap = timedelta(hours=settings.raised_run_max_gap_hours)
            run = self.raised_run
            chain = run if run and at - run[-1][0] <= max_gap else []
            start = chain[0][0] if chain else at
            micros = (at - start) // timedelta(microseconds=1)
            history.facts["raised_temperature_minutes"] = Fraction(micros, 60_000_000)
            history.evidence["raised_temperature_minutes"] = [
                Evidence(when, _TEMPERATURE, reading) for when, reading in chain]
        if self.worst_bleeding is not None:
            when, bleeding = self.worst_bleeding
            history.facts["worst_earlier_bleeding"] = bleeding.value
            history.evidence["worst_earlier_bleeding"] = [
                Evidence(when, _BLEEDING, bleeding)]
        if report.site_pain is not None:
            rising = self.pain_rising
            chain_pain = rising if rising and rising[-1][1] < report.site_pain else []
            history.facts["site_pain_rises"] = len(chain_pain)
            history.evidence["site_pain_rises"] = [
                Evidence(when, _SITE_PAIN, pain) for when, pain in chain_pain]
        low, chemotherapy = report.low_white_cell_count, report.recent_chemotherapy
        if self.risk_answered or low is not None or chemotherapy is not None:
            history.facts["neutropenia_risk_in_history"] = bool(
                self.risk_reported or low or chemotherapy)
            history.evidence["neutropenia_risk_in_history"] = [
                Evidence(when, _LOW_WHITE_CELLS if was_low else _CHEMOTHERAPY)
                for when, was_low in self.risk_reported]
        return history

    def dumps(self) -> str:
        """The state as compact JSON (times in microseconds since 1970, UTC)."""
        return json.dumps({
            "n": self.count,
            "last": None if self.last_at is None else _micros(self.last_at),
            "high": None if self.highest is None else _reading_json(*self.highest),
            "bleed": None if self.worst_bleeding is None else [
                _micros(self.worst_bleeding[0]), self.worst_bleeding[1].value],
            "run": [_reading_json(when, reading) for when, reading in self.raised_run],
            "pain": [[_micros(when), pain] for when, pain in self.pain_rising],
            "risk": [[_micros(when), low] for when, low in self.risk_reported]
            if self.risk_answered else None,
        }, separators=(",", ":"))

    @classmethod
    def loads(cls, text: str) -> HistoryState:
        """A state from :meth:`dumps`; ``ValueError`` when ``text`` is not one."""
        try:
            data = json.loads(text)
            risk = data["risk"]
            return cls(
                count=_whole(data["n"]),
                last_at=None if data["last"] is None else _time(data["last"]),
                highest=None if data["high"] is None else _reading(data["high"]),
                worst_bleeding=None if data["bleed"] is None else (
                    _time(data["bleed"][0]), Bleeding(data["bleed"][1])),
                raised_run=[_reading(item) for item in data["run"]],
                pain_rising=[(_time(when), _whole(pain)) for when, pain in data["pain"]],
                risk_answered=risk is not None,
                risk_reported=[(_time(when), _flag(low)) for when, low in risk or ()],
            )
        except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
            raise ValueError(f"not a stored history state ({type(exc).__name__})") from None


def _cut_off(settings: HistorySettings) -> Fraction:
    return Fraction(decimal_of(settings.raised_temperature_c))


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def _time(micros: Any) -> datetime:
    return _EPOCH + timedelta(microseconds=_whole(micros))


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("expected a whole number")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("expected true or false")
    return value


def _reading_json(at: datetime, reading: Temperature) -> list[Any]:
    return [_micros(at), reading.value, reading.unit.value]


def _reading(item: Any) -> tuple[datetime, Temperature]:
    when, value, unit = item
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("expected a temperature")
    # Validated as a report's reading is: a state never carries what a report could not.
    return _time(when), Temperature(value=float(value), unit=TemperatureUnit(unit))
