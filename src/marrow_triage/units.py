"""Exact temperature arithmetic.

A reading is taken as the decimal the patient typed (``100.94``), not the nearest binary
float (``100.93999999999999772...``), and converted to Celsius as an exact fraction, so a
threshold of 38.3 °C holds for 100.94 °F exactly. Display rounding happens only in
:func:`format_temperature`, never before a comparison.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

from marrow_triage.models import Temperature, TemperatureUnit

__all__ = [
    "celsius",
    "decimal_of",
    "exact",
    "fahrenheit",
    "format_cut",
    "format_number",
    "format_temperature",
]

_WHOLE_FLOATS = 2**53
"""Below this, a whole float's shortest decimal is the integer itself."""


def decimal_of(value: float | int) -> Decimal:
    """The decimal a number was written as: the shortest one that round-trips."""
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def exact(value: float | int) -> Fraction:
    """The decimal a number was written as, as an exact fraction (``20.1`` is 201/10)."""
    if isinstance(value, int):
        return Fraction(value)
    if value.is_integer() and -_WHOLE_FLOATS < value < _WHOLE_FLOATS:
        return Fraction(int(value))  # same value as via the decimal, without parsing it
    text = repr(value)
    whole, point, fraction = text.partition(".")
    if point and fraction.isdigit():  # plain "-12.345": digits over a power of ten
        return Fraction(int(whole + fraction), 10 ** len(fraction))
    return Fraction(decimal_of(value))  # exponent form (1e-07), inf, nan


def celsius(reading: Temperature) -> Fraction:
    """The reading in degrees Celsius, exactly."""
    value = exact(reading.value)
    if reading.unit is TemperatureUnit.CELSIUS:
        return value
    return (value - 32) * Fraction(5, 9)


def fahrenheit(reading: Temperature) -> Fraction:
    """The reading in degrees Fahrenheit, exactly."""
    value = exact(reading.value)
    if reading.unit is TemperatureUnit.FAHRENHEIT:
        return value
    return value * Fraction(9, 5) + 32


def format_number(value: Fraction | Decimal | float | int, places: int = 2) -> str:
    """A number for people: at most ``places`` decimals, no trailing zeros."""
    exact = Fraction(value) if not isinstance(value, Fraction) else value
    # In integers (it runs for every explanation): the value in units of 10**-places,
    # rounded half to even as round() does, then written out.
    whole, rest = divmod(exact.numerator * 10**places, exact.denominator)
    if 2 * rest > exact.denominator or (2 * rest == exact.denominator and whole % 2):
        whole += 1
    if whole == 0:
        return "0"
    digits = str(abs(whole)).rjust(places + 1, "0")
    fraction = digits[len(digits) - places:].rstrip("0") if places else ""
    text = digits[:len(digits) - places] + (f".{fraction}" if fraction else "")
    return f"-{text}" if whole < 0 else text


def format_temperature(reading: Temperature) -> str:
    """``"101.3 °F (38.5 °C)"``: the reading as taken, then the other unit.

    The other unit is cut, not rounded, to its shown places, so that it never appears to
    reach a threshold the reading is below (100.939 °F is 38.29 °C, not "38.3 °C").
    """
    shown = format(decimal_of(reading.value).normalize(), "f")
    if reading.unit is TemperatureUnit.CELSIUS:
        return f"{shown} °C ({format_cut(fahrenheit(reading), 1)} °F)"
    return f"{shown} °F ({format_cut(celsius(reading), 2)} °C)"


def format_cut(value: Fraction, places: int) -> str:
    """A number for people, cut (not rounded) to ``places`` decimals: shown cut, a value
    never appears to reach a threshold it is below."""
    scale = 10**places
    return format_number(Fraction(math.floor(value * scale), scale), places)
