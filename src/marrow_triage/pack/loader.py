"""Loading a rule pack: the YAML files in ``rules/``, read, validated and hashed into a
:class:`~marrow_triage.pack.spec.RulePack`.

A pack is a directory with ``pack.yaml`` (name, version, cited documents, parameters,
contact routes, wording), any number of other ``*.yaml`` files holding ``rules:``,
``questions:`` and ``timeline_rules:`` lists, and translations in ``locales/<code>.yaml``.
An overlay is a pack whose ``pack.yaml`` says which pack it ``extends`` (see ``overlay``);
the chain is merged first and the result validated as one pack.

Loading checks everything a clinician could get wrong (unknown facts, wrong threshold
types, missing citations, duplicate ids, escalations that do not escalate, placeholders
a translation lost, routes left empty) and reports every problem with its file, rule id
and field. Then parameters are put into the tests, and parameters and routes into the
texts. The order of files and of rules within them never matters: a pack is identified
by the SHA-256 of its canonical content.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Mapping
from fractions import Fraction
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from pydantic import ValidationError

from marrow_triage.errors import ConditionError, Problem, RulePackError
from marrow_triage.models import PackRef
from marrow_triage.pack.checks import check_engine_limits, check_rules, check_timeline_rules
from marrow_triage.pack.conditions import condition_to_data, suggest
from marrow_triage.pack.facts import FACT_FIELDS, TIMELINE_FACT_FIELDS
from marrow_triage.pack.overlay import (
    ITEM_KINDS,
    OVERLAY_SECTIONS,
    Entry,
    Layer,
    Merged,
    check_extends,
    merge_overlay,
    pack_yaml_problems,
)
from marrow_triage.pack.spec import (
    DisableSpec,
    DocumentSpec,
    OverlayLog,
    PackMeta,
    QuestionSpec,
    RulePack,
    RuleSpec,
    TimelineRuleSpec,
    Translation,
    parameter_text,
)
from marrow_triage.pack.templates import rendered_names
from marrow_triage.pack.texts import (
    LOCALE,
    RULE_TEXT_FIELDS,
    TEMPLATE_PLACEHOLDERS,
    TextValue,
    english_table,
    fill,
    is_template,
    placeholders,
    read_translation,
)
from marrow_triage.pack.yaml_text import YamlLimitError, read_yaml_file
from marrow_triage.units import exact, format_number

__all__ = ["default_rules_path", "load_rule_pack"]


def default_rules_path() -> Path:
    """Where the packaged rule pack lives (inside the wheel, or ``rules/`` in a checkout)."""
    packaged = resources.files("marrow_triage").joinpath("rules")
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[3] / "rules"


MAX_CHAIN = 8
"""Most packs in one chain (a base and its overlays): deeper is a mistake or a loop."""


def load_rule_pack(path: str | Path, base: str | Path | None = None) -> RulePack:
    """Load, validate and hash the rule pack (or overlay chain) in directory ``path``.

    An overlay's ``extends`` is resolved against its ``extends.path`` when given, else
    against ``base`` (a directory) or the packaged pack.
    """
    return _load(Path(path), None if base is None else Path(base), ())[1]


def _load(root: Path, base: Path | None, seen: tuple[Path, ...]) -> tuple[Merged, RulePack]:
    problems: list[Problem] = []
    layer = _read_layer(root, problems)
    if layer is None or (problems and layer.is_overlay):
        raise RulePackError(problems)
    if not layer.is_overlay:
        merged = _base_content(layer, problems)
        pack = _build(merged, problems, meta_read="__unread__" not in layer.meta)
        merged.chain.append(PackRef(name=pack.name, version=pack.version, sha256=pack.sha256))
        return merged, dataclasses.replace(pack, chain=tuple(merged.chain))
    parent_root = _parent_root(layer, base, problems)
    if parent_root is None:
        raise RulePackError(problems)
    here = root.resolve()
    if here in seen or len(seen) + 1 >= MAX_CHAIN:
        raise RulePackError([Problem.in_pack(layer.meta_label, None, "extends", "the chain of "
                             f"overlays loops or is longer than {MAX_CHAIN} packs")])
    parent, parent_pack = _load(parent_root, base, (*seen, here))
    meta = check_extends(layer, parent_pack, problems)
    if meta is None:
        raise RulePackError(problems)
    merged = merge_overlay(parent, parent_pack, layer, meta, problems)
    if problems:
        raise RulePackError(problems)
    pack = _build(merged, problems)
    return merged, dataclasses.replace(pack, chain=tuple(merged.chain))


def _parent_root(layer: Layer, base: Path | None, problems: list[Problem]) -> Path | None:
    extends = layer.meta.get("extends")
    given = extends.get("path") if isinstance(extends, dict) else None
    if isinstance(given, str) and given:
        parent = (layer.root / given)
        if not (parent / "pack.yaml").is_file():
            problems.append(Problem.in_pack(layer.meta_label, None, "extends.path",
                                            f"no pack at {given} ({parent}): the pack this "
                                            "overlay extends was moved or deleted"))
            return None
        return parent
    if base is not None:
        return base
    return default_rules_path()


def _read_layer(root: Path, problems: list[Problem]) -> Layer | None:
    """Read a pack directory's files (not yet validated); None without a usable pack.yaml."""
    if not root.is_dir():
        problems.append(Problem.in_pack(str(root), None, "path", "is not a directory"))
        return None
    files = sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    meta_file = root / "pack.yaml"
    if not meta_file.is_file():
        problems.append(Problem.in_pack(str(meta_file), None, "file", "missing"))
    meta_label = f"{root.name}/pack.yaml"
    meta = _read_yaml(meta_file, meta_label, problems) if meta_file.is_file() else None
    layer = Layer(root=root, meta=meta or {"__unread__": True}, meta_label=meta_label)
    sections = OVERLAY_SECTIONS if layer.is_overlay else ITEM_KINDS
    for file in files:
        if file.name == "pack.yaml":
            continue
        label = f"{root.name}/{file.name}"
        data = _read_yaml(file, label, problems)
        if data is None:
            continue
        for key in sorted(set(data) - set(sections), key=str):
            hint = (" (only an overlay, whose pack.yaml says `extends:`, has it)"
                    if key in OVERLAY_SECTIONS else suggest(str(key), sections))
            problems.append(Problem.in_pack(label, None, str(key), f"unknown section{hint}"))
        for kind in sections:
            targets = {"changes": layer.changes, "disable": layer.disables}
            _read_entries(data, kind, label,
                          targets[kind] if kind in targets else layer.items[kind],
                          layer, problems)
    locales = root / "locales"
    if locales.is_dir():
        for file in sorted(locales.iterdir()):
            if file.suffix not in (".yaml", ".yml") or not file.is_file():
                continue
            label = f"{root.name}/locales/{file.name}"
            if not LOCALE.match(file.stem) or file.stem == "en":
                problems.append(Problem.in_pack(label, None, "file", "name a locale file by its "
                                                "lower-case language tag, e.g. es.yaml; English "
                                                "is the pack's own text"))
                continue
            data = _read_yaml(file, label, problems)
            if data is not None:
                layer.translations[file.stem] = (label, data)
    return layer


