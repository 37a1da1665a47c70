"""Loading a rule pack: the YAML files in ``rules/``, read, validated and hashed into a
:class:`~marrow_triage.pack.spec.RulePack`.

A pack is a directory with ``pack.yaml`` (name, version, cited documents) and any number
of other ``*.yaml`` files holding ``rules:``, ``questions:`` and ``timeline_rules:``
lists. Loading checks everything a clinician could get wrong (unknown facts, wrong
threshold types, missing citations, duplicate ids, escalations that do not escalate) and
reports every problem with its file, rule id and field. The order of files and of rules
within them never matters: a pack is identified by the SHA-256 of its canonical content.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from pydantic import ValidationError

from marrow_triage.errors import ConditionError, Problem, RulePackError
from marrow_triage.pack.checks import check_rules, check_timeline_rules
from marrow_triage.pack.conditions import condition_to_data, suggest
from marrow_triage.pack.spec import (
    DocumentSpec,
    PackMeta,
    QuestionSpec,
    RulePack,
    RuleSpec,
    TimelineRuleSpec,
    _Spec,
)

__all__ = ["default_rules_path", "load_rule_pack"]


def default_rules_path() -> Path:
    """Where the packaged rule pack lives (inside the wheel, or ``rules/`` in a checkout)."""
    packaged = resources.files("marrow_triage").joinpath("rules")
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[3] / "rules"


def load_rule_pack(path: str | Path) -> RulePack:
    """Load, validate and hash the rule pack in directory ``path``."""
    root = Path(path)
    if not root.is_dir():
        raise RulePackError([Problem.in_pack(str(root), None, "path", "is not a directory")])
    problems: list[Problem] = []
    # pack.yaml first: its parameters are the context the rule files are validated in.
    files = sorted((p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()),
                   key=lambda p: (p.name != "pack.yaml", p.name))
    if not any(p.name == "pack.yaml" for p in files):
        problems.append(Problem.in_pack(str(root / "pack.yaml"), None, "file", "missing"))
    meta: PackMeta | None = None
    rules: dict[str, tuple[str, RuleSpec]] = {}
    questions: dict[str, tuple[str, QuestionSpec]] = {}
    timeline: dict[str, tuple[str, TimelineRuleSpec]] = {}
    context: dict[str, Any] = {"parameters": {}}
    for file in files:
        label = f"{root.name}/{file.name}"
        data = _read_yaml(file, label, problems)
        if data is None:
            continue
        if file.name == "pack.yaml":
            meta = _validate(PackMeta, data, label, None, problems)
            if meta is not None:
                context = {"parameters": {k: v.value for k, v in meta.parameters.items()}}
            continue
        sections = ("rules", "questions", "timeline_rules")
        unknown = sorted(set(data) - set(sections))
        for key in unknown:
            problems.append(Problem.in_pack(label, None, str(key), "unknown section"
                                        f"{suggest(str(key), sections)}"))
        kinds: tuple[tuple[str, dict[str, Any], type[_Spec]], ...] = (
            ("rules", rules, RuleSpec), ("questions", questions, QuestionSpec),
            ("timeline_rules", timeline, TimelineRuleSpec))
        for kind, target, model in kinds:
            items = data.get(kind, [])
            if not isinstance(items, list):
                problems.append(Problem.in_pack(label, None, kind, "expected a list"))
                continue
            for index, item in enumerate(items):
                item_id = item.get("id") if isinstance(item, dict) else None
                ident = item_id if isinstance(item_id, str) else f"{kind}[{index}]"
                spec = _validate(model, item, label, ident, problems, context)
                if spec is None:
                    continue
                if spec.id in target:
                    problems.append(Problem.in_pack(label, spec.id, "id", "duplicate id, also in "
                                                f"{target[spec.id][0]}"))
                    continue
                target[spec.id] = (label, spec)
    for rule_id, (label, _) in sorted(timeline.items()):
        if rule_id in rules:
            problems.append(Problem.in_pack(label, rule_id, "id", "duplicate id, also a rule in "
                                        f"{rules[rule_id][0]}"))
    if meta is not None:
        check_rules(meta, rules, questions, problems)
        check_timeline_rules(meta, timeline, problems)
        if timeline and meta.history is None:
            problems.append(Problem.in_pack("pack.yaml", None, "history", "required when the pack "
                                        "has timeline rules (it defines their history facts)"))
        if meta.history is not None and meta.history.source.document not in meta.documents:
            problems.append(Problem.in_pack("pack.yaml", None, "history.source.document",
                                        f"unknown document {meta.history.source.document!r}"))
        for name, parameter in sorted(meta.parameters.items()):
            if parameter.source.document not in meta.documents:
                problems.append(Problem.in_pack(
                    "pack.yaml", None, f"parameters.{name}.source.document",
                    f"unknown document {parameter.source.document!r}"
                    f"{suggest(parameter.source.document, tuple(meta.documents))}"))
    if problems or meta is None:
        raise RulePackError(problems)
    ordered_rules = tuple(spec for _, (_, spec) in sorted(rules.items()))
    ordered_questions = tuple(spec for _, (_, spec) in sorted(questions.items()))
    ordered_timeline = tuple(spec for _, (_, spec) in sorted(timeline.items()))
    documents = dict(sorted(meta.documents.items()))
    return RulePack(
        name=meta.name, version=meta.version, description=meta.description,
        documents=documents, rules=ordered_rules, questions=ordered_questions,
        sha256=_digest(meta, documents, ordered_rules, ordered_questions, ordered_timeline),
        timeline_rules=ordered_timeline,
        history=meta.history if ordered_timeline else None,
        parameters=MappingProxyType(dict(sorted(meta.parameters.items()))),
    )


_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML was built with it: the pure-Python one was most of
the time it took to load the pack, and so of cold start (benchmarks/README.md)."""


def _read_yaml(file: Path, label: str, problems: list[Problem]) -> dict[str, Any] | None:
    try:
        data = yaml.load(file.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
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
            timeline: tuple[TimelineRuleSpec, ...] = ()) -> str:
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
    text = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
