"""The episodes a timeline change is judged over: short histories at every cut-off.

A timeline rule weighs the current check-in with history facts derived from the earlier
check-ins (:mod:`marrow_triage.timeline.history`), so single reports cannot show what a
change to one does. An episode here is the current check-in (a report from the boundary
classes of :mod:`~marrow_triage.change.space`) and up to a few earlier check-ins built from
a handful of factors, each reduced to classes at and either side of the cut-offs that the
packs compared use:

* ``earlier_checkins``: one to three, and each side of any count a timeline rule tests
  (``site_pain_rises``, ``earlier_checkins``);
* ``span_minutes`` from the oldest earlier check-in to the current one, the check-ins
  evenly spaced: at and either side of each run length a rule tests
  (``raised_temperature_minutes``), and of each pack's ``history.raised_run_max_gap_hours``
  times each count (so the gap between two check-ins is at and either side of it);
* ``earlier_temperature``: the current reading again (a run), not taken, and readings in
  °C and °F at and either side of each pack's ``history.raised_temperature_c`` and each
  ``max_earlier_temperature_c`` cut-off, taken at ``earlier_temperature_at`` every, only
  the latest or only the oldest earlier check-in;
* ``earlier_site_pain``: rising one point a check-in up to the current pain, rising but
  flat at the oldest, the same, falling, or not answered;
* ``earlier_bleeding`` (at the latest earlier check-in) and ``earlier_neutropenia_risk``
  (at the oldest).

Every pair of classes of the current report's fields and these factors appears in some
episode (:func:`~marrow_triage.change.space.covering_rows`); the report classes are also
weighed as first check-ins (no earlier one); every reading class is weighed as a run
(the same reading at each earlier check-in) over every span and count, since a run is a
meeting of three classes that pairs alone may miss; and a seeded sample adds values
between the classes and the combinations pairs miss.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

from marrow_triage.change.space import (
    MISSING,
    FieldClasses,
    boundary_classes,
    covering_rows,
    number_value,
    rows_to_reports,
    sample_reports,
    temperature_classes,
    threshold_step,
)
from marrow_triage.models import Bleeding, SymptomReport
from marrow_triage.pack.conditions import condition_fields, field_tests
from marrow_triage.pack.facts import FACT_FIELDS, HISTORY_FACT_FIELDS
from marrow_triage.pack.spec import RulePack

__all__ = ["EarlierCheckIn", "Episode", "episode_dicts", "episode_factors",
           "first_checkin_dicts", "history_thresholds", "run_dicts", "sample_episode_dicts",
           "to_episode"]

EARLIER_COUNTS = (1, 2, 3)
"""Earlier check-ins every episode space holds (more where a rule counts further); first
check-ins (none earlier) are a batch of their own, so that no pair of history classes is
spent on an episode without a history."""

_AT = datetime(2000, 1, 1, tzinfo=UTC)
"""The current check-in's time: any instant does, only the gaps before it count."""

PATTERNS = ("every", "latest", "oldest")
SAME_AS_NOW = "same_as_now"
"""The earlier readings repeat the current one (first: the covering array's filler)."""
PAIN_TRENDS = ("rising", "rising_then_flat", "same", "falling")
RISKS = ("low_white_cell_count", "recent_chemotherapy", "neither")


@dataclass(frozen=True)
class EarlierCheckIn:
    """An earlier check-in of a generated episode, as history facts read one
    (:class:`~marrow_triage.timeline.history.Earlier`): its time and its report. Not a
    stored check-in (:class:`~marrow_triage.timeline.CheckIn`): nothing here is stored."""

    at: datetime
    report: SymptomReport


@dataclass(frozen=True)
class Episode:
    """A current report at ``at`` after the ``earlier`` check-ins (oldest first)."""

    earlier: tuple[EarlierCheckIn, ...]
    report: SymptomReport
    at: datetime = _AT


