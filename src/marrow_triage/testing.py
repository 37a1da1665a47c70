"""Hypothesis strategies for property-testing code that uses marrow_triage.

Install the ``testing`` extra (``pip install "marrow-triage[testing]"``); this is the only
module that imports hypothesis. A telehealth app can check its own integration in CI::

    from hypothesis import given
    from marrow_triage import Urgency, triage
    from marrow_triage.testing import report_dicts, reports_at_level

    @given(reports_at_level(Urgency.EMERGENCY))
    def test_emergencies_reach_the_emergency_screen(report):
        assert my_app.handle(report).screen == "call-999"

    @given(report_dicts())
    def test_our_api_accepts_every_valid_report(payload):
        assert my_client.post("/checkin", json=payload).status_code == 200

Strategies:

* :func:`reports`: valid :class:`~marrow_triage.models.SymptomReport` objects, with every
  field or a random subset; numbers cluster at the rule pack's thresholds (38.3 °C and
  its exact Fahrenheit value 100.94 °F, one hundredth either side, and so on).
* :func:`report_dicts`: the same, as JSON-ready dicts (the wire format).
* :func:`reports_at_level`: reports that an engine places at exactly one level. Each is an
  ordinary report with the conditions of one rule of that level satisfied, so every level
  the pack can produce is reached quickly; each candidate is then checked with the engine.
* :func:`temperatures`: valid readings in °C or °F.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction
from typing import Any

from hypothesis import assume
from hypothesis import strategies as st

from marrow_triage.engine.triage import TriageEngine, default_engine
from marrow_triage.models import (
    MAX_HOURS_SINCE_PROCEDURE,
    MAX_OTHER_CONCERN_LENGTH,
    TEMPERATURE_LIMITS,
    Bleeding,
    Bruising,
    NauseaOrVomiting,
    PainTrend,
    SiteDischarge,
    SymptomReport,
    Temperature,
    TemperatureUnit,
    Urgency,
)
from marrow_triage.pack.conditions import AllOf, AnyOf, Condition, FieldTest, field_tests
from marrow_triage.pack.facts import FACT_FIELDS, FactField
from marrow_triage.pack.spec import RulePack, RuleSpec

__all__ = ["concern_texts", "report_dicts", "reports", "reports_at_level", "temperatures"]

_CENT = Fraction(1, 100)
_MICRO = Fraction(1, 10**6)
_MIN_C, _MAX_C = (Fraction(Decimal(repr(v))) for v in TEMPERATURE_LIMITS[TemperatureUnit.CELSIUS])
_MAX_HOURS = Fraction(MAX_HOURS_SINCE_PROCEDURE)

_FLAGS = tuple(name for name, f in FACT_FIELDS.items() if f.kind == "boolean")
_ENUMS: Mapping[str, tuple[str, ...]] = {
    "bleeding": tuple(m.value for m in Bleeding),
    "site_discharge": tuple(m.value for m in SiteDischarge),
    "bruising": tuple(m.value for m in Bruising),
    "pain_trend": tuple(m.value for m in PainTrend),
    "nausea_or_vomiting": tuple(m.value for m in NauseaOrVomiting),
}
_PAINS = ("site_pain", "back_or_abdominal_pain")
_TEXTS = tuple(name for name, f in FACT_FIELDS.items() if f.kind == "text")


def concern_texts() -> st.SearchStrategy[str]:
    """Valid free-text concerns: any non-blank text up to the accepted length, including
    quotes, braces, markup and non-Latin scripts (never interpreted, always shown)."""
    return st.one_of(
        st.sampled_from(["I feel anxious about the results", "My hip looks odd {site_pain}",
                         'He said "call if worried"', "<b>help</b>", "me duele la cadera",
                         "x" * MAX_OTHER_CONCERN_LENGTH]),
        st.text(min_size=1, max_size=MAX_OTHER_CONCERN_LENGTH).filter(str.strip),
    )


def _default_pack() -> RulePack:
    return default_engine().pack


def _float(value: Fraction) -> float:
    """A float whose shortest repr is ``value``'s decimal (exact for ≤ 15 digits)."""
    return float(Decimal(value.numerator) / Decimal(value.denominator))