def _read_entries(data: dict[str, Any], kind: str, label: str, target: dict[str, Entry],
                  layer: Layer, problems: list[Problem]) -> None:
    items = data.get(kind, [])
    if not isinstance(items, list):
        problems.append(Problem.in_pack(label, None, kind, "expected a list"))
        return
    model: type[Any] = {"rules": RuleSpec, "questions": QuestionSpec,
                        "timeline_rules": TimelineRuleSpec}.get(kind, DisableSpec)
    for index, item in enumerate(items):
        item_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(item_id, str):
            if kind in ("changes", "disable"):
                problems.append(Problem.in_pack(label, None, f"{kind}[{index}]",
                                                "expected a mapping with the id it applies to"))
            else:  # the schema says what is wrong with it
                _validate(model, item, label, f"{kind}[{index}]", problems)
            continue
        assert isinstance(item, dict)
        owner = _owner(layer, item_id, kind)
        if owner is not None:  # named in both files: either may be the one to change
            problems.append(Problem.in_pack(label, item_id, "id", f"duplicate id, also in "
                                            f"{owner}"))
            problems.append(Problem.in_pack(owner, item_id, "id", f"duplicate id, also in "
                                            f"{label}"))
            continue
        target[item_id] = (label, item)


def _owner(layer: Layer, item_id: str, kind: str) -> str | None:
    """The file already holding an entry with this id where another would clash."""
    if kind in ("changes", "disable"):
        same = layer.changes if kind == "changes" else layer.disables
        return same[item_id][0] if item_id in same else None
    for entries in layer.items.values():
        if item_id in entries:
            return entries[item_id][0]
    return None


