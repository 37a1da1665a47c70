"""Rule packs: the YAML files in ``rules/``, validated into a :class:`RulePack`.

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
import string
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from marrow_triage.errors import Problem, RulePackError
from marrow_triage.models import Source, Urgency
from marrow_triage.pack.conditions import (
    AllOf,
    AnyOf,
    Condition,
    ConditionError,
    FieldTest,
    condition_fields,
    condition_to_data,
    parse_condition,
    suggest,
    thresholds,
)
from marrow_triage.pack.facts import FACT_FIELDS, TIMELINE_FACT_FIELDS
from marrow_triage.units import format_number

__all__ = [
    "DocumentSpec",
    "FindingsCount",
    "HistorySettings",
    "QuestionSpec",
    "RulePack",
    "RulePackError",
    "RuleSpec",
    "SourceRef",
    "TimelineRuleSpec",
    "default_rules_path",
    "load_rule_pack",
]

RULE_ID = r"^[a-z0-9][a-z0-9-]{1,63}$"
ESCALATION_PLACEHOLDERS = ("count", "findings")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class DocumentSpec(_Spec):
    """A document that rules cite."""

    title: str = Field(min_length=1)
    publisher: str = Field(min_length=1)
    url: str | None = None
    published: str | None = None


class SourceRef(_Spec):
    """A rule's citation: a document of the pack, its section and the sentence encoded."""

    document: str = Field(min_length=1)
    section: str = Field(min_length=1)
    quote: str = Field(min_length=1)
    verbatim: bool = True


class FindingsCount(_Spec):
    """Escalation trigger: at least ``at_least`` findings at exactly ``level``."""

    level: Urgency
    at_least: Annotated[int, Field(strict=True, ge=2, le=20)]


class RuleSpec(_Spec):
    """One rule as written in a rule file."""

    id: str = Field(pattern=RULE_ID)
    title: str = Field(min_length=1, max_length=80)
    level: Urgency
    when: Condition | None = None
    when_findings: FindingsCount | None = None
    explanation: str = Field(min_length=1)
    advice: tuple[Annotated[str, Field(min_length=1)], ...] = Field(min_length=1)
    reassurance: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    source: SourceRef

    @field_validator("when", mode="before")
    @classmethod
    def _parse_when(cls, value: Any) -> Condition | None:
        return None if value is None else parse_condition(value)

    @property
    def is_escalation(self) -> bool:
        """True for rules that combine other findings rather than test the report."""
        return self.when_findings is not None

    def condition_data(self) -> object:
        """The condition in canonical form."""
        if self.when is not None:
            return condition_to_data(self.when)
        assert self.when_findings is not None
        return {"findings": self.when_findings.model_dump(mode="json")}


class TimelineRuleSpec(_Spec):
    """A rule over an episode's history, tested against ``TIMELINE_FACT_FIELDS``.

    Written in a ``timeline_rules:`` section. It sees the current check-in's facts and
    facts derived from the earlier check-ins of the same episode.
    """

    id: str = Field(pattern=RULE_ID)
    title: str = Field(min_length=1, max_length=80)
    level: Urgency
    when: Condition
    explanation: str = Field(min_length=1)
    advice: tuple[Annotated[str, Field(min_length=1)], ...] = Field(min_length=1)
    source: SourceRef

    @field_validator("when", mode="before")
    @classmethod
    def _parse_when(cls, value: Any) -> Condition:
        return parse_condition(value, fields=TIMELINE_FACT_FIELDS)

    def condition_data(self) -> object:
        """The condition in canonical form."""
        return condition_to_data(self.when)


class QuestionSpec(_Spec):
    """A question asked when ``field`` was not answered and ``when`` (if given) holds."""

    id: str = Field(pattern=RULE_ID)
    field: str
    text: str = Field(min_length=1)
    when: Condition | None = None

    @field_validator("when", mode="before")
    @classmethod
    def _parse_when(cls, value: Any) -> Condition | None:
        return None if value is None else parse_condition(value)

    @field_validator("field")
    @classmethod
    def _known_field(cls, value: str) -> str:
        if value not in FACT_FIELDS:
            raise ValueError(f"unknown fact {value!r}{suggest(value, tuple(FACT_FIELDS))}")
        return value


class HistorySettings(_Spec):
    """Parameters of the history facts that timeline rules test (``history:`` in pack.yaml).

    They define ``raised_temperature_minutes``: the span of the unbroken run of readings
    at or above ``raised_temperature_c``, no two more than ``raised_run_max_gap_hours``
    apart, ending at the current check-in.
    """

    raised_temperature_c: Annotated[float, Field(strict=True, ge=37, le=40)]
    raised_run_max_gap_hours: Annotated[float, Field(strict=True, gt=0, le=24)]
    source: SourceRef