def _fahrenheit(celsius: Fraction) -> Fraction:
    return celsius * Fraction(9, 5) + 32


def _is_decimal(value: Fraction, places: int = 6) -> bool:
    return bool((value * 10**places).denominator == 1)


def _thresholds(pack: RulePack, fact: str) -> list[Fraction]:
    """Every numeric threshold the pack holds ``fact`` against, sorted."""
    found: set[Fraction] = set()
    conditions = [r.when for r in pack.rules] + [q.when for q in pack.questions]
    for condition in conditions:
        if condition is None:
            continue
        for test in field_tests(condition):
            if test.field == fact and isinstance(test.value, Fraction):
                found.add(test.value)
    return sorted(found)


def _near(points: Iterable[Fraction], low: Fraction, high: Fraction) -> list[Fraction]:
    """Each point, one hundredth and one millionth either side, within ``[low, high]``."""
    out: set[Fraction] = set()
    for point in points:
        for delta in (0, _CENT, -_CENT, -_MICRO, _MICRO):
            value = point + delta
            if low <= value <= high:
                out.add(value)
    return sorted(out)


def _decimal_steps(low: Fraction, high: Fraction, step: Fraction) -> st.SearchStrategy[Fraction]:
    """Multiples of ``step`` in ``[low, high]`` (``low`` and ``high`` multiples of it)."""
    count = int((high - low) / step)
    return st.integers(0, count).map(lambda k: low + k * step)


def _reading(celsius: Fraction, unit: TemperatureUnit) -> Temperature:
    value = celsius if unit is TemperatureUnit.CELSIUS else _fahrenheit(celsius)
    return Temperature(value=_float(value), unit=unit)


def _reading_in(unit: TemperatureUnit) -> Callable[[Fraction], Temperature]:
    def reading(value: Fraction) -> Temperature:
        return Temperature(value=_float(value), unit=unit)

    return reading


def temperatures(
    unit: TemperatureUnit | str | None = None, *, pack: RulePack | None = None
) -> st.SearchStrategy[Temperature]:
    """Valid temperature readings in °C or °F (or only ``unit``).

    Readings cluster at the pack's temperature thresholds, given exactly in either unit
    (38.3 °C, 100.94 °F) and one hundredth or one millionth either side; the rest are
    readings with one or two decimals over the whole plausible range, and now and then
    an arbitrary float.
    """
    units = [TemperatureUnit(unit)] if unit is not None else list(TemperatureUnit)
    points = _thresholds(pack or _default_pack(), "temperature_c")
    options: list[st.SearchStrategy[Temperature]] = []
    for u in units:
        low, high = (Fraction(Decimal(repr(v))) for v in TEMPERATURE_LIMITS[u])
        native = points if u is TemperatureUnit.CELSIUS else [_fahrenheit(p) for p in points]
        edges = [v for v in _near(native, low, high) if _is_decimal(v)]
        if edges:
            options.append(st.sampled_from(edges).map(_reading_in(u)))
        options.append(_decimal_steps(low, high, _CENT).map(_reading_in(u)))
        options.append(_decimal_steps(low, high, Fraction(1, 10)).map(_reading_in(u)))
        options.append(st.floats(float(low), float(high), allow_nan=False)
                       .map(Fraction).map(_reading_in(u)))
    return st.one_of(options)


def _hours(pack: RulePack) -> st.SearchStrategy[float]:
    edges = _near([*_thresholds(pack, "hours_since_procedure"), Fraction(0)], Fraction(0),
                  _MAX_HOURS)
    return st.one_of(
        st.sampled_from(edges).map(_float),
        _decimal_steps(Fraction(0), Fraction(240), _CENT).map(_float),
        st.integers(0, MAX_HOURS_SINCE_PROCEDURE).map(float),
        st.floats(0, float(MAX_HOURS_SINCE_PROCEDURE), allow_nan=False),
    )