def _base_content(layer: Layer, problems: list[Problem]) -> Merged:
    """A full pack's content, as the start of a chain.

    A pack that gives no ``texts:`` takes the packaged pack's wording, and the contact
    routes that wording uses, so that a small test or research pack need not repeat them.
    """
    labels = {"": layer.meta_label}
    meta = copy.deepcopy(layer.meta)
    if "texts" not in meta and "__unread__" not in meta:
        packaged = default_rules_path() / "pack.yaml"
        label = f"{packaged.parent.name}/pack.yaml (packaged)"
        wording = _read_yaml(packaged, label, problems) or {}
        meta["texts"] = wording.get("texts", {})
        labels["texts"] = label
        routes = meta.setdefault("routes", {})
        if isinstance(routes, dict):
            for name, text in (wording.get("routes") or {}).items():
                if name not in routes:
                    routes[name] = text
                    labels[f"routes.{name}"] = label
        # The parameters that wording states (the watch list's thresholds), where the
        # pack has none of its own by that name, with the documents they cite.
        parameters = meta.setdefault("parameters", {})
        documents = meta.setdefault("documents", {})
        if isinstance(parameters, dict) and isinstance(documents, dict):
            used = _placeholders_in(meta["texts"])
            packaged_documents = wording.get("documents") or {}
            for name, parameter in (wording.get("parameters") or {}).items():
                if name in parameters or not (name in used or _fahrenheit_name(name) in used):
                    continue
                parameters[name] = parameter
                labels[f"parameters.{name}"] = label
                cited = (parameter.get("source") or {}).get("document")
                if cited not in documents and cited in packaged_documents:
                    documents[cited] = packaged_documents[cited]
                    labels[f"documents.{cited}"] = label
    english = english_table({**meta, "__label__": layer.meta_label}, layer.items)
    translations: dict[str, dict[str, TextValue]] = {}
    notes: dict[str, str] = {}
    translation_labels: dict[str, str] = {}
    unused: dict[str, list[Problem]] = {}
    for locale, (label, data) in sorted(layer.translations.items()):
        notes[locale], translations[locale] = read_translation(
            data, locale, label, english, problems, unused.setdefault(locale, []))
        translation_labels[locale] = label
    return Merged(meta=meta, labels=labels, items=copy.deepcopy(layer.items),
                  translations=translations, notes=notes, translation_labels=translation_labels,
                  unused=unused)


def _build(merged: Merged, problems: list[Problem], meta_read: bool = True) -> RulePack:
    """Validate, resolve and check merged content into a :class:`RulePack`."""
    meta = _validate_meta(merged, problems) if meta_read else None
    specs = _validate_items(merged, meta, problems)
    if meta is None:
        raise RulePackError(problems)
    constants = _constants(meta, merged, problems)
    routes = dict(sorted(meta.routes.items()))
    for kind in ITEM_KINDS:
        for item_id, (label, spec) in list(specs[kind].items()):
            specs[kind][item_id] = (label, _resolved(spec, label, constants, problems))
    texts = _filled_texts(meta, constants, merged, problems)
    _check_pack(meta, merged, specs, problems)
    translations = _translations(merged, constants, routes, texts, specs)
    if problems:
        raise RulePackError(problems)
    return _assemble(meta, merged, specs, routes, texts, translations)


