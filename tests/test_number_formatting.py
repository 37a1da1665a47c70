"""How numbers are shown in explanations: at most the given decimals, rounded half to even,
no trailing zeros, never "-0". Explanations show measured values and thresholds side by
side, so a digit shown wrong would contradict the rule that fired."""

from __future__ import annotations

from decimal import Decimal, localcontext
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from marrow_triage.units import exact, format_number


def _written_out(value: Fraction, places: int) -> str:
    """The plain form: round, then print the exact decimal and trim it."""
    rounded = round(value, places)
    with localcontext() as context:  # enough digits for any value: the division is exact
        context.prec = len(str(abs(rounded.numerator))) + places + 10
        text = f"{Decimal(rounded.numerator) / Decimal(rounded.denominator):.{places}f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return "0" if text == "-0" else text


@given(st.fractions(), st.integers(0, 4))
def test_numbers_are_shown_as_the_plain_rounding_writes_them(value: Fraction,
                                                             places: int) -> None:
    assert format_number(value, places) == _written_out(value, places)


@given(st.integers(-10**6, 10**6), st.integers(1, 3))
def test_halves_round_to_even_as_round_does(hundredths: int, places: int) -> None:
    value = Fraction(2 * hundredths + 1, 2 * 10**places)  # exactly half a last place
    assert format_number(value, places) == _written_out(value, places)


def test_examples() -> None:
    assert format_number(Fraction(383, 10)) == "38.3"
    assert format_number(Fraction(1, 3), 1) == "0.3"
    assert format_number(Fraction(-1, 1000)) == "0"  # never "-0"
    assert format_number(Fraction(-5, 4), 1) == "-1.2"  # half to even
    assert format_number(Fraction(49, 24), 1) == "2"
    assert format_number(7) == "7"
    assert format_number(Decimal("100.930"), 2) == "100.93"


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_number_is_read_exactly_as_the_decimal_it_was_written_as(value: float) -> None:
    """``exact`` reads plain decimals itself; it must agree with the decimal module."""
    assert exact(value) == Fraction(Decimal(repr(value)))
