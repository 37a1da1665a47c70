"""The rule catalogue (``docs/rules.md``): every rule of a pack in words, generated."""

from __future__ import annotations

from collections.abc import Iterable

from marrow_triage.models import Urgency
from marrow_triage.pack.conditions import AllOf, AnyOf, Condition, FieldTest
from marrow_triage.pack.facts import FACT_FIELDS, HISTORY_FACT_FIELDS, FactField
from marrow_triage.pack.spec import RulePack, RuleSpec, TimelineRuleSpec
from marrow_triage.pack.versions import level_changes
from marrow_triage.units import format_number

__all__ = ["condition_in_words", "render_catalogue", "rule_condition_in_words"]

_OPS = {"at_least": "is at least", "below": "is below", "is": "is", "one_of": "is one of"}


def condition_in_words(condition: Condition) -> str:
    """A condition as a sentence fragment, e.g. ``temperature_c is at least 38.3``."""
    if isinstance(condition, FieldTest):
        if condition.op == "missing":
            return f"{condition.field} is {'not ' if not condition.value else ''}missing"
        value = condition.value
        if isinstance(value, tuple):
            shown = ", ".join(str(v) for v in value)
        elif isinstance(value, bool):
            shown = "true" if value else "false"
        elif isinstance(value, str):
            shown = value
        else:
            shown = format_number(value, 6)  # type: ignore[arg-type]
            if condition.parameter is not None:
                shown += f" (parameter `{condition.parameter}`)"
        return f"{condition.field} {_OPS[condition.op]} {shown}"
    joiner = " and " if isinstance(condition, AllOf) else " or "
    parts = [condition_in_words(p) for p in condition.parts]
    text = joiner.join(parts)
    return f"({text})" if isinstance(condition, AnyOf) and len(parts) > 1 else text


def rule_condition_in_words(rule: RuleSpec) -> str:
    """When a rule fires, in words: its condition, or the findings an escalation counts."""
    if rule.when_findings is not None:
        f = rule.when_findings
        return f"{f.at_least} or more findings at level {f.level.value}"
    assert rule.when is not None
    return condition_in_words(rule.when)


def _rule_entry(pack: RulePack, rule: RuleSpec | TimelineRuleSpec, when: str,
                reassurance: tuple[str, ...]) -> list[str]:
    source = pack.source(rule)
    quote_kind = "quoted" if source.verbatim else "paraphrased"
    log = pack.overlays
    marks = []
    if rule.id in log.added:
        marks.append(f"- **Added by overlay** {log.added[rule.id]}")
    marks += [f"- **Changed by overlay** {what}" for what in log.changed.get(f"item:{rule.id}", ())]
    marks += [f"- **Acknowledged downgrade** {why}" for why in log.acknowledged.get(rule.id, ())]
    return [
        f"### `{rule.id}`: {rule.title}",
        "",
        *marks,
        f"- **Level**: {rule.level.value}",
        f"- **When**: {when}",
        f"- **Explanation**: {rule.explanation}",
        *(f"- **Advice**: {a}" for a in rule.advice),
        *(f"- **Reassurance**: {r}" for r in reassurance),
        *(f"- **Under a higher urgent or emergency finding**: {t}" for t in rule.also_tell),
        f"- **Source** ({quote_kind}): {source.publisher}, *{source.title}*, "
        f"section \"{source.section}\": \"{source.quote}\"",
        *([f"- **Notes**: {rule.notes}"] if rule.notes else []),
        "",
    ]


