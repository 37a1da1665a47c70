"""Traceability: source sentence → the rules that encode it → the examples that pin each
threshold of each rule on each side (``docs/safety/traceability.md``).

:func:`build_trace` takes the pack, the text of the documents it cites (where held) and
worked examples (a test id, the facts of the judged report, the rules expected to fire).
For every numeric threshold of every rule it looks for an example where the rule fires
with the value on its firing side, and one where the value is just on the other side and
everything else the rule asks for holds, so that only that threshold stops it. Problems
are what a safety reviewer could not follow: a threshold without both examples, a rule
whose quote is not in its document, a warning sign of a cited section without a rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from marrow_triage.models import Urgency
from marrow_triage.pack.catalogue import condition_in_words, rule_condition_in_words
from marrow_triage.pack.conditions import AllOf, AnyOf, Condition, FieldTest, field_tests
from marrow_triage.pack.facts import TIMELINE_FACT_FIELDS, FactValue
from marrow_triage.pack.spec import RulePack, RuleSpec, TimelineRuleSpec
from marrow_triage.units import format_number

__all__ = ["Threshold", "Trace", "TracedExample", "build_trace", "document_sentences",
           "render_trace"]

AnyRule = RuleSpec | TimelineRuleSpec
_STEP = Fraction(1, 100)


@dataclass(frozen=True)
class TracedExample:
    """A worked example: its test id, the judged report's facts, the rules it expects."""

    test_id: str
    facts: Mapping[str, FactValue]
    rules: frozenset[str]


@dataclass
class Threshold:
    """One threshold of one rule and the examples on each side of it."""

    rule_id: str
    test: str
    """E.g. ``temperature_c at_least 38.3``."""
    firing: str | None = None
    """The example where the rule fires with the value on its firing side."""
    firing_value: str = ""
    other: str | None = None
    """The example where only this threshold stops the rule."""
    other_value: str = ""


@dataclass
class Trace:
    """The trace of a pack and what a reviewer could not follow in it."""

    sentences: list[tuple[str, str, list[str]]] = field(default_factory=list)
    """(document, sentence, ids of the rules that encode it), in document order."""
    thresholds: list[Threshold] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def document_sentences(text: str, section: str) -> list[tuple[str, int]]:
    """(sentence, bullet list number or 0) of one section of a document's text.

    A section runs from its heading to the next heading (a short line that is not a
    bullet and does not end with "." or ":", as tests/test_sources.py reads them);
    consecutive bullets (``•``) form one numbered list, each bullet a sentence.
    """
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == section)
    except StopIteration:
        return []
    out: list[tuple[str, int]] = []
    lists, in_list = 0, False
    for line in lines[start + 1:]:
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("•"):
            if not in_list:
                lists, in_list = lists + 1, True
            out.append((_collapse(stripped.lstrip("• ")), lists))
            continue
        in_list = False
        if len(stripped) < 90 and not stripped.endswith((".", ":")):
            break  # the next heading
        out += [(s, 0) for s in re.split(r"(?<=[.:?!])\s+", _collapse(stripped)) if s]
    return out


def _holds(condition: Condition, facts: Mapping[str, FactValue],
           forced: FieldTest | None = None) -> bool:
    """The condition on these facts, with ``forced`` taken to hold."""
    if isinstance(condition, FieldTest):
        if condition is forced:
            return True
        value = facts.get(condition.field)
        if condition.op == "missing":
            return (value is None) is condition.value
        if value is None:
            return False
        if condition.op == "at_least":
            return value >= condition.value  # type: ignore[operator]
        if condition.op == "below":
            return value < condition.value  # type: ignore[operator]
        if condition.op == "is":
            return value == condition.value
        return value in condition.value  # type: ignore[operator]
    if isinstance(condition, AllOf):
        return all(_holds(p, facts, forced) for p in condition.parts)
    assert isinstance(condition, AnyOf)
    return any(_holds(p, facts, forced) for p in condition.parts)


