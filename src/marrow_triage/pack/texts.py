"""Patient-facing texts: the pack's English wording, its translations, routes and parameters.

Every text a patient reads has a key: ``rules.<id>.<field>`` (title, explanation, advice,
reassurance) for rules and timeline rules, ``questions.<id>`` for questions,
``rules.<id>.also_tell``, ``levels.<level>.label|action``, ``summary.<name>``,
``watch_for.<name>``, ``timeline.<name>`` (how a timeline finding names earlier
check-ins), ``values.<name>`` (and ``values.<fact>.<value>`` for the words of an enum
value) and ``routes.<name>``. English is
the pack's own text (rule files and ``pack.yaml``); another locale is a file
``locales/<code>.yaml`` of the same shape keyed by those ids, and any key it leaves out
falls back to English.

Texts may use two kinds of constant placeholder, filled in when the pack is loaded:
``{<parameter>}`` shows a parameter's value and ``{<route>}`` a contact route
(``{care_team_24h}``). Explanations also show report facts (``{temperature_c}``), filled
in per report.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

from marrow_triage.errors import Problem
from marrow_triage.pack.conditions import suggest
from marrow_triage.pack.facts import FACT_FIELDS, TIMELINE_FACT_FIELDS
from marrow_triage.pack.templates import placeholders as plain_placeholders

__all__ = [
    "LOCALE",
    "RULE_TEXT_FIELDS",
    "TEMPLATE_PLACEHOLDERS",
    "TextValue",
    "english_table",
    "fill",
    "placeholders",
    "read_translation",
]

TextValue = str | tuple[str, ...]
LOCALE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")
RULE_TEXT_FIELDS = ("title", "explanation", "advice", "reassurance", "also_tell")
LIST_FIELDS = frozenset({"advice", "reassurance", "also_tell"})
TEMPLATE_PLACEHOLDERS: Mapping[str, frozenset[str]] = {
    "summary.warnings": frozenset({"level", "warnings", "action"}),
    "summary.more": frozenset({"warnings", "count"}),
    "summary.after_effects": frozenset({"level", "after_effects"}),
    "summary.nothing": frozenset({"level"}),
    "summary.questions": frozenset({"count"}),
    "values.hours": frozenset({"hours", "days"}),
    "values.hours_one_day": frozenset({"hours"}),
    "timeline.earlier_checkins": frozenset({"checkins"}),
    "timeline.checkin": frozenset({"time", "shows"}),
    "timeline.temperature": frozenset({"temperature"}),
    "timeline.bleeding": frozenset({"bleeding"}),
    "timeline.site_pain": frozenset({"site_pain"}),
}
"""Texts filled per result, with the placeholders each may use."""


def placeholders(text: str) -> set[str]:
    """The placeholder names in ``text``; ValueError for a malformed template or one
    that is not plain ``{name}`` placeholders only (see :mod:`.templates`)."""
    return set(plain_placeholders(text))


def is_template(key: str) -> bool:
    """True for texts filled per report or result (explanations, summary, value words)."""
    return key.endswith(".explanation") or key in TEMPLATE_PLACEHOLDERS


def fill(text: str, constants: Mapping[str, str], template: bool) -> str:
    """``text`` with the constant placeholders (parameters, routes) replaced.

    Other placeholders stay as they are when ``template`` is true (they are filled per
    report); literal braces are kept escaped in a template and unescaped otherwise. A
    malformed text comes back unchanged, for the checks to report.
    """
    out = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError:
        return text
    for literal, name, spec, conversion in parsed:
        out.append(literal.replace("{", "{{").replace("}", "}}") if template else literal)
        if name is None:
            continue
        if name in constants and not spec and not conversion:
            value = constants[name]
            out.append(value.replace("{", "{{").replace("}", "}}") if template else value)
        else:
            out.append("{" + name + (f"!{conversion}" if conversion else "")
                       + (f":{spec}" if spec else "") + "}")
    return "".join(out)


def english_table(meta: Mapping[str, Any],
                  items: Mapping[str, Mapping[str, tuple[str, Mapping[str, Any]]]]
                  ) -> dict[str, tuple[str, TextValue]]:
    """Every English text of a merged pack (as written, placeholders unfilled), by key,
    each with the label of the file it came from."""
    table: dict[str, tuple[str, TextValue]] = {}
    label = str(meta.get("__label__", "pack.yaml"))
    texts = meta.get("texts")
    if isinstance(texts, Mapping):
        for key, value in _flatten(texts, ""):
            table[key] = (label, value)
    routes = meta.get("routes")
    if isinstance(routes, Mapping):
        for name, value in routes.items():
            if isinstance(value, str):
                table[f"routes.{name}"] = (label, value)
    for field in FACT_FIELDS.values():
        for value in field.values:
            table[f"values.{field.name}.{value}"] = (label, value.replace("_", " "))
    for kind in ("rules", "timeline_rules"):
        for rule_id, (file, data) in items.get(kind, {}).items():
            for name in RULE_TEXT_FIELDS:
                text = data.get(name)
                if isinstance(text, str):
                    table[f"rules.{rule_id}.{name}"] = (file, text)
                elif isinstance(text, list | tuple) and all(isinstance(t, str) for t in text):
                    table[f"rules.{rule_id}.{name}"] = (file, tuple(text))
    for question_id, (file, data) in items.get("questions", {}).items():
        if isinstance(data.get("text"), str):
            table[f"questions.{question_id}"] = (file, data["text"])
    return table


def _flatten(data: Mapping[str, Any], prefix: str) -> list[tuple[str, TextValue]]:
    out: list[tuple[str, TextValue]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out += _flatten(value, f"{name}.")
        elif isinstance(value, str):
            out.append((name, value))
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out.append((name, tuple(value)))
        else:
            out.append((name, repr(value)))
    return out


def read_translation(data: Mapping[str, Any], locale: str, label: str,
                     english: Mapping[str, tuple[str, TextValue]],
                     problems: list[Problem], unused: list[Problem] | None = None
                     ) -> tuple[str, dict[str, TextValue]]:
    """A locale file's note and texts, by key, checked against the English texts.

    Texts of the wrong shape and placeholders that differ from the English text's are
    problems; keys left out are not (they fall back to English). A key no English text has
    (a typo, or a rule since removed) goes to ``unused`` when given, else to ``problems``:
    it is never shown, so it cannot mislead a patient, but ``rules check`` lists it.
    """
    known = ("locale", "note", "routes", "levels", "summary", "values", "watch_for",
             "timeline", "rules", "questions")
    for key in sorted(set(data) - set(known), key=str):
        problems.append(Problem.in_pack(label, None, str(key),
                                        f"unknown section{suggest(str(key), known)}"))
    if data.get("locale") != locale:
        problems.append(Problem.in_pack(label, None, "locale", f"must be {locale!r}, the "
                                        "file's name"))
    note = data.get("note")
    if not isinstance(note, str) or not note.strip():
        problems.append(Problem.in_pack(label, None, "note", "say who translated the texts "
                                        "and whether a clinical translator has reviewed them"))
        note = ""
    table: dict[str, TextValue] = {}
    for section in known[2:]:
        body = data.get(section)
        if body is None:
            continue
        if not isinstance(body, Mapping):
            problems.append(Problem.in_pack(label, None, section, "expected a mapping"))
            continue
        for key, value in _flatten(body, f"{section}."):
            table[key] = value
    for key, value in sorted(table.items()):
        rule_id = key.split(".")[1] if key.startswith(("rules.", "questions.")) else None
        where = key.split(".", 2)[-1] if rule_id else key
        if key not in english:
            (problems if unused is None else unused).append(Problem.in_pack(
                label, rule_id, where, f"no English text has this key"
                f"{suggest(key, tuple(english))}"))
            continue
        original = english[key][1]
        problem = _compare(original, value)
        if problem:
            # Named in both files: the English may be what changed (the translation is then
            # stale), or the translation may be wrong.
            problems.append(Problem.in_pack(label, rule_id, where, problem))
            problems.append(Problem.in_pack(english[key][0], rule_id, where,
                                            f"its {locale} text in {label} no longer matches: "
                                            f"{problem}"))
    return note, {k: v for k, v in table.items() if k in english}


def _compare(english: TextValue, translated: TextValue) -> str | None:
    """What is wrong with ``translated`` as a translation of ``english``, or None."""
    if isinstance(english, str) != isinstance(translated, str):
        return ("expected one text" if isinstance(english, str)
                else f"expected a list of {len(english)} texts, as in English")
    pairs = ([(english, translated)] if isinstance(english, str) and isinstance(translated, str)
             else list(zip(english, translated, strict=False)))
    if not isinstance(english, str) and len(english) != len(translated):
        return f"expected {len(english)} texts, as in English; got {len(translated)}"
    for index, (original, text) in enumerate(pairs):
        at = "" if isinstance(english, str) else f" (item {index + 1})"
        if not text.strip():
            return f"empty text{at}"
        try:
            mine, theirs = placeholders(original), placeholders(text)
        except ValueError as exc:
            return f"bad template{at}: {exc}"
        if mine != theirs:
            lost = ", ".join(f"{{{n}}}" for n in sorted(mine - theirs))
            extra = ", ".join(f"{{{n}}}" for n in sorted(theirs - mine))
            parts = ([f"missing {lost}"] if lost else []) + (
                [f"has {extra}, which English does not"] if extra else [])
            return f"placeholders differ from English{at}: {'; '.join(parts)}"
    return None


def allowed_placeholders(key: str, constants: Mapping[str, str]) -> frozenset[str]:
    """The placeholders a text with ``key`` may use, besides none at all."""
    names = set(constants)
    if key.endswith(".explanation"):
        names |= set(TIMELINE_FACT_FIELDS) | {"count", "findings"}
    names |= TEMPLATE_PLACEHOLDERS.get(key, frozenset())
    return frozenset(names)
