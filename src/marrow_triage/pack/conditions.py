"""Conditions: what a rule tests, parsed from rule files and type-checked against facts.

In a rule file a condition is a mapping. Each key is a fact name with its tests, or
``all`` / ``any`` with a list of conditions; the entries of one mapping must all hold::

    when:
      temperature_c: {at_least: 38.0, below: 38.3}
      any:
        - low_white_cell_count: {is: true}
        - recent_chemotherapy: {is: true}

Tests are ``at_least`` (≥), ``below`` (<), ``is``, ``one_of`` and ``missing`` (``true``:
not answered; ``false``: answered, whatever the value). A threshold may name a parameter
of the pack (``parameters:`` in pack.yaml) as ``$name``, e.g. ``{at_least:
$several_days_hours}``, so that a cited window is written once.
Numeric thresholds have at most six decimal places, so that they are exact in the engine.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from marrow_triage.errors import ConditionError, suggest
from marrow_triage.pack.facts import FACT_FIELDS, FactField, FactValue
from marrow_triage.units import decimal_of

__all__ = [
    "AllOf",
    "AnyOf",
    "Condition",
    "ConditionError",
    "FieldTest",
    "condition_fields",
    "condition_to_data",
    "field_tests",
    "parse_condition",
    "residual",
    "suggest",
    "thresholds",
]

TestOp = Literal["at_least", "below", "is", "one_of", "missing"]
TEST_OPS: tuple[TestOp, ...] = ("at_least", "below", "is", "one_of", "missing")
THRESHOLD_PLACES = 6


@dataclass(frozen=True)
class FieldTest:
    """One test of one fact, e.g. ``temperature_c at_least 38.3``."""

    field: str
    op: TestOp
    value: FactValue | tuple[str | int, ...] | None = None
    parameter: str | None = None
    """The pack parameter the threshold came from (``$name`` in the rule file), if any."""


@dataclass(frozen=True)
class AllOf:
    """Every part holds."""

    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    """At least one part holds."""

    parts: tuple[Condition, ...]


Condition = FieldTest | AllOf | AnyOf


def parse_condition(data: object, path: str = "when",
                    fields: Mapping[str, FactField] = FACT_FIELDS,
                    parameters: Mapping[str, float] | None = None) -> Condition:
    """Parse and type-check a condition from rule-file data against the ``fields`` schema.

    ``parameters`` are the pack's named values that thresholds may refer to as ``$name``.
    """
    params = parameters or {}
    if not isinstance(data, Mapping) or not data:
        raise ConditionError(path, "expected a non-empty mapping of fact names to tests")
    parts: list[Condition] = []
    for key, value in data.items():
        where = f"{path}.{key}"
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                raise ConditionError(where, "expected a non-empty list of conditions")
            inner = tuple(parse_condition(item, f"{where}[{i}]", fields, params)
                          for i, item in enumerate(value))
            parts.append(AllOf(inner) if key == "all" else AnyOf(inner))
            continue
        if not isinstance(key, str) or key not in fields:
            raise ConditionError(
                where, f"unknown fact {key!r}{suggest(str(key), tuple(fields))}; "
                "known facts are listed in docs/rules.md"
            )
        parts.extend(_parse_tests(fields[key], value, where, params))
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def _parse_tests(field: FactField, data: object, path: str,
                 parameters: Mapping[str, float]) -> list[FieldTest]:
    if not isinstance(data, Mapping) or not data:
        raise ConditionError(path, f"expected a mapping of tests, one of {', '.join(TEST_OPS)}")
    tests = []
    for op, value in data.items():
        where = f"{path}.{op}"
        if op not in TEST_OPS:
            raise ConditionError(where, f"unknown test {op!r}{suggest(str(op), TEST_OPS)}")
        tests.append(_parse_test(field, op, value, where, parameters))
    return tests


def _parse_test(field: FactField, op: TestOp, value: object, path: str,
                parameters: Mapping[str, float]) -> FieldTest:
    if op == "missing":
        if not isinstance(value, bool):
            raise ConditionError(path, "write `missing: true` (not answered) or `missing: false`")
        return FieldTest(field.name, "missing", value)
    if op in ("at_least", "below"):
        if field.kind not in ("number", "integer"):
            raise ConditionError(path, f"{op} needs a numeric fact; {field.name} is {field.kind}")
        if isinstance(value, str) and value.startswith("$"):
            name = value[1:]
            if name not in parameters:
                raise ConditionError(path, f"unknown parameter {value!r}"
                                     f"{suggest(name, tuple(parameters))}; parameters are "
                                     "declared under `parameters:` in pack.yaml")
            try:
                threshold = _threshold(field, parameters[name], path)
            except ConditionError as exc:
                raise ConditionError(path, f"parameter {value} = {parameters[name]!r}: "
                                     f"{exc.message}") from None
            return FieldTest(field.name, op, threshold, name)
        return FieldTest(field.name, op, _threshold(field, value, path))
    if field.kind == "text":
        raise ConditionError(path, f"{field.name} is free text, never interpreted: only "
                             "`missing: true` or `missing: false` can test it")
    if op == "is":
        return FieldTest(field.name, "is", _scalar(field, value, path))
    if field.kind not in ("enum", "integer"):
        raise ConditionError(path, f"one_of needs an enum or integer fact; {field.name} is "
                             f"{field.kind}")
    if not isinstance(value, list) or not value:
        raise ConditionError(path, "expected a non-empty list of values")
    values = [_scalar(field, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if len(set(values)) != len(values):
        raise ConditionError(path, "a value is listed twice")
    ordered = sorted(values, key=lambda v: field.values.index(v) if field.kind == "enum" else v)
    return FieldTest(field.name, "one_of", tuple(ordered))


def _threshold(field: FactField, value: object, path: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConditionError(path, f"expected a number, got {type(value).__name__} {value!r}")
    exact = decimal_of(value)
    if not exact.is_finite():
        raise ConditionError(path, "expected a finite number")
    exponent = exact.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -THRESHOLD_PLACES:
        raise ConditionError(path, f"{value!r} has more than {THRESHOLD_PLACES} decimal places")
    if field.kind == "integer" and exact != exact.to_integral_value():
        raise ConditionError(path, f"{field.name} is a whole number; {value!r} is not")
    threshold = Fraction(exact)
    if abs(threshold) > 10**9:
        raise ConditionError(path, f"{value!r} is out of range")
    return threshold


def _scalar(field: FactField, value: object, path: str) -> str | int | bool:
    if field.kind == "boolean":
        if not isinstance(value, bool):
            raise ConditionError(path, f"{field.name} is true or false, not {value!r}")
        return value
    if field.kind == "enum":
        if not isinstance(value, str) or value not in field.values:
            raise ConditionError(
                path, f"{value!r} is not a value of {field.name}"
                f"{suggest(str(value), field.values)}; expected one of {', '.join(field.values)}"
            )
        return value
    if field.kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ConditionError(path, f"`is` cannot compare the {field.kind} fact {field.name} with "
                         f"{value!r}; use at_least / below")


def condition_fields(condition: Condition) -> list[str]:
    """Fact names the condition reads, in first-use order, without repeats."""
    seen: dict[str, None] = {}
    for test in field_tests(condition):
        seen.setdefault(test.field)
    return list(seen)


def field_tests(condition: Condition) -> Iterator[FieldTest]:
    """Every field test in the condition tree, depth first, in written order."""
    if isinstance(condition, FieldTest):
        yield condition
    else:
        for part in condition.parts:
            yield from field_tests(part)


def residual(condition: Condition, field: str) -> Condition | bool:
    """What ``condition`` still needs of the other facts once ``field``, now unanswered,
    gets an answer: ``True`` when some answer alone makes it hold, ``False`` when no
    answer can (it needs ``field`` unanswered), else the condition on the other facts.

    Every test of ``field`` other than ``missing: true`` is taken as satisfiable by some
    answer, which over-asks rather than under-asks if a rule's tests of one field could
    never hold together.
    """
    if isinstance(condition, FieldTest):
        if condition.field != field:
            return condition
        return not (condition.op == "missing" and condition.value is True)
    parts = [residual(part, field) for part in condition.parts]
    if isinstance(condition, AllOf):
        if any(part is False for part in parts):
            return False
        kept = [part for part in parts if part is not True]
        if not kept:
            return True
        return kept[0] if len(kept) == 1 else AllOf(tuple(kept))  # type: ignore[arg-type]
    if any(part is True for part in parts):
        return True
    left = [part for part in parts if part is not False]
    if not left:
        return False
    return left[0] if len(left) == 1 else AnyOf(tuple(left))  # type: ignore[arg-type]


def thresholds(condition: Condition) -> list[Fraction]:
    """Numeric thresholds in the condition, for checking that explanations show them."""
    return [t.value for t in field_tests(condition) if isinstance(t.value, Fraction)]


def condition_to_data(condition: Condition) -> object:
    """Canonical JSON-ready form, used for the pack hash and the catalogue."""
    if isinstance(condition, FieldTest):
        value: object = condition.value
        if isinstance(value, Fraction):
            value = str(Decimal(value.numerator) / Decimal(value.denominator))
            if condition.parameter is not None:
                value = {"parameter": condition.parameter, "value": value}
        elif isinstance(value, tuple):
            value = list(value)
        return {condition.field: {condition.op: value}}
    key = "all" if isinstance(condition, AllOf) else "any"
    return {key: [condition_to_data(part) for part in condition.parts]}