def _shown(value: FactValue) -> str:
    if isinstance(value, Fraction):
        return format_number(value, 4)
    return str(value)


def _threshold_examples(rule: AnyRule, test: FieldTest, condition: Condition,
                        examples: Sequence[TracedExample]) -> Threshold:
    assert isinstance(test.value, Fraction | int)
    limit = Fraction(test.value)
    entry = Threshold(rule.id, f"{test.field} {test.op} {format_number(limit, 6)}")
    # "Each side" means within one step of the threshold: a whole number for whole-number
    # facts, a hundredth otherwise (the precision of readings and hours).
    step = Fraction(1) if TIMELINE_FACT_FIELDS[test.field].kind == "integer" else _STEP
    firing: list[tuple[Fraction, str, str]] = []
    other: list[tuple[Fraction, str, str]] = []
    for example in examples:
        value = example.facts.get(test.field)
        if value is None or isinstance(value, bool | str):
            continue
        satisfied = _holds(test, example.facts)
        distance = abs(Fraction(value) - limit)
        if distance > step:
            continue
        if satisfied and rule.id in example.rules:
            firing.append((distance, example.test_id, _shown(value)))
        elif not satisfied and rule.id not in example.rules and \
                _holds(condition, example.facts, forced=test):
            other.append((distance, example.test_id, _shown(value)))
    if firing:
        _, entry.firing, entry.firing_value = min(firing)
    if other:
        _, entry.other, entry.other_value = min(other)
    return entry


def _escalation_examples(rule: RuleSpec, pack: RulePack,
                         examples: Sequence[TracedExample]) -> Threshold:
    assert rule.when_findings is not None
    level, least = rule.when_findings.level, rule.when_findings.at_least
    every: list[AnyRule] = [*pack.rules, *pack.timeline_rules]
    levels = {r.id: r.level for r in every
              if not (isinstance(r, RuleSpec) and r.is_escalation)}
    entry = Threshold(rule.id, f"findings at {level} at_least {least}")
    firing, other = [], []
    for example in examples:
        count = sum(1 for r in example.rules if levels.get(r) is level)
        if count >= least and rule.id in example.rules:
            firing.append((count - least, example.test_id, str(count)))
        elif 0 < count < least and rule.id not in example.rules:
            other.append((least - count, example.test_id, str(count)))
    if firing:
        _, entry.firing, entry.firing_value = min(firing)
    if other:
        _, entry.other, entry.other_value = min(other)
    return entry


def build_trace(pack: RulePack, texts: Mapping[str, str],
                examples: Sequence[TracedExample]) -> Trace:
    """The trace of ``pack``; ``texts`` maps document ids to their text, where held."""
    trace = Trace()
    rules: list[AnyRule] = [*pack.rules, *pack.timeline_rules]
    for rule in rules:
        if isinstance(rule, RuleSpec) and rule.when_findings is not None:
            trace.thresholds.append(_escalation_examples(rule, pack, examples))
            continue
        assert rule.when is not None
        for test in field_tests(rule.when):
            if test.op in ("at_least", "below"):
                trace.thresholds.append(_threshold_examples(rule, test, rule.when, examples))
    for entry in trace.thresholds:
        if entry.firing is None:
            trace.problems.append(f"rule {entry.rule_id}: no example where it fires with "
                                  f"{entry.test}, within one step of the threshold")
        if entry.other is None:
            trace.problems.append(f"rule {entry.rule_id}: no example just the other side of "
                                  f"{entry.test} (within one step, everything else it asks "
                                  "for holding) where it does not fire")
    by_quote: dict[tuple[str, str], list[str]] = {}
    for rule in sorted(rules, key=lambda r: r.id):
        by_quote.setdefault((rule.source.document, _collapse(rule.source.quote)), []).append(
            rule.id)
    for document in sorted({d for d, _ in by_quote}):
        text = texts.get(document)
        quotes = {q: ids for (d, q), ids in by_quote.items() if d == document}
        if text is None:
            trace.sentences += [(document, q, ids) for q, ids in sorted(quotes.items())]
            continue
        whole = _collapse(text)
        for quote, ids in sorted(quotes.items()):
            if quote not in whole:
                trace.problems.append(f"rules {', '.join(ids)} cite {quote!r}, which "
                                      f"{document} does not contain")
        warning = {i for r in rules if r.level > Urgency.SELF_CARE for i in [r.id]}
        sections = sorted({r.source.section for r in rules if r.source.document == document})
        seen: set[str] = set()
        for section in sections:
            found = [(sentence, number, sorted({i for q, q_ids in quotes.items()
                                                if q in sentence or sentence in q
                                                for i in q_ids}))
                     for sentence, number in document_sentences(text, section)]
            # A bullet list with a warning sign that a rule encodes is a list of warning
            # signs: each of its bullets needs a rule.
            warning_lists = {n for _, n, ids in found if n and set(ids) & warning}
            for sentence, number, ids in found:
                if sentence in seen:
                    continue
                seen.add(sentence)
                trace.sentences.append((document, sentence, ids))
                if number in warning_lists and not ids:
                    trace.problems.append(f"{document}, {section!r}: the warning sign "
                                          f"{sentence!r} has no rule")
    return trace


