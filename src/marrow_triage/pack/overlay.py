"""Overlays: a site's small pack that changes another pack without copying it.

An overlay's ``pack.yaml`` says which pack it ``extends`` (by name, within a version range)
and sets only what it changes: parameters, contact routes, wording outside the rules and
new documents. Its other files hold ``rules:`` / ``questions:`` / ``timeline_rules:`` it
adds, ``changes:`` to rules and questions of the extended pack (by id, only the fields
given), and ``disable:`` entries (id and a required ``reason``); ``locales/<code>.yaml``
adds or replaces translations.

The merge works on the packs' content as written (before validation), so the merged pack
is then validated and checked exactly like a full pack, with each problem naming the
file that last wrote the rule at fault. A change that makes the pack less cautious (a
lower level, a threshold moved the unsafe way, an urgent or emergency rule disabled) is
refused unless its entry says why in ``acknowledge_downgrade``.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ValidationError

from marrow_triage.errors import ConditionError, Problem
from marrow_triage.models import PackRef, Urgency
from marrow_triage.pack.conditions import parse_condition, suggest
from marrow_triage.pack.facts import TIMELINE_FACT_FIELDS
from marrow_triage.pack.spec import (
    DisabledRule,
    DisableSpec,
    OverlayMeta,
    ParameterOverride,
    RulePack,
)
from marrow_triage.pack.texts import LOCALE, TextValue, english_table, read_translation
from marrow_triage.units import decimal_of, format_number

__all__ = ["ITEM_KINDS", "Layer", "Merged", "check_extends", "content_digest", "merge_overlay"]

ITEM_KINDS = ("rules", "questions", "timeline_rules")
OVERLAY_SECTIONS = (*ITEM_KINDS, "changes", "disable")
UNCHANGEABLE = frozenset({"id", "when", "when_findings", "field"})
"""Fields a change may not replace: a rule's identity and what it tests. Thresholds are
parameters; a different test is a new rule (and the old one disabled, with a reason)."""
Entry = tuple[str, dict[str, Any]]
"""The label of the file an entry came from, and its content as written."""


@dataclass
class Layer:
    """One pack directory as read: a full pack or an overlay, not yet validated."""

    root: Path
    meta: dict[str, Any]
    meta_label: str
    items: dict[str, dict[str, Entry]] = field(
        default_factory=lambda: {kind: {} for kind in ITEM_KINDS})
    changes: dict[str, Entry] = field(default_factory=dict)
    disables: dict[str, Entry] = field(default_factory=dict)
    translations: dict[str, Entry] = field(default_factory=dict)

    @property
    def is_overlay(self) -> bool:
        """True when ``pack.yaml`` says which pack this one extends."""
        return "extends" in self.meta


@dataclass
class Merged:
    """A pack's content as written, after every overlay of its chain: what gets validated."""

    meta: dict[str, Any]
    labels: dict[str, str]
    """Which file set each part of ``pack.yaml`` (``parameters.fever_c``, ``routes.x``)."""
    items: dict[str, dict[str, Entry]]
    translations: dict[str, dict[str, TextValue]]
    """Per locale, the texts by key, already checked against the English."""
    notes: dict[str, str]
    translation_labels: dict[str, str]
    unused: dict[str, list[Problem]] = field(default_factory=dict)
    """Per locale, keys of its file that no English text has."""
    changed: dict[str, list[str]] = field(default_factory=dict)
    added: dict[str, str] = field(default_factory=dict)
    disabled: list[DisabledRule] = field(default_factory=list)
    acknowledged: dict[str, list[str]] = field(default_factory=dict)
    chain: list[PackRef] = field(default_factory=list)

    def label_of(self, key: str) -> str:
        """The file that set ``key`` of pack.yaml (or a part of it)."""
        while key:
            if key in self.labels:
                return self.labels[key]
            key = key.rpartition(".")[0]
        return self.labels[""]