def _routes_and_parameters(pack: RulePack) -> list[str]:
    changed = pack.overlays.changed
    lines = ["", "## Contact routes", "",
             "Texts name these as `{name}`; a site overlay fills in its own numbers "
             "(docs/overlays.md).", ""]
    for name, text in pack.routes.items():
        mark = "".join(f" *(overlay {what})*" for what in changed.get(f"route:{name}", ()))
        lines.append(f"- `{name}`: {text}{mark}")
    if pack.parameters:
        lines += ["", "## Parameters", "",
                  "Named values that conditions use as `$name` and texts show as `{name}` "
                  "(`parameters:` in pack.yaml).", ""]
        for name, parameter in pack.parameters.items():
            doc = pack.documents[parameter.source.document]
            kind = "quoted" if parameter.source.verbatim else "paraphrased"
            mark = "".join(f" *(overlay {what})*" for what in changed.get(f"parameter:{name}", ()))
            lines += [
                f"- `{name}` = {format_number(parameter.value, 6)}: {parameter.description}"
                f"{mark}",
                f"  Source ({kind}): {doc.publisher}, *{doc.title}*, section "
                f"\"{parameter.source.section}\": \"{parameter.source.quote}\"",
                *([f"  Notes: {parameter.notes}"] if parameter.notes else []),
            ]
    return lines


def _languages(pack: RulePack) -> list[str]:
    lines = ["", "## Languages", "",
             "English is the pack's own text. Texts missing in another locale are shown in "
             "English and listed in each result's `fallbacks`.", ""]
    for code, translation in pack.translations.items():
        missing = len(translation.missing)
        lines.append(f"- `{code}`: {missing} text(s) not translated. {translation.note}")
    if not pack.translations:
        lines.append("- English only.")
    return lines


def _version_history(pack: RulePack) -> list[str]:
    """The recorded versions, newest first, each with its level changes."""
    if not pack.changes:
        return []
    lines = ["", "## Version history", "",
             "Recorded in pack.yaml (`changes:`) by `marrow-triage rules release --record`; "
             "`marrow-triage rules check` fails when the content differs from the hash "
             "recorded for its version, or a version lowers a level without a new major "
             "version.", ""]
    previous: dict[str, Urgency] = {}
    entries = []
    for record in pack.changes:
        changes = level_changes(previous, record.levels, record.replaced) if previous else []
        entry = [f"### {record.version}", "", f"- **SHA-256**: `{record.sha256}`",
                 f"- **Rules**: {len(record.levels)}"]
        if record.note:
            entry.append(f"- **Note**: {record.note}")
        if previous:
            entry.append("- **Level changes**: " + ("; ".join(map(str, changes)) or "none"))
        entries.append([*entry, ""])
        previous = dict(record.levels)
    for entry in reversed(entries):
        lines += entry
    return lines[:-1]


def render_catalogue(pack: RulePack) -> str:
    """Markdown for ``docs/rules.md``; byte-identical for the same pack."""
    lines = [
        *_header(pack),
        *_levels(pack),
        *_routes_and_parameters(pack),
        *_rules_section(pack),
        *_timeline_rules_section(pack),
        *_disabled_section(pack),
        *_questions_section(pack),
        *_languages(pack),
        *_version_history(pack),
        *_facts_section(pack),
    ]
    return "\n".join(lines) + "\n"


def _header(pack: RulePack) -> list[str]:
    lines = [
        f"# Rule catalogue: {pack.name} {pack.version}",
        "",
        "Generated by `marrow-triage rules docs` from `rules/`; do not edit by hand.",
        f"Pack SHA-256: `{pack.sha256}`.",
        "",
        pack.description,
        "",
    ]
    if len(pack.chain) > 1:
        lines += ["## Overlay chain", "",
                  "Each overlay changes the pack before it; entries below marked **Changed by "
                  "overlay**, **Added by overlay** or **Acknowledged downgrade** say what it "
                  "changed.", ""]
        lines += [f"{n}. {ref.name} {ref.version} (sha256 `{ref.sha256}`)"
                  for n, ref in enumerate(pack.chain, 1)]
        lines.append("")
    return lines