def render_trace(pack: RulePack, trace: Trace) -> str:
    """Markdown for ``docs/safety/traceability.md``; byte-identical for the same inputs."""
    every: list[AnyRule] = [*pack.rules, *pack.timeline_rules]
    rules: dict[str, AnyRule] = {r.id: r for r in every}
    lines = [
        f"# Traceability: {pack.name} {pack.version}",
        "",
        "Generated by `marrow-triage rules trace` from `rules/`, the source texts and the "
        "worked examples (tests/test_rules_examples.py, tests/timeline_examples.py); do "
        "not edit by hand. tests/test_traceability.py fails when it is stale, when a "
        "threshold lacks an example on either side, when a quote is not in its document, "
        "or when a warning sign of a cited section has no rule.",
        f"Pack SHA-256: `{pack.sha256}`.",
        "",
        "## Source sentences → rules",
        "",
    ]
    current = None
    for document, sentence, ids in trace.sentences:
        if document != current:
            current = document
            doc = pack.documents[document]
            if lines[-1] != "":
                lines.append("")
            lines += [f"### {doc.title} ({doc.publisher})", ""]
        encoded = ", ".join(f"`{i}` ({rules[i].level})" for i in ids) or "no rule"
        lines.append(f"- \"{sentence}\" → {encoded}")
    lines += ["", "## Rules → thresholds → examples on each side", ""]
    by_rule: dict[str, list[Threshold]] = {}
    for entry in trace.thresholds:
        by_rule.setdefault(entry.rule_id, []).append(entry)
    for rule in sorted(rules.values(), key=lambda r: (-r.level.rank, r.id)):
        when = rule_condition_in_words(rule) if isinstance(rule, RuleSpec) else \
            condition_in_words(rule.when)
        lines += [f"### `{rule.id}` ({rule.level})", "", f"When {when}.", ""]
        entries = by_rule.get(rule.id, [])
        if not entries:
            lines += ["No numeric threshold; its worked examples are in the test files "
                      "above.", ""]
            continue
        lines += ["| threshold | fires (value) | does not fire, only this threshold stops "
                  "it (value) |", "|---|---|---|"]
        for entry in entries:
            fires = f"`{entry.firing}` ({entry.firing_value})" if entry.firing else "**none**"
            stops = f"`{entry.other}` ({entry.other_value})" if entry.other else "**none**"
            lines.append(f"| {entry.test} | {fires} | {stops} |")
        lines.append("")
    if trace.problems:
        lines += ["## Problems", "", *(f"- {p}" for p in trace.problems), ""]
    return "\n".join(lines).rstrip("\n") + "\n"