def content_digest(layer: Layer) -> str:
    """SHA-256 of an overlay's own content, whatever its file names and entry order."""
    canonical = {
        # Its version history records this hash, so it cannot be part of it.
        "meta": {k: v for k, v in layer.meta.items() if k != "changes"},
        "items": {kind: dict(sorted((k, v[1]) for k, v in entries.items()))
                  for kind, entries in layer.items.items()},
        "changes": dict(sorted((k, v[1]) for k, v in layer.changes.items())),
        "disable": dict(sorted((k, v[1]) for k, v in layer.disables.items())),
        "locales": dict(sorted((k, v[1]) for k, v in layer.translations.items())),
    }
    text = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def pack_yaml_problems(exc: ValidationError, model: type[BaseModel],
                       label_of: Callable[[str], str]) -> list[Problem]:
    """One problem per error in a ``pack.yaml``, unknown fields with a "did you mean";
    ``label_of(where)`` names the file that gave the field at fault."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "pack.yaml"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field" + suggest(str(error["loc"][-1]), tuple(model.model_fields))
        problems.append(Problem.in_pack(label_of(where), None, where, message))
    return problems


def check_extends(layer: Layer, parent: RulePack, problems: list[Problem]) -> OverlayMeta | None:
    """The overlay's validated ``pack.yaml``, if the pack found is the one it extends."""
    try:
        meta = OverlayMeta.model_validate(layer.meta)
    except ValidationError as exc:
        problems += pack_yaml_problems(exc, OverlayMeta, lambda _where: layer.meta_label)
        return None
    found = f"{parent.name} {parent.version}"
    if meta.extends.pack != parent.name:
        problems.append(Problem.in_pack(layer.meta_label, None, "extends.pack",
                                        f"extends {meta.extends.pack!r}, but the pack found "
                                        f"is {found}; give extends.path or a base directory"))
        return None
    try:
        wanted = SpecifierSet(meta.extends.version)
    except InvalidSpecifier:
        problems.append(Problem.in_pack(layer.meta_label, None, "extends.version",
                                        f"{meta.extends.version!r} is not a version range; "
                                        "write e.g. \">=1.1,<2\""))
        return None
    try:
        version = Version(parent.version)
    except InvalidVersion:
        problems.append(Problem.in_pack(layer.meta_label, None, "extends.version",
                                        f"{found} has no comparable version"))
        return None
    if not wanted.contains(version, prereleases=True):
        problems.append(Problem.in_pack(layer.meta_label, None, "extends.version",
                                        f"needs {parent.name} {meta.extends.version}, but the "
                                        f"pack found is {found}"))
        return None
    return meta


def merge_overlay(parent: Merged, parent_pack: RulePack, layer: Layer, meta: OverlayMeta,
                  problems: list[Problem]) -> Merged:
    """``parent`` with ``layer``'s changes applied, each downgrade checked for its
    acknowledgement."""
    merged = copy.deepcopy(parent)
    merger = _Merger(merged, parent_pack, layer, meta, problems)
    merger.merge_meta()
    merger.merge_items()
    merger.check_parameters()
    merger.merge_translations(english_table(_labelled(parent), parent.items))
    merged.chain.append(PackRef(name=meta.name, version=meta.version,
                                sha256=content_digest(layer)))
    merged.labels[""] = layer.meta_label
    return merged


def _labelled(merged: Merged) -> dict[str, Any]:
    return {**merged.meta, "__label__": merged.labels[""]}