def _any_values(pack: RulePack) -> dict[str, st.SearchStrategy[Any]]:
    """A strategy for every optional report field, over all its valid values."""
    fields: dict[str, st.SearchStrategy[Any]] = {"temperature": temperatures(pack=pack)}
    fields.update({name: st.sampled_from(values) for name, values in _ENUMS.items()})
    fields.update({name: st.integers(0, 10) for name in _PAINS})
    fields.update({name: st.booleans() for name in _FLAGS})
    fields.update({name: concern_texts() for name in _TEXTS})
    return fields


def _report_values(complete: bool, pack: RulePack) -> st.SearchStrategy[dict[str, Any]]:
    required = {"hours_since_procedure": _hours(pack)}
    optional = _any_values(pack)
    if complete:
        return st.fixed_dictionaries({**required, **optional})
    return st.fixed_dictionaries(required, optional=optional)


def reports(
    complete: bool = False, *, pack: RulePack | None = None
) -> st.SearchStrategy[SymptomReport]:
    """Valid symptom reports: every field when ``complete``, else a random subset.

    Values cover each field's whole valid range and cluster at the thresholds of ``pack``
    (default: the packaged rules).
    """
    values = _report_values(complete, pack or _default_pack())
    return values.map(SymptomReport.model_validate)


def report_dicts(
    complete: bool = False, *, pack: RulePack | None = None
) -> st.SearchStrategy[dict[str, Any]]:
    """Like :func:`reports`, as JSON-ready dicts in the wire format (unanswered = absent)."""
    return reports(complete, pack=pack).map(
        lambda r: r.model_dump(mode="json", exclude_none=True))


# --- reports at a chosen level -------------------------------------------------------

def _benign_values(pack: RulePack) -> dict[str, st.SearchStrategy[Any]]:
    """Values that on their own fire no rule of ``pack`` above self care.

    An enum or flag value is benign when no rule above self care names it. A number is
    benign below every ``at_least`` threshold of a test that decides such a rule by that
    field alone (the whole condition, an ``any`` part, or an ``all`` of tests of that one
    field), from the field's minimum up. A combination of benign values can still fire a
    rule (an ``all`` over several fields): :func:`reports_at_level` filters those out.
    """
    warnings = [rule.when for rule in pack.rules
                if rule.when is not None and rule.level is not Urgency.SELF_CARE]
    named = [test for condition in warnings for test in field_tests(condition)]
    deciding = [test for condition in warnings for test in _deciding_tests(condition)]
    benign: dict[str, st.SearchStrategy[Any]] = {}
    for name, field in FACT_FIELDS.items():
        if name == "hours_since_procedure":
            continue  # drawn on its own (see _hours)
        if field.kind in ("enum", "boolean"):
            fired_by = {v for t in named if t.field == name and t.op in ("is", "one_of")
                        for v in (t.value if isinstance(t.value, tuple) else (t.value,))}
            choices = [v for v in (field.values or (False, True)) if v not in fired_by]
            if choices:
                benign[field.report_field] = st.sampled_from(choices)
            continue
        tests = [t for t in deciding if t.field == name]
        if field.kind not in ("number", "integer") or field.minimum is None \
                or field.maximum is None:
            continue  # free text, or an unbounded number: no benign range to draw from
        limit = min((t.value for t in tests if t.op == "at_least"
                     and isinstance(t.value, Fraction)), default=None)
        if name == "temperature_c":
            benign[field.report_field] = _temperatures(field.minimum, field.maximum, limit)
        elif limit is None or limit > field.minimum:
            high = field.maximum if limit is None else math.ceil(limit) - 1
            benign[field.report_field] = st.integers(int(field.minimum), int(high))
    return benign


def _deciding_tests(condition: Condition) -> list[FieldTest]:
    """The field tests that decide ``condition`` by their field alone."""
    if isinstance(condition, FieldTest):
        return [condition]
    if isinstance(condition, AnyOf):
        return [test for part in condition.parts for test in _deciding_tests(part)]
    tests = list(field_tests(condition))
    return tests if len({t.field for t in tests}) == 1 else []


