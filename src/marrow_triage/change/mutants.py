"""Mutants of a rule pack: each rule made less safe in one small way, to prove tests notice.

For every rule above self_care: its level one step lower. For every threshold of every
rule: moved one step (1 for whole-number facts, 0.01 otherwise) the unsafe way: a warning
rule then fires for fewer reports (``at_least`` up, ``below`` down), a self_care rule for
more (its reassurance reaches reports it should not). Escalations count one more finding;
the history settings need a higher temperature and a shorter gap. The explanation's
statement of a moved threshold moves with it, so the mutant is a valid, consistent pack
that a reviewer could have written: only behavioural tests can tell it from the original.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from marrow_triage.models import Urgency
from marrow_triage.pack.facts import TIMELINE_FACT_FIELDS
from marrow_triage.units import decimal_of, format_number

__all__ = ["Mutant", "pack_mutants"]

_LOWER = {Urgency.EMERGENCY: Urgency.URGENT, Urgency.URGENT: Urgency.SOON,
          Urgency.SOON: Urgency.SELF_CARE}
_STEP = Fraction(1, 100)

Edit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Mutant:
    """One unsafe edit of one rule (or of the history settings) of a pack."""

    id: str
    """E.g. ``fever: level urgent → soon`` or ``fever: temperature_c at_least 38.3 → 38.31``."""
    rule_id: str
    file: str
    _edit: Edit

    def write(self, source: Path, target: Path) -> Path:
        """A copy of the pack in ``source`` with this mutation, at ``target``."""
        # English only: a mutant rewrites English texts, which its translations would then
        # no longer match; the behaviour under test is the same in every locale.
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("locales"))
        path = target / self.file
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        self._edit(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
                        encoding="utf-8")
        return target


def pack_mutants(directory: str | Path) -> list[Mutant]:
    """Every mutant of the pack in ``directory``, in file and rule order."""
    root = Path(directory)
    mutants: list[Mutant] = []
    meta = yaml.safe_load((root / "pack.yaml").read_text(encoding="utf-8")) or {}
    parameters = {name: spec["value"] for name, spec in (meta.get("parameters") or {}).items()
                  if isinstance(spec, dict) and "value" in spec}
    for path in sorted(root.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if path.name == "pack.yaml":
            mutants += _history_mutants(data)
            continue
        for section in ("rules", "timeline_rules"):
            for index, rule in enumerate(data.get(section) or []):
                mutants += _rule_mutants(path.name, section, index, rule, parameters)
    return mutants


def _rule_mutants(file: str, section: str, index: int, rule: dict[str, Any],
                  parameters: dict[str, float | int]) -> list[Mutant]:
    rule_id = str(rule.get("id"))
    level = Urgency(rule["level"])
    out = []

    def on_rule(change: Callable[[dict[str, Any]], None]) -> Edit:
        return lambda data: change(data[section][index])

    if level in _LOWER:
        lower = _LOWER[level]

        def set_level(r: dict[str, Any], lower: Urgency = lower) -> None:
            r["level"] = lower.value
        out.append(Mutant(f"{rule_id}: level {level} → {lower}", rule_id, file,
                          on_rule(set_level)))
    unsafe_up = level is not Urgency.SELF_CARE  # a warning rule is less safe firing less
    if "when_findings" in rule:
        count = int(rule["when_findings"]["at_least"])

        def more_findings(r: dict[str, Any], count: int = count) -> None:
            r["when_findings"]["at_least"] = count + 1
            r["explanation"] = _replace_number(r["explanation"], Fraction(count),
                                               Fraction(count + 1))
        out.append(Mutant(f"{rule_id}: findings at_least {count} → {count + 1}", rule_id,
                          file, on_rule(more_findings)))
    found = list(_thresholds(rule.get("when"), parameters))
    for path, fact, op, value, parameter in found:
        shared = sum(Fraction(decimal_of(v)) == Fraction(decimal_of(value))
                     for *_, v, _ in found) > 1
        step = Fraction(1) if TIMELINE_FACT_FIELDS[fact].kind == "integer" else _STEP
        old = Fraction(decimal_of(value))
        new = old + step if (op == "at_least") == unsafe_up else old - step

        def move(r: dict[str, Any], path: tuple[Any, ...] = path, op: str = op,
                 old: Fraction = old, new: Fraction = new, near: str | None =
                 f"{{{fact}}}" if shared else None, parameter: str | None = parameter) -> None:
            # A threshold given as a pack parameter ($name) is moved for this rule alone:
            # the rule gets the moved number, and its explanation shows it for {name}.
            _at(r["when"], path)[op] = _yaml_number(new)
            text = r["explanation"]
            if parameter is not None:
                text = text.replace(f"{{{parameter}}}", format_number(new, 6))
            r["explanation"] = _replace_number(text, old, new, near)
        out.append(Mutant(f"{rule_id}: {fact} {op} {format_number(old, 6)} → "
                          f"{format_number(new, 6)}", rule_id, file, on_rule(move)))
    return out


def _history_mutants(data: dict[str, Any]) -> list[Mutant]:
    history = data.get("history")
    if not isinstance(history, dict):
        return []
    out = []
    # Fewer readings count as raised, and fewer readings join one run: both fire less.
    for key, sign in (("raised_temperature_c", 1), ("raised_run_max_gap_hours", -1)):
        if key not in history:
            continue
        old = Fraction(decimal_of(history[key]))
        new = old + sign * _STEP

        def move(d: dict[str, Any], key: str = key, new: Fraction = new) -> None:
            d["history"][key] = _yaml_number(new)
        out.append(Mutant(f"history: {key} {format_number(old, 6)} → {format_number(new, 6)}",
                          "history", "pack.yaml", move))
    return out


def _thresholds(condition: object, parameters: dict[str, float | int],
                path: tuple[Any, ...] = ()
                ) -> Iterator[tuple[tuple[Any, ...], str, str, float | int, str | None]]:
    """(path to the fact's tests, fact, op, value, parameter name or None) for each
    numeric threshold; a ``$name`` threshold takes the parameter's value."""
    if not isinstance(condition, dict):
        return
    for key, value in condition.items():
        if key in ("all", "any") and isinstance(value, list):
            for i, part in enumerate(value):
                yield from _thresholds(part, parameters, (*path, key, i))
        elif isinstance(value, dict) and key in TIMELINE_FACT_FIELDS:
            for op in ("at_least", "below"):
                number = value.get(op)
                if isinstance(number, str) and number.startswith("$") and \
                        number[1:] in parameters:
                    yield (*path, key), key, op, parameters[number[1:]], number[1:]
                elif isinstance(number, int | float) and not isinstance(number, bool):
                    yield (*path, key), key, op, number, None


def _at(condition: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        condition = condition[step]
    return condition


def _yaml_number(value: Fraction) -> int | float:
    if value.denominator == 1:
        return int(value)
    return float(Decimal(value.numerator) / Decimal(value.denominator))


def _replace_number(text: str, old: Fraction, new: Fraction, near: str | None = None) -> str:
    """``text`` with each statement of the number ``old`` (``38``, ``38.0``) made ``new``.

    When another threshold of the rule has the same value, only the statement nearest
    the ``near`` placeholder (the mutated fact's) changes, so the other stays stated.
    """
    shown = format_number(old, 6)
    whole, _, decimals = shown.partition(".")
    if decimals:
        pattern = rf"(?<![\d.]){re.escape(whole)}\.{decimals}0*(?![\d])"
    else:
        pattern = rf"(?<![\d.]){re.escape(whole)}(?:\.0+)?(?!\.?\d)"
    replacement = format_number(new, 6)
    anchor = text.find(near) if near is not None else -1
    matches = list(re.finditer(pattern, text))
    if anchor < 0 or not matches:
        return re.sub(pattern, replacement, text)
    closest = min(matches, key=lambda m: abs(m.start() - anchor))
    return text[:closest.start()] + replacement + text[closest.end():]