class _PackFile(_Spec):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    version: str = Field(min_length=1)
    description: str = ""
    documents: dict[str, DocumentSpec] = Field(min_length=1)
    history: HistorySettings | None = None


@dataclass(frozen=True)
class RulePack:
    """A validated rule pack. Rules are sorted by id, so file order never matters."""

    name: str
    version: str
    description: str
    documents: Mapping[str, DocumentSpec]
    rules: tuple[RuleSpec, ...]
    questions: tuple[QuestionSpec, ...]
    sha256: str
    timeline_rules: tuple[TimelineRuleSpec, ...] = ()
    history: HistorySettings | None = None

    @classmethod
    def from_path(cls, path: str | Path) -> RulePack:
        """Load and validate the pack in directory ``path``."""
        return load_rule_pack(path)

    @classmethod
    def default(cls) -> RulePack:
        """The pack shipped with the library."""
        return load_rule_pack(default_rules_path())

    @cached_property
    def _rules_by_id(self) -> dict[str, RuleSpec]:
        return {rule.id: rule for rule in self.rules}

    @cached_property
    def _sources(self) -> dict[str, Source]:
        sources = {rule.id: self._build_source(rule) for rule in self.rules}
        sources.update((rule.id, self._build_source(rule)) for rule in self.timeline_rules)
        return sources

    def rule(self, rule_id: str) -> RuleSpec:
        """The rule with this id."""
        rule = self._rules_by_id.get(rule_id)
        if rule is not None:
            return rule
        raise KeyError(f"no rule {rule_id!r}{suggest(rule_id, [r.id for r in self.rules])}")

    def timeline_rule(self, rule_id: str) -> TimelineRuleSpec:
        """The timeline rule with this id."""
        for rule in self.timeline_rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(f"no timeline rule {rule_id!r}"
                       f"{suggest(rule_id, [r.id for r in self.timeline_rules])}")

    def source(self, rule: RuleSpec | TimelineRuleSpec) -> Source:
        """The full citation of a rule (built once per rule; models are immutable)."""
        return self._sources[rule.id]

    def _build_source(self, rule: RuleSpec | TimelineRuleSpec) -> Source:
        doc = self.documents[rule.source.document]
        return Source(
            document=rule.source.document, title=doc.title, publisher=doc.publisher, url=doc.url,
            section=rule.source.section, quote=rule.source.quote, verbatim=rule.source.verbatim,
        )


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
    files = sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if not any(p.name == "pack.yaml" for p in files):
        problems.append(Problem.in_pack(str(root / "pack.yaml"), None, "file", "missing"))
    meta: _PackFile | None = None
    rules: dict[str, tuple[str, RuleSpec]] = {}
    questions: dict[str, tuple[str, QuestionSpec]] = {}
    timeline: dict[str, tuple[str, TimelineRuleSpec]] = {}
    for file in files:
        label = f"{root.name}/{file.name}"
        data = _read_yaml(file, label, problems)
        if data is None:
            continue
        if file.name == "pack.yaml":
            meta = _validate(_PackFile, data, label, None, "", problems)
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
                spec = _validate(model, item, label, ident, "", problems)
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
        _check_rules(meta, rules, questions, problems)
        _check_timeline_rules(meta, timeline, problems)
        if timeline and meta.history is None:
            problems.append(Problem.in_pack("pack.yaml", None, "history", "required when the pack "
                                        "has timeline rules (it defines their history facts)"))
        if meta.history is not None and meta.history.source.document not in meta.documents:
            problems.append(Problem.in_pack("pack.yaml", None, "history.source.document",
                                        f"unknown document {meta.history.source.document!r}"))
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
    )