_Specs = dict[str, dict[str, tuple[str, Any]]]
"""Validated items by kind (``rules``, ``questions``, ``timeline_rules``), then by id:
the label of the file that gave each, and its spec."""


def _validate_items(merged: Merged, meta: PackMeta | None, problems: list[Problem]) -> _Specs:
    """Each rule, question and timeline rule validated against its schema."""
    specs: _Specs = {kind: {} for kind in ITEM_KINDS}
    models: dict[str, type[Any]] = {"rules": RuleSpec, "questions": QuestionSpec,
                                    "timeline_rules": TimelineRuleSpec}
    # The merged parameters are the context rule conditions ($name) are validated in.
    context = {"parameters": {} if meta is None else
               {name: p.value for name, p in meta.parameters.items()}}
    for kind in ITEM_KINDS:
        for item_id, (label, data) in sorted(merged.items[kind].items()):
            spec = _validate(models[kind], data, label, item_id, problems, context)
            if spec is not None:
                specs[kind][item_id] = (label, spec)
    return specs


def _check_pack(meta: PackMeta, merged: Merged, specs: _Specs, problems: list[Problem]) -> None:
    """The checks beyond each item's schema: routes, rules, engine limits, citations."""
    _check_routes_used(meta, merged, problems)
    rules, questions, timeline = specs["rules"], specs["questions"], specs["timeline_rules"]
    check_rules(meta, rules, questions, problems)
    check_timeline_rules(meta, timeline, problems)
    check_engine_limits(rules, questions, timeline, problems)
    if timeline and meta.history is None:
        problems.append(Problem.in_pack(merged.labels[""], None, "history", "required when the "
                                        "pack has timeline rules (it defines their history "
                                        "facts)"))
    if timeline and meta.texts.timeline is None:
        problems.append(Problem.in_pack(merged.label_of("texts"), None, "texts.timeline",
                                        "required when the pack has timeline rules (how "
                                        "their findings name the earlier check-ins)"))
    if meta.history is not None and meta.history.source.document not in meta.documents:
        problems.append(Problem.in_pack(merged.label_of("history"), None,
                                        "history.source.document",
                                        f"unknown document {meta.history.source.document!r}"))
    for name, parameter in sorted(meta.parameters.items()):
        if parameter.source.document not in meta.documents:
            where = f"parameters.{name}.source.document"
            problems.append(Problem.in_pack(
                merged.label_of(where), None, where,
                f"unknown document {parameter.source.document!r}"
                f"{suggest(parameter.source.document, tuple(meta.documents))}"))


def _assemble(meta: PackMeta, merged: Merged, specs: _Specs, routes: dict[str, str],
              texts: dict[str, str], translations: dict[str, Translation]) -> RulePack:
    """The checked content, in canonical order, hashed into a :class:`RulePack`."""
    ordered_rules = tuple(spec for _, (_, spec) in sorted(specs["rules"].items()))
    ordered_questions = tuple(spec for _, (_, spec) in sorted(specs["questions"].items()))
    ordered_timeline = tuple(spec for _, (_, spec) in sorted(specs["timeline_rules"].items()))
    documents = dict(sorted(meta.documents.items()))
    overlays = OverlayLog(
        changed={k: tuple(v) for k, v in sorted(merged.changed.items())},
        added=dict(sorted(merged.added.items())),
        disabled=tuple(sorted(merged.disabled, key=lambda d: d.id)),
        acknowledged={k: tuple(v) for k, v in sorted(merged.acknowledged.items())},
    )
    sha256 = _digest(meta, documents, ordered_rules, ordered_questions, ordered_timeline,
                     extra={"routes": routes, "texts": texts,
                            "translations": {code: {"note": t.note, "strings": dict(t.strings)}
                                             for code, t in translations.items()},
                            "overlays": _log_data(overlays)})
    return RulePack(
        name=meta.name, version=meta.version, description=meta.description,
        documents=documents, rules=ordered_rules, questions=ordered_questions,
        sha256=sha256, timeline_rules=ordered_timeline,
        history=meta.history,
        parameters=MappingProxyType(dict(sorted(meta.parameters.items()))),
        routes=routes, texts=texts, translations=translations, overlays=overlays,
        watch_for=tuple(meta.texts.watch_for),
        changes=meta.changes,
    )