def history_thresholds(packs: Iterable[RulePack]) -> dict[str, set[Fraction]]:
    """History fact -> every number a timeline rule of the packs compares it with, plus
    the packs' history settings (``raised_temperature_c`` as a temperature cut-off,
    ``raised_run_max_gap_hours`` in minutes as a gap cut-off)."""
    found: dict[str, set[Fraction]] = {}
    for pack in packs:
        for rule in pack.timeline_rules:
            for test in field_tests(rule.when):
                field = HISTORY_FACT_FIELDS.get(test.field)
                if field is None or field.kind not in ("number", "integer"):
                    continue
                values = test.value if isinstance(test.value, tuple) else (test.value,)
                found.setdefault(test.field, set()).update(
                    Fraction(v) for v in values
                    if isinstance(v, int | Fraction) and not isinstance(v, bool))
        if pack.history is not None:
            found.setdefault("max_earlier_temperature_c", set()).add(
                _exact(pack.history.raised_temperature_c))
            found.setdefault("gap_minutes", set()).add(
                _exact(pack.history.raised_run_max_gap_hours) * 60)
    return found


def _exact(value: float) -> Fraction:
    return Fraction(repr(value))


def episode_factors(packs: Sequence[RulePack]) -> list[FieldClasses]:
    """The classes of each factor an episode's earlier check-ins are built from."""
    thresholds = history_thresholds(packs)
    counts = set(EARLIER_COUNTS)
    for name in ("site_pain_rises", "earlier_checkins"):
        for t in thresholds.get(name, ()):
            counts.update(c for c in (math.floor(t) - 1, math.ceil(t), math.ceil(t) + 1)
                          if c >= 0)
    spans: set[Fraction] = set()
    for run in thresholds.get("raised_temperature_minutes", ()):
        spans.update(_around(run))
    for gap in thresholds.get("gap_minutes", ()):
        for count in counts:  # each gap at and either side of the cut-off
            spans.update(_around(gap * count))
    positive = sorted(s for s in spans if s > 0)
    return [
        FieldClasses("earlier_checkins", tuple(sorted(c for c in counts if c > 0))),
        FieldClasses("span_minutes", tuple(number_value(s) for s in positive)),
        FieldClasses("earlier_temperature",
                     (SAME_AS_NOW, *temperature_classes(
                         thresholds.get("max_earlier_temperature_c", set())))),
        FieldClasses("earlier_temperature_at", PATTERNS),
        FieldClasses("earlier_site_pain", (MISSING, *PAIN_TRENDS)),
        FieldClasses("earlier_bleeding", (MISSING, *(b.value for b in Bleeding))),
        FieldClasses("earlier_neutropenia_risk", (MISSING, *RISKS)),
    ]


def _around(value: Fraction) -> tuple[Fraction, ...]:
    step = threshold_step(value)
    return value - step, value, value + step


def _space(packs: Sequence[RulePack]) -> tuple[list[FieldClasses], int]:
    """The current report's field classes followed by the episode factors; how many of
    the former there are."""
    fields = boundary_classes(packs)
    return fields + episode_factors(packs), len(fields)


def episode_dicts(packs: Sequence[RulePack], sparse: bool = False) -> list[dict[str, Any]]:
    """Episodes (as :func:`to_episode` reads them) holding every pair of classes.

    ``sparse``: of the report, only the fields a timeline rule tests (and those a report
    requires) are answered, so that a history's effect is not hidden by a higher finding
    that some other answer of the report brings anyway.
    """
    fields, reported = _space(packs)
    if sparse:
        tested = {FACT_FIELDS[name].report_field for pack in packs
                  for rule in pack.timeline_rules for name in condition_fields(rule.when)
                  if name in FACT_FIELDS}
        fields = [f for f in fields[:reported] if f.field in tested or MISSING not in f.values
                  ] + fields[reported:]
    rows = covering_rows([len(f.values) for f in fields])
    return [_episode_dict(flat) for flat in rows_to_reports(fields, rows)]


