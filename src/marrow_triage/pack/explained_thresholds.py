"""Do an explanation's numbers agree with its rule's thresholds? Checked exactly.

The numbers a text states are read with their units: ``38.3 °C``, ``101 °F``, ``7/10``,
``48 hours``, ``5 days``, ``60 minutes``, or a plain count. A rule's threshold on a fact
is stated in that fact's unit (:attr:`~marrow_triage.pack.facts.FactField.unit`). Two
rules, both exact:

* every threshold of the condition is stated, in its unit (days count as 24 hours);
* every number stated in a unit the condition has thresholds in is one of them (a °F
  figure is one if it is a °C threshold converted and rounded to the figure's places).

So "at or above 7/10" cannot explain ``site_pain: {at_least: 1}`` (1/10 is not stated,
and 7/10 is not a threshold), however often a "1" occurs elsewhere in the text (the
"0 to 10" of a scale is a scale, not a number). Numbers in units the condition does not
test ("6 weeks", "24 hours" in a rule about pain) describe something else and are left
alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from marrow_triage.pack.conditions import AllOf, AnyOf, Condition
from marrow_triage.pack.facts import FactField
from marrow_triage.units import format_number

__all__ = ["Stated", "condition_thresholds", "stated_numbers", "threshold_problems"]

_SCALE = re.compile(r"\b0\s*(?:to|-|–)\s*10\b")
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
_NUMBER = re.compile(
    r"(?<![\w.])(\d+(?:\.\d+)?)"
    r"(?:\s*(°\s*[CF])\b|\s*(/)\s*10(?!\d|\.\d)|\s+(hours?|days?|minutes?|weeks?)\b)?")
_UNITS = {"hour": "hours", "hours": "hours", "day": "days", "days": "days",
          "minute": "minutes", "minutes": "minutes", "week": "weeks", "weeks": "weeks"}


@dataclass(frozen=True)
class Stated:
    """A number as the text states it: its value, unit and the text itself."""

    value: Fraction
    unit: str
    """``°C``, ``°F``, ``/10``, ``hours``, ``days``, ``minutes``, ``weeks`` or ``""``."""
    text: str
    places: int


def stated_numbers(text: str) -> list[Stated]:
    """The numbers ``text`` states, with their units; placeholders and scales left out."""
    plain = _SCALE.sub(" ", _PLACEHOLDER.sub(" ", text))
    out = []
    for match in _NUMBER.finditer(plain):
        number, degrees, slash, word = match.groups()
        unit = (degrees.replace(" ", "") if degrees else "/10" if slash
                else _UNITS[word] if word else "")
        places = len(number.partition(".")[2])
        out.append(Stated(Fraction(Decimal(number)), unit, match.group(0).strip(), places))
    return out


def _thresholds(condition: Condition, fields: Mapping[str, FactField]
                ) -> Iterator[tuple[Fraction, str]]:
    if isinstance(condition, AllOf | AnyOf):
        for part in condition.parts:
            yield from _thresholds(part, fields)
    elif isinstance(condition.value, Fraction):
        yield condition.value, fields[condition.field].unit


def _show(value: Fraction, unit: str) -> str:
    number = format_number(value, 6)
    if unit == "/10":
        return f"{number}/10"
    return f"{number} {unit}" if unit else number


def _as_hours(stated: Stated) -> Stated:
    if stated.unit == "days":
        return Stated(stated.value * 24, "hours", stated.text, stated.places)
    return stated


def _fahrenheit_of(celsius: Fraction, places: int) -> Fraction:
    exact = celsius * 9 / 5 + 32
    quantum = Decimal(1).scaleb(-places)
    shown = (Decimal(exact.numerator) / Decimal(exact.denominator)).quantize(
        quantum, rounding=ROUND_HALF_UP)
    return Fraction(shown)


def threshold_problems(text: str, thresholds: list[tuple[Fraction, str]]) -> list[str]:
    """What is wrong with how ``text`` states ``thresholds`` (value and unit each)."""
    stated = [_as_hours(s) for s in stated_numbers(text)]
    problems = []
    for value, unit in thresholds:
        if not any(s.unit == unit and s.value == value for s in stated):
            problems.append(f"must state the threshold {_show(value, unit)}")
    units = {unit for _, unit in thresholds}
    for s in stated:
        if s.unit == "°F" and "°C" in units:
            ok = any(_fahrenheit_of(v, s.places) == s.value for v, u in thresholds if u == "°C")
        elif s.unit in units:
            ok = any(v == s.value for v, u in thresholds if u == s.unit)
        else:
            continue
        if not ok:
            shown = ", ".join(_show(v, u) for v, u in thresholds if u == s.unit or
                              (s.unit == "°F" and u == "°C"))
            problems.append(f"states {s.text!r}, which is not a threshold of the condition "
                            f"(its thresholds: {shown})")
    return problems


def condition_thresholds(condition: Condition, fields: Mapping[str, FactField]
                         ) -> list[tuple[Fraction, str]]:
    """The condition's numeric thresholds, each with its fact's unit."""
    return list(_thresholds(condition, fields))