def _validate_meta(merged: Merged, problems: list[Problem]) -> PackMeta | None:
    try:
        return PackMeta.model_validate(merged.meta)
    except ValidationError as exc:
        problems += pack_yaml_problems(exc, PackMeta, merged.label_of)
        return None


def _fahrenheit_name(parameter: str) -> str | None:
    """The placeholder showing a °C parameter (``fever_c``) in °F (``fever_f``)."""
    return parameter.removesuffix("_c") + "_f" if parameter.endswith("_c") else None


def _placeholders_in(texts: Any) -> set[str]:
    """Every placeholder name in a nested mapping or list of texts (malformed ones skipped)."""
    names: set[str] = set()
    stack = [texts]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            names.update(rendered_names(node))
        elif isinstance(node, Mapping):
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return names


def _constants(meta: PackMeta, merged: Merged, problems: list[Problem]) -> dict[str, str]:
    """Parameter values and contact routes by name: what ``{name}`` shows in a text."""
    constants: dict[str, str] = {}
    for name, parameter in meta.parameters.items():
        constants[name] = parameter_text(parameter.value)
    for name, parameter in meta.parameters.items():
        # A temperature in °C (``*_c``) is shown in °F too (``{*_f}``), exactly: a tenth
        # of a degree Celsius is at most two decimals Fahrenheit (38.3 °C is 100.94 °F),
        # so a patient reading either scale is held to the same threshold.
        shown_f = _fahrenheit_name(name)
        if shown_f is not None and shown_f not in meta.parameters:
            constants[shown_f] = format_number(exact(parameter.value) * Fraction(9, 5) + 32, 2)
    for name, text in meta.routes.items():
        where = f"routes.{name}"
        if name in constants:
            problems.append(Problem.in_pack(merged.label_of(where), None, where,
                                            "a parameter has this name too"))
        if "{" in text or "}" in text:
            problems.append(Problem.in_pack(merged.label_of(where), None, where,
                                            "a route is shown as written: no braces"))
        constants[name] = text.strip()
    for name in sorted(constants):
        if name in TIMELINE_FACT_FIELDS or name in ("count", "findings"):
            kind = "parameters" if name in meta.parameters else "routes"
            problems.append(Problem.in_pack(merged.label_of(f"{kind}.{name}"), None,
                                            f"{kind}.{name}", "a fact has this name: texts "
                                            "could not tell them apart"))
    return constants


def _resolved(spec: Any, label: str, constants: Mapping[str, str],
              problems: list[Problem]) -> Any:
    """A rule or question with the constants (parameters, routes) in its texts."""
    update: dict[str, Any] = {}
    for name in ("title", "explanation", "text", "advice", "reassurance", "also_tell"):
        value = getattr(spec, name, None)
        if value is None:
            continue
        template = name == "explanation"
        texts = (value,) if isinstance(value, str) else value
        filled = tuple(fill(text, constants, template) for text in texts)
        if not template:
            for text in filled:
                try:
                    left_over = placeholders(text)
                except ValueError as exc:
                    problems.append(Problem.in_pack(label, spec.id, name, f"bad template: {exc}"))
                    continue
                for left in sorted(left_over):
                    problems.append(Problem.in_pack(label, spec.id, name, f"unknown placeholder "
                                                    f"{{{left}}}{suggest(left, tuple(constants))};"
                                                    " routes and parameters are declared in "
                                                    "pack.yaml"))
        update[name] = filled[0] if isinstance(value, str) else filled
    return spec.model_copy(update=update)