def _levels(pack: RulePack) -> list[str]:
    lines = ["## Levels", ""]
    for level in sorted(Urgency, reverse=True):
        label = pack.texts.get(f"levels.{level.value}.label", level.label)
        action = pack.texts.get(f"levels.{level.value}.action", level.action)
        mark = "".join(f" *(changed by overlay {what})*"
                       for key in (f"text:levels.{level.value}.label",
                                   f"text:levels.{level.value}.action")
                       for what in pack.overlays.changed.get(key, ()))
        lines.append(f"- **{level.value}** ({label}): {action}{mark}")
    if pack.watch_for:
        lines += ["", "Every self_care result also lists the warning signs to watch for "
                  "(`texts.watch_for`):", ""]
        lines += [f"- {pack.texts[f'watch_for.{name}']}" for name in pack.watch_for]
    return lines


def _rules_section(pack: RulePack) -> list[str]:
    lines = ["", "## Rules", ""]
    for rule in sorted(pack.rules, key=lambda r: (-r.level.rank, r.id)):
        lines += _rule_entry(pack, rule, rule_condition_in_words(rule), rule.reassurance)
    return lines


def _timeline_rules_section(pack: RulePack) -> list[str]:
    if not pack.timeline_rules:
        return []
    lines = [
        "## Timeline rules",
        "",
        "Tested at each check-in of an episode against the check-in's facts and the "
        "history facts below (see docs/timeline.md).",
        "",
    ]
    for rule in sorted(pack.timeline_rules, key=lambda r: (-r.level.rank, r.id)):
        lines += _rule_entry(pack, rule, condition_in_words(rule.when), ())
    return lines


def _disabled_section(pack: RulePack) -> list[str]:
    if not pack.overlays.disabled:
        return []
    lines = ["## Rules disabled by an overlay", ""]
    for off in pack.overlays.disabled:
        ack = (f" Acknowledged downgrade: {off.acknowledge_downgrade}"
               if off.acknowledge_downgrade else "")
        lines.append(f"- `{off.id}` ({off.title}, {off.level.value}), by {off.overlay}: "
                     f"{off.reason}.{ack}")
    return [*lines, ""]


def _questions_section(pack: RulePack) -> list[str]:
    lines = ["## Questions asked when an answer is missing", "",
             "A question is asked when its field is unanswered and some answer to it could "
             "raise the level of the result (worked out from the rules); questions are "
             "listed by how far the answer could raise the level.", ""]
    for q in pack.questions:
        when = f" when {condition_in_words(q.when)}" if q.when is not None else ""
        marks = "".join(f" *(changed by overlay {what})*"
                        for what in pack.overlays.changed.get(f"item:{q.id}", ()))
        if q.id in pack.overlays.added:
            marks += f" *(added by overlay {pack.overlays.added[q.id]})*"
        lines.append(f"- `{q.id}` (`{q.field}` missing{when}): {q.text}{marks}")
    return lines


def _facts_section(pack: RulePack) -> list[str]:
    lines = ["", "## Facts rules can test", "", *_fact_lines(FACT_FIELDS.values())]
    if not pack.timeline_rules:
        return lines
    lines += ["", "## History facts timeline rules can test", ""]
    if pack.history is not None:
        h = pack.history
        lines += [
            f"Raised temperature: at or above {format_number(h.raised_temperature_c, 6)} °C;"
            f" one run allows at most {format_number(h.raised_run_max_gap_hours, 6)} hours"
            f" between readings (`history:` in pack.yaml; source: {h.source.document},"
            f" \"{h.source.quote}\").",
            "",
            f"Check-in times: at most {format_number(h.checkin_ahead_of_clock_minutes, 6)}"
            " minutes past the recorder's clock, and at most"
            f" {format_number(h.checkin_max_days_from_episode, 6)} days from the"
            " episode's nearest other check-in; others are refused.",
            "",
        ]
    return lines + _fact_lines(HISTORY_FACT_FIELDS.values())


def _fact_lines(fields: Iterable[FactField]) -> list[str]:
    lines = []
    for field in fields:
        values = f" ({', '.join(field.values)})" if field.values else ""
        lines.append(f"- `{field.name}`: {field.kind}{values}. {field.description}")
    return lines
