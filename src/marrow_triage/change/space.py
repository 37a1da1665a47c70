"""The report space a rule change is judged over: boundary classes, pairwise, plus samples.

Every report field's values are reduced to classes: not answered, each enum value, true
and false, and for numbers the values at and on each side of every threshold that any
of the given packs tests (a temperature threshold in °C and the nearest readings in °F,
so 38.29 / 38.3 °C and 100.93 / 100.94 °F are all there), with each end of the field's
range. A covering array then combines them so that every pair of classes of every two
fields appears in some report (IPOG-style greedy construction, deterministic). A seeded
sample over the same fields, with values between the thresholds too, adds the
combinations of three or more fields that pairs miss.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from marrow_triage.models import (
    MAX_HOURS_SINCE_PROCEDURE,
    TEMPERATURE_LIMITS,
    SymptomReport,
    Temperature,
    TemperatureUnit,
)
from marrow_triage.pack.conditions import field_tests
from marrow_triage.pack.facts import FACT_FIELDS, FactField
from marrow_triage.pack.spec import RulePack
from marrow_triage.units import decimal_of

__all__ = ["FieldClasses", "boundary_classes", "covering_rows", "number_value",
           "pack_thresholds", "sample_reports", "temperature_classes", "threshold_step"]

MISSING = None
"""The class "not answered" (the field is left out of the report)."""


@dataclass(frozen=True)
class FieldClasses:
    """The classes of one report field: JSON values, ``None`` meaning not answered."""

    field: str
    values: tuple[Any, ...]


def pack_thresholds(packs: Iterable[RulePack]) -> dict[str, set[Fraction]]:
    """Fact name -> every number a rule, timeline rule or question of the packs compares
    it with (``at_least``, ``below``, and ``is`` / ``one_of`` on whole-number facts)."""
    found: dict[str, set[Fraction]] = {}
    for pack in packs:
        conditions = [r.when for r in pack.rules if r.when is not None]
        conditions += [r.when for r in pack.timeline_rules]
        conditions += [q.when for q in pack.questions if q.when is not None]
        for condition in conditions:
            for test in field_tests(condition):
                if test.field not in FACT_FIELDS or FACT_FIELDS[test.field].kind not in (
                        "number", "integer"):
                    continue
                values = test.value if isinstance(test.value, tuple) else (test.value,)
                for value in values:
                    if isinstance(value, int | Fraction) and not isinstance(value, bool):
                        found.setdefault(test.field, set()).add(Fraction(value))
    return found


def threshold_step(threshold: Fraction) -> Fraction:
    """The distance to the values either side of a threshold: one hundredth, or a tenth of
    the threshold's own last decimal place when it is finer (38.25 -> 0.001)."""
    exponent = Decimal(threshold.numerator) / Decimal(threshold.denominator)
    places = max(0, -int(exponent.normalize().as_tuple().exponent))
    return Fraction(1, 10 ** max(2, places + 1))


def number_value(value: Fraction) -> float | int:
    """A report number for an exact decimal value (a float that reads back as it)."""
    if value.denominator == 1:
        return int(value)
    return float(Decimal(value.numerator) / Decimal(value.denominator))


def _within(low: Fraction, high: Fraction, values: Iterable[Fraction]) -> list[Fraction]:
    return sorted({v for v in values if low <= v <= high})


def temperature_classes(thresholds: set[Fraction]) -> list[Any]:
    """Not answered, then readings in °C and °F at and either side of each threshold (°C),
    and each end of the range a reading may take."""
    classes: list[Any] = [MISSING]
    for unit in (TemperatureUnit.CELSIUS, TemperatureUnit.FAHRENHEIT):
        low, high = (Fraction(decimal_of(v)) for v in TEMPERATURE_LIMITS[unit])
        points = [low, high]
        for threshold in thresholds:
            step = threshold_step(threshold)
            if unit is TemperatureUnit.CELSIUS:
                at = threshold
            else:  # the lowest reading in °F, to the step, that is at or above it in °C
                exact = threshold * Fraction(9, 5) + 32
                at = Fraction(math.ceil(exact / step)) * step
            points += [at - step, at, at + step]
        classes += [{"value": number_value(v), "unit": unit.value}
                    for v in _within(low, high, points)]
    return classes


def _number_classes(field: FactField, thresholds: set[Fraction]) -> list[Any]:
    low = field.minimum if field.minimum is not None else Fraction(0)
    high = field.maximum if field.maximum is not None else Fraction(MAX_HOURS_SINCE_PROCEDURE)
    step = {t: Fraction(1) if field.kind == "integer" else threshold_step(t) for t in thresholds}
    points = [low, high, *(t + d for t in thresholds for d in (-step[t], 0, step[t]))]
    return [number_value(v) for v in _within(low, high, points)]


def _is_temperature(field: FactField) -> bool:
    info = SymptomReport.model_fields.get(field.report_field)
    return info is not None and Temperature in getattr(info.annotation, "__args__", ())