def _filled_texts(meta: PackMeta, constants: Mapping[str, str], merged: Merged,
                  problems: list[Problem]) -> dict[str, str]:
    """The pack's wording outside its rules, by key, constants filled in."""
    raw = {key: value for key, (_, value) in english_table(
        {"texts": meta.texts.model_dump(mode="json", exclude_none=True)}, {}).items()
        if not key.startswith("routes.")}
    out: dict[str, str] = {}
    for key, value in sorted(raw.items()):
        assert isinstance(value, str)
        template = is_template(key)
        text = fill(value, constants, template)
        allowed = TEMPLATE_PLACEHOLDERS.get(key, frozenset())
        try:
            left = placeholders(text)
        except ValueError as exc:
            problems.append(Problem.in_pack(merged.label_of(f"texts.{key}"), None, f"texts.{key}",
                                            f"bad template: {exc}"))
            continue
        for name in sorted(left - allowed):
            known = (*allowed, *constants)
            problems.append(Problem.in_pack(merged.label_of(f"texts.{key}"), None, f"texts.{key}",
                                            f"unknown placeholder {{{name}}}"
                                            f"{suggest(name, known)}"))
        out[key] = text
    return out


def _check_routes_used(meta: PackMeta, merged: Merged, problems: list[Problem]) -> None:
    """A route that some text uses must say how to reach someone."""
    english = english_table({**merged.meta, "__label__": merged.labels[""]}, merged.items)
    users: dict[str, list[str]] = {}
    tables = [english, *({k: ("", v) for k, v in t.items()} for t in merged.translations.values())]
    for table in tables:
        for key, (_, value) in table.items():
            for text in (value,) if isinstance(value, str) else value:
                try:
                    names = placeholders(text)
                except ValueError:
                    continue
                for name in names & set(meta.routes):
                    users.setdefault(name, []).append(key)
    for name, keys in sorted(users.items()):
        if not meta.routes[name].strip():
            where = f"routes.{name}"
            problems.append(Problem.in_pack(merged.label_of(where), None, where,
                                            f"empty, but {sorted(set(keys))[0]} uses it: fill "
                                            "it with how to reach that service"))


def _translations(merged: Merged, constants: Mapping[str, str], routes: Mapping[str, str],
                  texts: Mapping[str, str], specs: Mapping[str, Mapping[str, tuple[str, Any]]]
                  ) -> dict[str, Translation]:
    """Each locale's texts with its own routes (or the English ones) and parameters filled."""
    english_keys = set(texts)
    for kind in ("rules", "timeline_rules"):
        for item_id, (_, spec) in specs[kind].items():
            english_keys |= {f"rules.{item_id}.{name}" for name in RULE_TEXT_FIELDS
                             if getattr(spec, name, None)}
    english_keys |= {f"questions.{q}" for q in specs["questions"]}
    english_keys |= {f"routes.{name}" for name in routes}
    english_keys |= {f"values.{f.name}.{v}" for f in FACT_FIELDS.values() for v in f.values}
    out: dict[str, Translation] = {}
    for locale, strings in sorted(merged.translations.items()):
        local = dict(constants)
        local.update({key.removeprefix("routes."): str(value).strip()
                      for key, value in strings.items() if key.startswith("routes.")})
        filled: dict[str, str | tuple[str, ...]] = {}
        for key, value in sorted(strings.items()):
            if key not in english_keys:
                continue
            template = is_template(key)
            filled[key] = (fill(value, local, template) if isinstance(value, str)
                           else tuple(fill(v, local, template) for v in value))
        missing = tuple(sorted(english_keys - set(filled)))
        out[locale] = Translation(locale=locale, note=merged.notes.get(locale, ""),
                                  strings=filled, missing=missing,
                                  unused=tuple(str(p) for p in merged.unused.get(locale, ())))
    return out


