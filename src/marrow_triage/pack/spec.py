"""The rule pack's schema: what each rule, question and setting may say, as pydantic models.

A :class:`RulePack` is the validated, ordered result of loading (``loader``) and checking
(``checks``) the YAML files of a pack.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from marrow_triage.models import Source, Urgency
from marrow_triage.pack.conditions import (
    Condition,
    condition_to_data,
    parse_condition,
    suggest,
)
from marrow_triage.pack.facts import FACT_FIELDS, TIMELINE_FACT_FIELDS
from marrow_triage.units import format_number

__all__ = [
    "ESCALATION_PLACEHOLDERS",
    "PARAMETER_NAME",
    "RULE_ID",
    "DocumentSpec",
    "FindingsCount",
    "HistorySettings",
    "PackMeta",
    "ParameterSpec",
    "QuestionSpec",
    "RulePack",
    "RuleSpec",
    "SourceRef",
    "TimelineRuleSpec",
]

RULE_ID = r"^[a-z0-9][a-z0-9-]{1,63}$"
PARAMETER_NAME = r"^[a-z][a-z0-9_]{1,63}$"
Notes = Annotated[str, Field(min_length=1)]


def _parameters(info: ValidationInfo) -> dict[str, float]:
    """The pack parameters the loader passes as validation context (none outside it)."""
    context = info.context if isinstance(info.context, dict) else {}
    params = context.get("parameters", {})
    return dict(params) if isinstance(params, dict) else {}


def _fill_parameters(text: str, info: ValidationInfo) -> str:
    """``{name}`` of each pack parameter in a text replaced by its value, so the text
    states the threshold it is held against even when a site changes the parameter."""
    for name, value in _parameters(info).items():
        text = text.replace("{" + name + "}", format_number(Fraction(Decimal(repr(value))), 6))
    return text
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


class ParameterSpec(_Spec):
    """A named, cited value that rule conditions use as ``$name`` (``parameters:``)."""

    value: Annotated[float, Field(strict=False, allow_inf_nan=False)]
    description: str = Field(min_length=1)
    source: SourceRef
    notes: Notes | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {value!r}")
        return value


class FindingsCount(_Spec):
    """Escalation trigger: at least ``at_least`` findings at exactly ``level``."""

    level: Urgency
    at_least: Annotated[int, Field(strict=True, ge=2, le=20)]


class _RuleBase(_Spec):
    """What every rule has: identity, level, explanation, advice and citation."""

    id: str = Field(pattern=RULE_ID)
    title: str = Field(min_length=1, max_length=80)
    level: Urgency
    explanation: str = Field(min_length=1)
    advice: tuple[Annotated[str, Field(min_length=1)], ...] = Field(min_length=1)
    also_tell: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    """What stays of the advice when a higher finding sets an urgent or emergency action
    (e.g. "Also tell them about …"); without it the rule's advice is dropped there."""
    source: SourceRef
    notes: Notes | None = None
    """Why the rule says what it says where sources differ (the more cautious reading)."""

    @field_validator("explanation")
    @classmethod
    def _explanation_parameters(cls, value: str, info: ValidationInfo) -> str:
        return _fill_parameters(value, info)


class RuleSpec(_RuleBase):
    """One rule as written in a rule file: a test of the report (``when``) or an
    escalation that counts findings (``when_findings``)."""

    when: Condition | None = None
    when_findings: FindingsCount | None = None
    reassurance: tuple[Annotated[str, Field(min_length=1)], ...] = ()

    @field_validator("when", mode="before")
    @classmethod
    def _parse_when(cls, value: Any, info: ValidationInfo) -> Condition | None:
        return None if value is None else parse_condition(
            value, parameters=_parameters(info))

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


class TimelineRuleSpec(_RuleBase):
    """A rule over an episode's history, tested against ``TIMELINE_FACT_FIELDS``.

    Written in a ``timeline_rules:`` section. It sees the current check-in's facts and
    facts derived from the earlier check-ins of the same episode.
    """

    when: Condition

    @field_validator("when", mode="before")
    @classmethod
    def _parse_when(cls, value: Any, info: ValidationInfo) -> Condition:
        return parse_condition(value, fields=TIMELINE_FACT_FIELDS,
                               parameters=_parameters(info))

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
    def _parse_when(cls, value: Any, info: ValidationInfo) -> Condition | None:
        return None if value is None else parse_condition(
            value, parameters=_parameters(info))

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


class PackMeta(_Spec):
    """What ``pack.yaml`` says: the pack's name, version, documents and history settings."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    version: str = Field(min_length=1)
    description: str = ""
    documents: dict[str, DocumentSpec] = Field(min_length=1)
    history: HistorySettings | None = None
    parameters: dict[Annotated[str, Field(pattern=PARAMETER_NAME)], ParameterSpec] = {}


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
    parameters: Mapping[str, ParameterSpec] = field(
        default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_path(cls, path: str | Path) -> RulePack:
        """Load and validate the pack in directory ``path``."""
        from marrow_triage.pack.loader import load_rule_pack  # the loader builds packs

        return load_rule_pack(path)

    @classmethod
    def default(cls) -> RulePack:
        """The pack shipped with the library."""
        from marrow_triage.pack.loader import default_rules_path, load_rule_pack

        return load_rule_pack(default_rules_path())

    @cached_property
    def _rules_by_id(self) -> dict[str, RuleSpec]:
        return {rule.id: rule for rule in self.rules}

    @cached_property
    def _timeline_rules_by_id(self) -> dict[str, TimelineRuleSpec]:
        return {rule.id: rule for rule in self.timeline_rules}

    @cached_property
    def _sources(self) -> dict[str, Source]:
        return {rule.id: self._build_source(rule) for rule in (*self.rules, *self.timeline_rules)}

    def rule(self, rule_id: str) -> RuleSpec:
        """The rule with this id."""
        rule = self._rules_by_id.get(rule_id)
        if rule is None:
            raise KeyError(f"no rule {rule_id!r}{suggest(rule_id, self._rules_by_id)}")
        return rule

    def timeline_rule(self, rule_id: str) -> TimelineRuleSpec:
        """The timeline rule with this id."""
        rule = self._timeline_rules_by_id.get(rule_id)
        if rule is None:
            raise KeyError(f"no timeline rule {rule_id!r}"
                           f"{suggest(rule_id, self._timeline_rules_by_id)}")
        return rule

    def any_rule(self, rule_id: str) -> RuleSpec | TimelineRuleSpec:
        """The rule or timeline rule with this id (ids are unique across both)."""
        rule = self._rules_by_id.get(rule_id) or self._timeline_rules_by_id.get(rule_id)
        if rule is None:
            known = (*self._rules_by_id, *self._timeline_rules_by_id)
            raise KeyError(f"no rule {rule_id!r}{suggest(rule_id, known)}")
        return rule

    def source(self, rule: RuleSpec | TimelineRuleSpec) -> Source:
        """The full citation of a rule (built once per rule; models are immutable)."""
        return self._sources[rule.id]

    def _build_source(self, rule: _RuleBase) -> Source:
        doc = self.documents[rule.source.document]
        return Source(
            document=rule.source.document, title=doc.title, publisher=doc.publisher, url=doc.url,
            section=rule.source.section, quote=rule.source.quote, verbatim=rule.source.verbatim,
        )