_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML was built with it: ~20x faster than the pure-Python
one, which was most of the time it took to load the pack (and so of cold start)."""


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


def _validate(model: type[Any], data: object, label: str, ident: str | None, prefix: str,
              problems: list[Problem]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "rule"
            message = error["msg"]
            ctx_error = error.get("ctx", {}).get("error")
            if isinstance(ctx_error, ConditionError):
                where, message = f"{where}.{ctx_error.path.removeprefix('when.')}", \
                    ctx_error.message
                where = where.replace("when.when", "when")
            elif error["type"] == "extra_forbidden":
                known = tuple(getattr(model, "model_fields", {}))
                message = f"unknown field{suggest(str(error['loc'][-1]), known)}"
            problems.append(Problem.in_pack(label, ident, prefix + where, message))
        return None


def _check_rules(meta: _PackFile, rules: dict[str, tuple[str, RuleSpec]],
                 questions: dict[str, tuple[str, QuestionSpec]],
                 problems: list[Problem]) -> None:
    for rule_id, (label, rule) in sorted(rules.items()):
        problem = _reporter(problems, label, rule_id)
        _check_document(meta, rule.source, problem)
        if (rule.when is None) == (rule.when_findings is None):
            problem("when", "give exactly one of `when` (report facts) or `when_findings`")
            continue
        if rule.reassurance and rule.level is not Urgency.SELF_CARE:
            problem("reassurance", "only self_care rules reassure; a warning sign never does")
        placeholders = _placeholders(rule.explanation, problem)
        if rule.when_findings is not None:
            if rule.level <= rule.when_findings.level:
                problem("when_findings.level", f"an escalation must raise the level: it counts "
                        f"{rule.when_findings.level.value} findings but is itself "
                        f"{rule.level.value}, so it could feed on its own findings (a cycle)")
            allowed: tuple[str, ...] = ESCALATION_PLACEHOLDERS
            needed = ["count"]
            numbers = [Fraction(rule.when_findings.at_least)]
        else:
            assert rule.when is not None
            allowed = tuple(FACT_FIELDS)
            needed = [f for f in condition_fields(rule.when) if _reads_value(rule.when, f)]
            numbers = thresholds(rule.when)
        _check_explanation(rule.explanation, placeholders, allowed, needed, numbers, problem)
    for question_id, (label, question) in sorted(questions.items()):
        if question.when is not None and question.field in condition_fields(question.when):
            problems.append(Problem.in_pack(label, question_id, "when", "a question is asked when "
                                        f"{question.field} is missing; do not also test it"))


def _check_timeline_rules(meta: _PackFile, rules: dict[str, tuple[str, TimelineRuleSpec]],
                          problems: list[Problem]) -> None:
    for rule_id, (label, rule) in sorted(rules.items()):
        problem = _reporter(problems, label, rule_id)
        _check_document(meta, rule.source, problem)
        if rule.level is Urgency.SELF_CARE:
            problem("level", "a timeline rule reports a warning sign; self_care adds nothing")
        placeholders = _placeholders(rule.explanation, problem)
        needed = [f for f in condition_fields(rule.when) if _reads_value(rule.when, f)]
        _check_explanation(rule.explanation, placeholders, tuple(TIMELINE_FACT_FIELDS), needed,
                           thresholds(rule.when), problem)


def _reporter(problems: list[Problem], label: str, rule_id: str) -> Any:
    """A ``problem(field, message)`` callback for one rule of one file."""
    def problem(field: str, message: str) -> None:
        problems.append(Problem.in_pack(label, rule_id, field, message))
    return problem


def _check_document(meta: _PackFile, source: SourceRef, problem: Any) -> None:
    if source.document not in meta.documents:
        problem("source.document", f"unknown document {source.document!r}"
                f"{suggest(source.document, tuple(meta.documents))}")


def _check_explanation(text: str, placeholders: set[str], allowed: tuple[str, ...],
                       needed: list[str], numbers: list[Fraction], problem: Any) -> None:
    """An explanation uses known placeholders, shows each measured value and threshold."""
    for name in sorted(placeholders - set(allowed)):
        problem("explanation", f"unknown placeholder {{{name}}}{suggest(name, allowed)}")
    for name in needed:
        if name not in placeholders:
            problem("explanation", f"must show the measured value: add {{{name}}}")
    for number in numbers:
        shown = format_number(number, 6)
        if shown not in text:
            problem("explanation", f"must state the threshold {shown}")


def _reads_value(condition: Condition, field: str) -> bool:
    """True when some test of ``field`` needs its value (not only ``missing``)."""
    if isinstance(condition, FieldTest):
        return condition.field == field and condition.op != "missing"
    assert isinstance(condition, AllOf | AnyOf)
    return any(_reads_value(part, field) for part in condition.parts)


def _placeholders(template: str, problem: Any) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name}
    except ValueError as exc:
        problem("explanation", f"bad template: {exc}")
        return set()


def _digest(meta: _PackFile, documents: Mapping[str, DocumentSpec], rules: tuple[RuleSpec, ...],
            questions: tuple[QuestionSpec, ...],
            timeline: tuple[TimelineRuleSpec, ...] = ()) -> str:
    canonical: dict[str, Any] = {
        "name": meta.name,
        "version": meta.version,
        "description": meta.description,
        "documents": {k: v.model_dump(mode="json") for k, v in documents.items()},
        "rules": [
            {**r.model_dump(mode="json", exclude={"when", "when_findings"}),
             "condition": r.condition_data()} for r in rules
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
            {**r.model_dump(mode="json", exclude={"when"}), "condition": r.condition_data()}
            for r in timeline
        ]
    text = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