def _log_data(log: OverlayLog) -> dict[str, Any]:
    return {
        "changed": {k: list(v) for k, v in log.changed.items()},
        "added": dict(log.added),
        "disabled": [dataclasses.asdict(d) for d in log.disabled],
        "acknowledged": {k: list(v) for k, v in log.acknowledged.items()},
    }


def _read_yaml(file: Path, label: str, problems: list[Problem]) -> dict[str, Any] | None:
    try:
        data = read_yaml_file(file)
    except YamlLimitError as exc:
        problems.append(Problem.in_pack(label, None, "file", str(exc)))
        return None
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
        detail = " ".join(str(exc).split())
        problems.append(Problem.in_pack(label, None, "file", f"cannot be read as YAML: {detail}"))
        return None
    if not isinstance(data, dict):
        problems.append(Problem.in_pack(label, None, "file", "expected a mapping at the top level"))
        return None
    return data


def _validate(model: type[Any], data: object, label: str, ident: str | None,
              problems: list[Problem], context: dict[str, Any] | None = None) -> Any:
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        for error in exc.errors():
            loc = [str(part) for part in error["loc"]]
            where = ".".join(loc) or "rule"
            message = error["msg"]
            ctx_error = error.get("ctx", {}).get("error")
            if isinstance(ctx_error, ConditionError):
                # The condition's own path starts at the field it was given (``when``).
                where, message = ".".join([*loc[:-1], ctx_error.path]), ctx_error.message
            elif error["type"] == "value_error" and isinstance(ctx_error, ValueError):
                message = str(ctx_error)  # without pydantic's "Value error, " prefix
            elif error["type"] == "extra_forbidden":
                known = tuple(getattr(model, "model_fields", {}))
                message = f"unknown field{suggest(str(error['loc'][-1]), known)}"
            problems.append(Problem.in_pack(label, ident, where, message))
        return None


def _dump(spec: RuleSpec | TimelineRuleSpec, exclude: set[str]) -> dict[str, Any]:
    """A rule's canonical fields; fields added since 1.0 count only when given, so packs
    that do not use them keep the hash they always had."""
    data: dict[str, Any] = spec.model_dump(mode="json", exclude=exclude)
    for optional in ("notes", "also_tell"):
        if not data.get(optional):
            data.pop(optional, None)
    return data


def _digest(meta: PackMeta, documents: Mapping[str, DocumentSpec], rules: tuple[RuleSpec, ...],
            questions: tuple[QuestionSpec, ...],
            timeline: tuple[TimelineRuleSpec, ...] = (),
            extra: Mapping[str, Any] | None = None) -> str:
    canonical: dict[str, Any] = {
        "name": meta.name,
        "version": meta.version,
        "description": meta.description,
        "documents": {k: v.model_dump(mode="json") for k, v in documents.items()},
        "rules": [
            {**_dump(r, {"when", "when_findings"}), "condition": r.condition_data()}
            for r in rules
        ],
        "questions": [
            {**q.model_dump(mode="json", exclude={"when"}),
             "when": None if q.when is None else condition_to_data(q.when)} for q in questions
        ],
    }
    if timeline:  # packs without timeline rules keep the hash they always had
        if meta.history is not None:
            canonical["history"] = meta.history.model_dump(mode="json")
        canonical["timeline_rules"] = [
            {**_dump(r, {"when"}), "condition": r.condition_data()} for r in timeline
        ]
    if meta.parameters:  # packs without parameters keep the hash they always had
        canonical["parameters"] = {k: v.model_dump(mode="json", exclude_none=True)
                                   for k, v in sorted(meta.parameters.items())}
    canonical.update(extra or {})
    text = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