def run_dicts(packs: Sequence[RulePack]) -> list[dict[str, Any]]:
    """Each reading class now and at every earlier check-in, over every span and count
    (nothing else answered)."""
    fields = {f.field: f.values for f in boundary_classes(packs)}
    factors = {f.field: f.values for f in episode_factors(packs)}
    hours = max(v for v in fields["hours_since_procedure"] if v is not MISSING)
    out = []
    for reading in fields["temperature"]:
        if reading is MISSING:
            continue
        for count in factors["earlier_checkins"]:
            for span in factors["span_minutes"]:
                out.append(_episode_dict({
                    "hours_since_procedure": hours, "temperature": reading,
                    "earlier_checkins": count, "span_minutes": span,
                    "earlier_temperature": SAME_AS_NOW, "earlier_temperature_at": "every"}))
    return out


def first_checkin_dicts(packs: Sequence[RulePack]) -> list[dict[str, Any]]:
    """The report classes pairwise, each as an episode's first check-in."""
    fields = boundary_classes(packs)
    rows = covering_rows([len(f.values) for f in fields])
    return [{"earlier": [], "report": report} for report in rows_to_reports(fields, rows)]


def sample_episode_dicts(packs: Sequence[RulePack], count: int,
                         seed: int = 0) -> Iterator[dict[str, Any]]:
    """``count`` seeded episodes: classes, and values between them."""
    fields, _ = _space(packs)
    for flat in sample_reports(fields, count, seed):
        yield _episode_dict(flat)


_FACTORS = ("earlier_checkins", "span_minutes", "earlier_temperature", "earlier_temperature_at",
            "earlier_site_pain", "earlier_bleeding", "earlier_neutropenia_risk")


def _episode_dict(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"earlier": [{"minutes_before": m, "report": {...}}, ...], "report": {...}}``
    from a row of classes (the report's fields and the factors)."""
    factor = {name: flat.pop(name, MISSING) for name in _FACTORS}
    current = flat
    count = int(factor["earlier_checkins"] or 0)
    span = Fraction(str(factor["span_minutes"]))
    hours = float(current.get("hours_since_procedure", 0))
    pain = current.get("site_pain")
    earlier = []
    for back in range(count, 0, -1):  # oldest first; ``back`` check-ins before this one
        minutes = float(span * back / count)  # the oldest exactly ``span`` before
        report: dict[str, Any] = {
            "hours_since_procedure": max(0.0, round(hours - minutes / 60, 6))}
        where = factor["earlier_temperature_at"]
        reading = current.get("temperature") if factor["earlier_temperature"] == \
            SAME_AS_NOW else factor["earlier_temperature"]
        if reading is not MISSING and (
                where == "every" or (where == "latest" and back == 1)
                or (where == "oldest" and back == count)):
            report["temperature"] = reading
        earlier_pain = _pain(factor["earlier_site_pain"], pain, back, count)
        if earlier_pain is not None:
            report["site_pain"] = earlier_pain
        if back == 1 and factor["earlier_bleeding"] is not MISSING:
            report["bleeding"] = factor["earlier_bleeding"]
        risk = factor["earlier_neutropenia_risk"]
        if back == count and risk is not MISSING:
            report["low_white_cell_count"] = risk == "low_white_cell_count"
            report["recent_chemotherapy"] = risk == "recent_chemotherapy"
        earlier.append({"minutes_before": minutes, "report": report})
    return {"earlier": earlier, "report": current}


def _pain(trend: str | None, current: int | None, back: int, count: int) -> int | None:
    """The site pain ``back`` check-ins before one reporting ``current``, for ``trend``
    (one point a check-in: the smallest step a pain score takes)."""
    if trend is MISSING or current is None:
        return None
    if trend == "rising":
        value = current - back
    elif trend == "rising_then_flat":
        value = current - min(back, max(count - 1, 1))
    elif trend == "falling":
        value = current + back
    else:
        value = current
    scale = FACT_FIELDS["site_pain"]
    low, high = scale.minimum, scale.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        return None
    return value


def to_episode(data: dict[str, Any]) -> Episode:
    """The :class:`Episode` an episode dict describes (pydantic's ValidationError when
    a report in it is not valid)."""
    earlier = tuple(EarlierCheckIn(_AT - timedelta(minutes=e["minutes_before"]),
                                   SymptomReport.model_validate(e["report"]))
                    for e in data["earlier"])
    return Episode(earlier, SymptomReport.model_validate(data["report"]))