class _Merger:
    """Applies one overlay; records what it changed and every acknowledgement."""

    def __init__(self, merged: Merged, parent: RulePack, layer: Layer, meta: OverlayMeta,
                 problems: list[Problem]) -> None:
        self.merged = merged
        self.parent = parent
        self.layer = layer
        self.meta = meta
        self.problems = problems
        self.who = f"{meta.name} {meta.version}"
        self.old_parameters = {name: _number(p.get("value"))
                               for name, p in merged.meta.get("parameters", {}).items()}
        self.parameter_acks: dict[str, str | None] = {}

    def problem(self, label: str, rule_id: str | None, where: str, message: str) -> None:
        self.problems.append(Problem.in_pack(label, rule_id, where, message))

    def note(self, key: str, what: str) -> None:
        self.merged.changed.setdefault(key, []).append(f"{self.who}: {what}")

    def merge_meta(self) -> None:
        data, label = self.merged.meta, self.layer.meta_label
        data["name"], data["version"] = self.meta.name, self.meta.version
        # The base's version history is not the overlay's: the merged pack keeps the
        # overlay's own, whose hashes are of the overlay's content (content_digest).
        data["changes"] = [r.model_dump(mode="json", exclude_none=True)
                           for r in self.meta.changes]
        if self.meta.description:
            data["description"] = self.meta.description
        for doc_id, doc in self.meta.documents.items():
            if doc_id in data["documents"]:
                self.problem(label, None, f"documents.{doc_id}", f"already a document of "
                             f"{self.parent.name}; give a new document a new id")
                continue
            data["documents"][doc_id] = doc.model_dump(mode="json", exclude_none=True)
            self.merged.labels[f"documents.{doc_id}"] = label
        parameters = data.setdefault("parameters", {})
        for name, given in sorted(self.meta.parameters.items()):
            override = given if isinstance(given, ParameterOverride) else \
                ParameterOverride(value=given)
            entry = parameters.get(name)
            if entry is None:
                if override.description is None or override.source is None:
                    self.problem(label, None, f"parameters.{name}", "a new parameter needs a "
                                 f"description and a source{suggest(name, tuple(parameters))}")
                    continue
                entry = parameters[name] = {}
                self.note(f"parameter:{name}", "added")
            else:
                self.note(f"parameter:{name}", f"value {_shown(entry.get('value'))} -> "
                          f"{_shown(override.value)}")
            entry["value"] = override.value
            for key, value in override.model_dump(
                    mode="json", include={"description", "source", "notes"},
                    exclude_none=True).items():
                entry[key] = value
            self.merged.labels[f"parameters.{name}"] = label
            self.parameter_acks[name] = override.acknowledge_downgrade
        routes = data.setdefault("routes", {})
        for name, text in sorted(self.meta.routes.items()):
            before = routes.get(name)
            self.note(f"route:{name}", "added" if before is None else "filled")
            routes[name] = text
            self.merged.labels[f"routes.{name}"] = label
        if self.meta.texts:
            for key, value in _leaves(self.meta.texts, ""):
                target = data.setdefault("texts", {})
                *path, last = key.split(".")
                for part in path:
                    target = target.setdefault(part, {})
                    if not isinstance(target, dict):
                        self.problem(label, None, f"texts.{key}", "not a text of the pack")
                        break
                else:
                    target[last] = value
                    self.merged.labels[f"texts.{key}"] = label
                    self.note(f"text:{key}", "reworded")

    def merge_items(self) -> None:
        items = self.merged.items
        owner = {item_id: kind for kind in ITEM_KINDS for item_id in items[kind]}
        for kind in ITEM_KINDS:
            for item_id, (label, data) in sorted(self.layer.items[kind].items()):
                if item_id in owner:
                    self.problem(label, item_id, "id", f"already in {self.parent.name}; change "
                                 "it under `changes:` or disable it under `disable:`")
                    continue
                items[kind][item_id] = (label, data)
                self.merged.added[item_id] = self.who
        for item_id, (label, data) in sorted(self.layer.changes.items()):
            self._change(owner, item_id, label, data)
        for item_id, (label, data) in sorted(self.layer.disables.items()):
            self._disable(owner, item_id, label, data)

    def _change(self, owner: Mapping[str, str], item_id: str, label: str,
                data: dict[str, Any]) -> None:
        kind = owner.get(item_id)
        if kind is None:
            self.problem(label, item_id, "id", f"no rule or question {item_id!r} in "
                         f"{self.parent.name}{suggest(item_id, tuple(owner))}")
            return
        fields = {k: v for k, v in data.items() if k not in ("id", "acknowledge_downgrade")}
        ack = data.get("acknowledge_downgrade")
        if ack is not None and (not isinstance(ack, str) or not ack.strip()):
            self.problem(label, item_id, "acknowledge_downgrade", "give the reason as text")
            ack = None
        for name in sorted(set(fields) & UNCHANGEABLE):
            self.problem(label, item_id, name, "a change cannot replace what a rule tests: "
                         "move its thresholds into parameters, or disable it and add a rule")
        if not fields:
            self.problem(label, item_id, "changes", "says nothing to change")
        _, old = self.merged.items[kind][item_id]
        new = {**old, **{k: v for k, v in fields.items() if k not in UNCHANGEABLE}}
        self.merged.items[kind][item_id] = (label, new)
        if fields:
            self.note(f"item:{item_id}", "changed " + ", ".join(sorted(fields)))
        lowered = _lower(old.get("level"), new.get("level"))
        if lowered:
            self._guard(label, item_id, "level", ack,
                        f"lowers the level from {old.get('level')} to {new.get('level')}",
                        [item_id])
        elif ack is not None:
            self.problem(label, item_id, "acknowledge_downgrade",
                         "this change lowers no level; remove the acknowledgement")

    def _disable(self, owner: Mapping[str, str], item_id: str, label: str,
                 data: dict[str, Any]) -> None:
        try:
            spec = DisableSpec.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(p) for p in error["loc"]) or "disable"
                self.problem(label, item_id, where, error["msg"])
            return
        kind = owner.get(item_id)
        if kind is None:
            self.problem(label, item_id, "id", f"no rule or question {item_id!r} in "
                         f"{self.parent.name}{suggest(item_id, tuple(owner))}")
            return
        _, old = self.merged.items[kind].pop(item_id)
        level = _level(old.get("level")) or Urgency.SELF_CARE
        title = str(old.get("title") or old.get("text") or item_id)
        if level >= Urgency.URGENT:
            self._guard(label, item_id, "disable", spec.acknowledge_downgrade,
                        f"disables a rule at level {level.value}", [])
        elif spec.acknowledge_downgrade is not None:
            self.problem(label, item_id, "acknowledge_downgrade", f"a {level.value} rule needs "
                         "no acknowledgement to disable; remove it")
        self.merged.disabled.append(DisabledRule(
            id=item_id, title=title, level=level, overlay=self.who, reason=spec.reason,
            acknowledge_downgrade=spec.acknowledge_downgrade))
        self.note(f"item:{item_id}", f"disabled: {spec.reason}")

    def check_parameters(self) -> None:
        """A parameter moved the way that makes some warning rule fire less needs an
        acknowledgement; so does nothing else.

        A rule tested ``below $p`` is not made less safe by lowering ``p`` when a rule at
        the same level or higher tests the same fact ``at_least $p``: the readings that
        leave the first rule's range enter the second's (a borderline band below a fever
        threshold, say).
        """
        uses = _parameter_uses(self.merged.items)
        for name, ack in sorted(self.parameter_acks.items()):
            before = self.old_parameters.get(name)
            after = _number(self.merged.meta["parameters"].get(name, {}).get("value"))
            label = self.merged.labels.get(f"parameters.{name}", self.layer.meta_label)
            value = self.merged.meta["parameters"].get(name, {}).get("value")
            for item_id, op, _, fact in uses.get(name, ()):
                try:  # the new value must be one the fact can be tested against
                    parse_condition({fact: {op: value}}, fields=TIMELINE_FACT_FIELDS)
                except ConditionError as exc:
                    self.problem(label, item_id, f"parameters.{name}",
                                 f"{name} = {value!r} cannot be a threshold of {fact}: "
                                 f"{exc.message}")
            levels = [(op, fact, _level(_item_data(self.merged.items, item_id).get("level")))
                      for item_id, op, _, fact in uses.get(name, ())]
            unsafe = [(item_id, op) for item_id, op, warns, fact in uses.get(name, ()) if warns
                      and before is not None and after is not None and
                      ((op == "at_least" and after > before) or
                       (op == "below" and after < before and not _caught_above(
                           fact, _level(_item_data(self.merged.items, item_id).get("level")),
                           levels)))]
            if unsafe:
                rules = ", ".join(sorted({item_id for item_id, _ in unsafe}))
                way = "raises" if after is not None and before is not None and after > before \
                    else "lowers"
                self._guard(label, None, f"parameters.{name}", ack,
                            f"{way} {name} from {_shown(before)} to {_shown(after)}, so "
                            f"{rules} fire(s) less often",
                            sorted({use[0] for use in uses.get(name, ())}))
            elif ack is not None:
                self.problem(label, None, f"parameters.{name}.acknowledge_downgrade",
                             "this value makes no warning rule fire less; remove the "
                             "acknowledgement")

    def _guard(self, label: str, item_id: str | None, where: str, ack: str | None,
               what: str, affected: list[str]) -> None:
        if ack is None:
            self.problem(label, item_id, where, f"{what}: refused, since it could under-"
                         "triage; if this is the site's policy, say why in "
                         "acknowledge_downgrade: \"<reason>\" on this entry")
            return
        reason = f"{self.who}: {ack}"
        self.note(f"item:{item_id}" if item_id else f"parameter:{where.split('.')[-1]}",
                  f"acknowledged downgrade: {ack}")
        for rule_id in affected:
            self.merged.acknowledged.setdefault(rule_id, []).append(reason)

    def merge_translations(self, english_before: Mapping[str, tuple[str, TextValue]]) -> None:
        """Inherited translations of texts this overlay rewrote in English are dropped
        (they would say the old thing); the overlay's own locale files are merged over."""
        english_after = english_table(_labelled(self.merged), self.merged.items)
        rewritten = {key for key, (_, value) in english_after.items()
                     if key not in english_before or english_before[key][1] != value}
        for strings in self.merged.translations.values():
            for key in [k for k in strings if k in rewritten or k not in english_after]:
                del strings[key]
        for locale, (label, data) in sorted(self.layer.translations.items()):
            if not LOCALE.match(locale) or locale == "en":
                continue  # reported when the layer was read
            note, table = read_translation(data, locale, label, english_after, self.problems,
                                           self.merged.unused.setdefault(locale, []))
            self.merged.translations.setdefault(locale, {}).update(table)
            self.merged.notes[locale] = note
            self.merged.translation_labels[locale] = label