def _temperatures(low_c: Fraction, high_c: Fraction,
                  below_c: Fraction | None) -> st.SearchStrategy[Temperature]:
    """Readings in °C or °F, in hundredths, within ``[low_c, high_c]`` and below ``below_c``."""
    def hundredths(low: Fraction, high: Fraction, below: Fraction | None) -> st.SearchStrategy[
            Fraction]:
        top = Fraction(math.floor(high * 100), 100)
        if below is not None:
            top = min(top, Fraction(math.ceil(below * 100) - 1, 100))
        return _decimal_steps(Fraction(math.ceil(low * 100), 100), top, _CENT)

    below_f = None if below_c is None else _fahrenheit(below_c)
    return st.one_of(
        hundredths(low_c, high_c, below_c).map(
            lambda v: Temperature(value=_float(v), unit=TemperatureUnit.CELSIUS)),
        hundredths(_fahrenheit(low_c), _fahrenheit(high_c), below_f).map(
            lambda v: Temperature(value=_float(v), unit=TemperatureUnit.FAHRENHEIT)),
    )


def _mostly_benign(pack: RulePack, wild: int) -> st.SearchStrategy[dict[str, Any]]:
    """Benign report values, except that up to ``wild`` fields are drawn from all their
    valid values (so warning signs turn up now and then); any field may be unanswered."""
    anything = _any_values(pack)
    benign = _benign_values(pack)
    names = sorted(benign)
    hours = st.one_of(_decimal_steps(Fraction(0), Fraction(240), _CENT).map(_float), _hours(pack))

    def values(chosen: frozenset[str]) -> st.SearchStrategy[dict[str, Any]]:
        optional = {name: anything[name] if name in chosen else benign[name] for name in names}
        return st.fixed_dictionaries({"hours_since_procedure": hours}, optional=optional)

    return st.frozensets(st.sampled_from(names), max_size=wild).flatmap(values)


@dataclass(frozen=True)
class _Want:
    """What a rule needs of one fact: present or absent, a range, allowed values."""

    present: bool | None = None
    low: Fraction | None = None
    high: Fraction | None = None
    allowed: frozenset[Any] | None = None

    def add(self, test: FieldTest) -> _Want:
        if test.op == "missing":
            present = not test.value
            return replace(self, present=present)
        want = replace(self, present=True)
        if test.op == "at_least":
            assert isinstance(test.value, Fraction)
            low = test.value if want.low is None else max(want.low, test.value)
            return replace(want, low=low)
        if test.op == "below":
            assert isinstance(test.value, Fraction)
            high = test.value if want.high is None else min(want.high, test.value)
            return replace(want, high=high)
        values = frozenset(test.value if isinstance(test.value, tuple) else (test.value,))
        allowed = values if want.allowed is None else want.allowed & values
        return replace(want, allowed=allowed)

    def possible(self) -> bool:
        if self.present is False:
            return self.low is None and self.high is None and self.allowed is None
        if self.allowed is not None and not self.allowed:
            return False
        return self.low is None or self.high is None or self.low < self.high


def _conflicting(wants: Mapping[str, _Want], test: FieldTest) -> bool:
    before = wants.get(test.field, _Want())
    after = before.add(test)
    changed = before.present is not None and before.present != after.present
    return changed or not after.possible()


@st.composite
def _satisfying(draw: st.DrawFn, condition: Condition, wants: dict[str, _Want]) -> None:
    """Add to ``wants`` what makes ``condition`` hold, choosing a branch of each ``any``."""
    if isinstance(condition, FieldTest):
        assume(not _conflicting(wants, condition))
        wants[condition.field] = wants.get(condition.field, _Want()).add(condition)
    elif isinstance(condition, AllOf):
        for part in condition.parts:
            draw(_satisfying(part, wants))
    else:
        assert isinstance(condition, AnyOf)
        draw(_satisfying(draw(st.sampled_from(condition.parts)), wants))