def _required(field: FactField) -> bool:
    info = SymptomReport.model_fields.get(field.report_field)
    return info is not None and info.is_required()


def boundary_classes(packs: Sequence[RulePack]) -> list[FieldClasses]:
    """The classes of every report field, for the thresholds of all of ``packs``."""
    thresholds = pack_thresholds(packs)
    out = []
    for name, field in FACT_FIELDS.items():
        tested = thresholds.get(name, set())
        values: list[Any]
        if _is_temperature(field):
            values = temperature_classes(tested)
        elif field.kind in ("number", "integer"):
            values = _number_classes(field, tested)
        elif field.kind == "boolean":
            values = [True, False]
        else:
            values = list(field.values)
        if not _required(field) and MISSING not in values:
            values = [MISSING, *values]
        out.append(FieldClasses(field.report_field, tuple(values)))
    return out


def covering_rows(domains: Sequence[int]) -> list[tuple[int, ...]]:
    """Rows of value indexes in which every pair of values of every two columns appears.

    IPOG: the first two columns in full, then each further column is added to the rows
    (each row takes the value covering most pairs still missing, the lowest on a tie) and
    the pairs still missing get new rows or fill the free cells of rows added for them.
    Deterministic; free cells left at the end take values in turn.
    """
    if not domains:
        return []
    if len(domains) == 1:
        return [(v,) for v in range(domains[0])]
    rows: list[list[int | None]] = [[a, b] for a in range(domains[0]) for b in range(domains[1])]
    for column in range(2, len(domains)):
        missing = {(other, value, new) for other in range(column)
                   for value in range(domains[other]) for new in range(domains[column])}
        for row in rows:
            best, best_gain = 0, -1
            for new in range(domains[column]):
                gain = sum(1 for other in range(column)
                           if row[other] is not None and (other, row[other], new) in missing)
                if gain > best_gain:
                    best, best_gain = new, gain
            row.append(best)
            missing -= {(other, row[other], best) for other in range(column)
                        if row[other] is not None}
        added: list[list[int | None]] = []
        for other, value, new in sorted(missing):
            for row in added:
                if row[column] == new and row[other] is None:
                    row[other] = value
                    break
            else:
                fresh: list[int | None] = [None] * (column + 1)
                fresh[other], fresh[column] = value, new
                added.append(fresh)
        rows += added
    return [tuple(v if v is not None else (n + i) % domains[i] for i, v in enumerate(row))
            for n, row in enumerate(rows)]


def rows_to_reports(fields: Sequence[FieldClasses],
                    rows: Iterable[Sequence[int]]) -> Iterator[dict[str, Any]]:
    """Report dicts for covering-array rows (classes ``None`` are left out)."""
    for row in rows:
        report = {}
        for field, index in zip(fields, row, strict=True):
            value = field.values[index]
            if value is not MISSING:
                report[field.field] = value
        yield report


def sample_reports(fields: Sequence[FieldClasses], count: int,
                   seed: int = 0) -> Iterator[dict[str, Any]]:
    """``count`` reports drawn with ``random.Random(seed)``: each field a class (three
    times in four) or a value between it and the next class, so the same seed gives the
    same reports."""
    rng = random.Random(seed)
    plans = [(f.field, f.values, _spans(f.values)) for f in fields]
    choice, draw, randint = rng.choice, rng.random, rng.randint
    for _ in range(count):
        report = {}
        for name, values, spans in plans:
            index = choice(range(len(values)))
            value = values[index]
            span = spans[index]
            if span is not None and draw() < 0.25:
                scale, low, width, unit = span
                number = (low + randint(0, width)) / scale if scale != 1 else low + \
                    randint(0, width)
                value = number if unit is None else {"value": number, "unit": unit}
            if value is not MISSING:
                report[name] = value
        yield report


_Span = tuple[int, int, int, str | None]
"""scale, low and width in units of 1/scale, and the temperature unit (None: a number)."""


def _spans(values: Sequence[Any]) -> list[_Span | None]:
    """For each class, the values from it up to the next class of the same kind."""
    keyed: list[tuple[str | None, Fraction] | None] = []
    for value in values:
        if isinstance(value, dict):
            keyed.append((value["unit"], Fraction(decimal_of(value["value"]))))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            keyed.append((None, Fraction(decimal_of(value))))
        else:
            keyed.append(None)
    whole = all(isinstance(v, int) for v, k in zip(values, keyed, strict=True)
                if k is not None and k[0] is None)
    spans: list[_Span | None] = []
    for key in keyed:
        if key is None:
            spans.append(None)
            continue
        unit, low = key
        higher = [k[1] for k in keyed if k is not None and k[0] == unit and k[1] > low]
        high = min(higher, default=low)
        scale = 1 if unit is None and whole else 100
        spans.append((scale, math.ceil(low * scale), math.floor(high * scale) -
                      math.ceil(low * scale), unit))
    return spans