def _leaves(data: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        if isinstance(value, Mapping):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _parameter_uses(items: Mapping[str, Mapping[str, Entry]]
                    ) -> dict[str, list[tuple[str, str, bool, str]]]:
    """Per parameter: (item id, test, whether that item can raise the level, fact)."""
    uses: dict[str, list[tuple[str, str, bool, str]]] = {}
    for kind, entries in items.items():
        for item_id, (_, data) in entries.items():
            level = _level(data.get("level"))
            warns = kind == "questions" or (level is not None and level > Urgency.SELF_CARE)
            for name, op, fact in _param_tests(data.get("when")):
                uses.setdefault(name, []).append((item_id, op, warns, fact))
    return uses


def _item_data(items: Mapping[str, Mapping[str, Entry]], item_id: str) -> Mapping[str, Any]:
    for entries in items.values():
        if item_id in entries:
            return entries[item_id][1]
    return {}


def _caught_above(fact: str, level: Urgency | None,
                  uses: list[tuple[str, str, Urgency | None]]) -> bool:
    """True when some rule at ``level`` or higher tests ``fact`` at least the parameter."""
    return level is not None and any(
        op == "at_least" and other == fact and other_level is not None and other_level >= level
        for op, other, other_level in uses)


def _param_tests(when: object) -> Iterator[tuple[str, str, str]]:
    """Each ``$name`` threshold in a condition as written: (parameter, test, fact)."""
    if not isinstance(when, Mapping):
        return
    for key, value in when.items():
        if key in ("all", "any") and isinstance(value, list):
            for part in value:
                yield from _param_tests(part)
        elif isinstance(value, Mapping):
            for op in ("at_least", "below"):
                ref = value.get(op)
                if isinstance(ref, str) and ref.startswith("$"):
                    yield ref[1:], op, str(key)


def _level(value: object) -> Urgency | None:
    try:
        return Urgency(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _lower(old: object, new: object) -> bool:
    before, after = _level(old), _level(new)
    return before is not None and after is not None and after < before


def _number(value: object) -> Fraction | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    exact = decimal_of(value)
    return Fraction(exact) if exact.is_finite() else None


def _shown(value: object) -> str:
    number = value if isinstance(value, Fraction) else _number(value)
    if number is None:
        return repr(value)
    return format_number(number, 6)