def _number_in(draw: st.DrawFn, field: FactField, want: _Want, step: Fraction) -> Fraction:
    """A number satisfying ``want``: its lower bound, just below its upper, or between."""
    low = want.low if want.low is not None else field.minimum or Fraction(0)
    if field.name == "temperature_c":
        low = max(low, _MIN_C)
    top = field.maximum if field.maximum is not None else (
        _MAX_C if field.name == "temperature_c" else _MAX_HOURS)
    high = min(want.high, top + step) if want.high is not None else top + step
    candidates = [low] if low < high else []
    below = high - step
    if low <= below:
        candidates.append(below)
    span = int((high - low) / step) - 1
    if span > 0:
        candidates.append(low + draw(st.integers(0, span)) * step)
    assume(candidates)
    return draw(st.sampled_from(candidates))


@st.composite
def _trigger(draw: st.DrawFn, rules: tuple[RuleSpec, ...], pack: RulePack,
             benign: Mapping[str, st.SearchStrategy[Any]],
             hours: st.SearchStrategy[float]) -> dict[str, Any]:
    """Report values that satisfy the conditions of the given rules together."""
    wants: dict[str, _Want] = {}
    pending = list(rules)
    while pending:
        rule = pending.pop()
        if rule.when is not None:
            draw(_satisfying(rule.when, wants))
            continue
        assert rule.when_findings is not None  # an escalation: satisfy enough of its level
        count = rule.when_findings
        feeders = [r for r in pack.rules if r.level is count.level]
        assume(len(feeders) >= count.at_least)
        pending.extend(draw(st.lists(st.sampled_from(feeders), min_size=count.at_least,
                                     max_size=count.at_least, unique_by=lambda r: r.id)))
    values: dict[str, Any] = {}
    for name, want in wants.items():
        field = FACT_FIELDS[name]
        key = field.report_field
        if want.present is False:
            values[key] = None
        elif want.allowed is not None:
            values[key] = draw(st.sampled_from(sorted(want.allowed, key=repr)))
        elif field.kind == "text":
            values[key] = draw(concern_texts())
        elif want.low is None and want.high is None:
            values[key] = draw(benign.get(key, hours))
        elif name == "temperature_c":
            unit = draw(st.sampled_from(list(TemperatureUnit)))
            value = _number_in(draw, field, want, _CENT)
            values[key] = _reading(value, unit)
        elif field.kind == "integer":
            values[key] = int(_number_in(draw, field, want, Fraction(1)))
        else:
            values[key] = _float(_number_in(draw, field, want, _CENT))
    return values


def _merged(base: dict[str, Any], trigger: dict[str, Any]) -> SymptomReport:
    values = {**base, **trigger}
    return SymptomReport.model_validate({k: v for k, v in values.items() if v is not None})


def reports_at_level(
    level: Urgency | str, engine: TriageEngine | None = None
) -> st.SearchStrategy[SymptomReport]:
    """Valid reports that ``engine`` (default: the packaged rules) places at exactly ``level``.

    Each is a mostly benign report, with the conditions of one rule of that level (or,
    for an escalation rule, of enough rules of the level it counts) made true; warning
    signs in the rest of the report are drawn rarely. Every candidate is triaged by the
    engine and kept only at ``level``, so the guarantee holds for any engine; with a
    pack very different from the packaged one, generation may just be slower.
    """
    target = Urgency(level)
    chosen = engine if engine is not None else _engine()
    pack = chosen.pack
    if target is Urgency.SELF_CARE:
        candidates = _mostly_benign(pack, wild=1).map(lambda base: _merged(base, {}))
    else:
        rules = tuple(r for r in pack.rules if r.level is target)
        if not rules:
            raise ValueError(f"no rule of pack {pack.name!r} has level {target.value}")
        benign, hours = _benign_values(pack), _hours(pack)
        trigger = st.sampled_from(rules).flatmap(
            lambda rule: _trigger((rule,), pack, benign, hours))
        candidates = st.builds(_merged, _mostly_benign(pack, wild=2), trigger)
    return candidates.filter(lambda report: chosen.triage(report).level is target)


def _engine() -> TriageEngine:
    return default_engine()
