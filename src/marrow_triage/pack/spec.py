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

from marrow_triage.models import PackRef, Source, SymptomReport, Urgency
from marrow_triage.pack.conditions import (
    Condition,
    condition_fields,
    condition_to_data,
    parse_condition,
    residual,
    suggest,
)
from marrow_triage.pack.facts import FACT_FIELDS, TIMELINE_FACT_FIELDS
from marrow_triage.pack.templates import TemplateText
from marrow_triage.units import format_number

__all__ = [
    "ESCALATION_PLACEHOLDERS",
    "HISTORY_PLACEHOLDERS",
    "PACK_NAME",
    "PARAMETER_NAME",
    "RULE_ID",
    "DisableSpec",
    "DisabledRule",
    "DocumentSpec",
    "ExtendsSpec",
    "FindingsCount",
    "HistorySettings",
    "LevelTextSpec",
    "OverlayLog",
    "OverlayMeta",
    "PackMeta",
    "ParameterOverride",
    "ParameterSpec",
    "QuestionSpec",
    "RulePack",
    "RuleSpec",
    "SourceRef",
    "SummarySpec",
    "TextsSpec",
    "TimelineRuleSpec",
    "Translation",
    "ValueWordsSpec",
    "VersionRecord",
]

RULE_ID = r"^[a-z0-9][a-z0-9-]{1,63}$"
PARAMETER_NAME = r"^[a-z][a-z0-9_]{1,63}$"
Notes = Annotated[str, Field(min_length=1)]


def _parameters(info: ValidationInfo) -> dict[str, float]:
    """The pack parameters the loader passes as validation context (none outside it)."""
    context = info.context if isinstance(info.context, dict) else {}
    params = context.get("parameters", {})
    return dict(params) if isinstance(params, dict) else {}


def parameter_text(value: float | int) -> str:
    """A parameter's value as texts show it: as written in the pack (``38.0``, ``7``)."""
    return str(Decimal(repr(value)))


def _fill_parameters(text: str, info: ValidationInfo) -> str:
    """``{name}`` of each pack parameter in a text replaced by its value, so the text
    states the threshold it is held against even when a site changes the parameter."""
    for name, value in _parameters(info).items():
        text = text.replace("{" + name + "}", parameter_text(value))
    return text


PACK_NAME = r"^[a-z0-9][a-z0-9._-]*$"
NAME = r"^[a-z][a-z0-9_]{0,63}$"
"""Names of parameters and contact routes: they are placeholders in texts."""
ESCALATION_PLACEHOLDERS = ("count", "findings")
HISTORY_PLACEHOLDERS = ("raised_temperature_c", "raised_run_max_gap_hours")
"""The history settings a timeline rule's explanation may show (:class:`HistorySettings`)."""
Number = (Annotated[int, Field(strict=True)]
          | Annotated[float, Field(strict=True, allow_inf_nan=False)])
Text = Annotated[str, Field(min_length=1)]


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

    value: Annotated[int, Field(strict=True)] | Annotated[float, Field(allow_inf_nan=False)]
    """As written: a whole number stays one, so texts show ``7``, not ``7.0``."""
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
    explanation: TemplateText
    advice: tuple[TemplateText, ...] = Field(min_length=1)
    also_tell: tuple[TemplateText, ...] = ()
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
    reassurance: tuple[TemplateText, ...] = ()

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
    text: TemplateText
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
    apart, ending at the current check-in. The ``checkin_`` settings bound the times a
    timeline accepts (a year typo must not be weighed as a week's history).
    """

    raised_temperature_c: Annotated[float, Field(strict=True, ge=37, le=40)]
    raised_run_max_gap_hours: Annotated[float, Field(strict=True, gt=0, le=24)]
    checkin_ahead_of_clock_minutes: Annotated[float, Field(strict=True, ge=0, le=60)]
    """How far past the recorder's clock a check-in time may lie (clock skew)."""
    checkin_max_days_from_episode: Annotated[float, Field(strict=True, gt=0, le=366)]
    """How far a check-in may lie from every other check-in of its episode."""
    source: SourceRef

    def placeholders(self) -> dict[str, str]:
        """What ``{raised_temperature_c}`` and ``{raised_run_max_gap_hours}`` show in a
        timeline rule's explanation, so its text follows the setting: degrees with their
        symbol, hours as a bare number (the text says "hours" in its own language)."""
        degrees = format_number(Fraction(Decimal(repr(self.raised_temperature_c))), 2)
        hours = format_number(Fraction(Decimal(repr(self.raised_run_max_gap_hours))), 2)
        return {"raised_temperature_c": f"{degrees if '.' in degrees else degrees + '.0'} °C",
                "raised_run_max_gap_hours": hours}


class ParameterOverride(_Spec):
    """An overlay's new value for a parameter (a new parameter needs a description and a
    source, as in a full pack)."""

    value: Number
    description: str | None = Field(default=None, min_length=1)
    source: SourceRef | None = None
    notes: Notes | None = None
    acknowledge_downgrade: str | None = Field(default=None, min_length=1)


class LevelTextSpec(_Spec):
    """How a level is named, and what the patient should do at it."""

    label: Text
    action: Text


class SummarySpec(_Spec):
    """Templates of a result's one-line summary."""

    warnings: Text
    """``{level}``: ``{warnings}``. ``{action}``: the level, the warning signs, the action."""
    more: Text
    """``{warnings}`` and ``{count}`` more: when more than three warning signs are listed."""
    after_effects: Text
    """``{level}`` and ``{after_effects}``: only expected after-effects were found."""
    nothing: Text
    """``{level}``: nothing was found."""
    questions: Text
    """``{count}``: questions still to answer, appended to the summary."""


class ValueWordsSpec(_Spec):
    """How measured values are shown in explanations."""

    answer_yes: Text
    answer_no: Text
    not_answered: Text
    hours: Text
    """``{hours}`` and ``{days}``, e.g. "30 hours (about 1.3 days)"."""
    hours_one_day: Text
    """``{hours}``, when that is about one day."""


class TimelineTextsSpec(_Spec):
    """How a timeline finding names the earlier check-ins its history facts used."""

    earlier_checkins: Text
    """``{checkins}``: the sentence added to the finding's explanation."""
    checkin: Text
    """``{time}`` and ``{shows}``: one earlier check-in and what it showed."""
    temperature: Text
    """``{temperature}``: a reading, as the thermometer showed it."""
    bleeding: Text
    """``{bleeding}``: the bleeding answer, in the value words."""
    site_pain: Text
    """``{site_pain}``: the site pain score (0 to 10)."""
    low_white_cell_count: Text
    recent_chemotherapy: Text
    not_known: Text
    """A history fact no earlier check-in answered, where an explanation shows it."""


class TextsSpec(_Spec):
    """A pack's own wording outside its rules (``texts:`` in pack.yaml)."""

    levels: dict[Urgency, LevelTextSpec]
    summary: SummarySpec
    values: ValueWordsSpec
    timeline: TimelineTextsSpec | None = None
    """Required when the pack has timeline rules."""
    watch_for: dict[Annotated[str, Field(pattern=NAME)], Text] = {}
    """The warning signs every self_care result lists for the patient to watch for, by
    name (``watch_for.<name>`` in a locale file), in the order given."""

    @field_validator("levels")
    @classmethod
    def _every_level(cls, value: dict[Urgency, LevelTextSpec]) -> dict[Urgency, LevelTextSpec]:
        missing = [level.value for level in Urgency if level not in value]
        if missing:
            raise ValueError(f"every level needs a label and an action; missing: "
                             f"{', '.join(missing)}")
        return value


class VersionRecord(_Spec):
    """One released version of a pack (``changes:`` in pack.yaml): its content hash and the
    level of every rule, so that a later version can be checked against it without its files.

    Written by ``marrow-triage rules release --record``; never part of the pack's hash.
    """

    version: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    note: str | None = None
    replaced: dict[str, str] = Field(default_factory=dict)
    """Rules of the previous version that this one replaces: old rule id -> new rule id."""
    levels: dict[str, Urgency] = Field(default_factory=dict)


class PackMeta(_Spec):
    """What ``pack.yaml`` says: the pack's name, version, documents, parameters, contact
    routes, wording and history settings."""

    name: str = Field(pattern=PACK_NAME)
    version: str = Field(min_length=1)
    description: str = ""
    documents: dict[str, DocumentSpec] = Field(min_length=1)
    history: HistorySettings | None = None
    parameters: dict[Annotated[str, Field(pattern=PARAMETER_NAME)], ParameterSpec] = {}
    routes: dict[Annotated[str, Field(pattern=NAME)], str] = {}
    texts: TextsSpec
    changes: tuple[VersionRecord, ...] = ()


class ExtendsSpec(_Spec):
    """What an overlay changes: a pack by name, within a version range."""

    pack: str = Field(pattern=PACK_NAME)
    version: Text
    """A version range such as ``">=1.1,<2"`` (PEP 440 specifiers)."""
    path: str | None = Field(default=None, min_length=1)
    """The extended pack's directory, relative to the overlay's; by default the packaged
    pack (or the base directory the caller names)."""


class OverlayMeta(_Spec):
    """An overlay's ``pack.yaml``: its identity, the pack it extends, and what it sets."""

    name: str = Field(pattern=PACK_NAME)
    version: Text
    description: str = ""
    extends: ExtendsSpec
    documents: dict[str, DocumentSpec] = {}
    parameters: dict[Annotated[str, Field(pattern=PARAMETER_NAME)],
                     ParameterOverride | Number] = {}
    routes: dict[Annotated[str, Field(pattern=NAME)], str] = {}
    texts: dict[str, Any] = {}
    """Partial ``texts:`` (levels, summary, values), merged over the extended pack's."""
    changes: tuple[VersionRecord, ...] = ()
    """The overlay's own version history: each version's hash of the overlay's content
    (not the merged chain's), as ``rules release --record`` writes it."""


class DisableSpec(_Spec):
    """An overlay entry that turns a rule, timeline rule or question off."""

    id: str = Field(pattern=RULE_ID)
    reason: Text
    acknowledge_downgrade: str | None = Field(default=None, min_length=1)


@dataclass(frozen=True)
class Translation:
    """The pack's texts in one locale other than English, with routes and parameters filled.

    ``strings`` are keyed like ``rules.fever.advice``; a key missing here is shown in
    English and listed in the result's ``fallbacks``.
    """

    locale: str
    note: str
    strings: Mapping[str, str | tuple[str, ...]]
    missing: tuple[str, ...]
    unused: tuple[str, ...] = ()
    """Keys of the locale file that no English text has (a typo, or a rule since removed),
    each with where it is and a "did you mean"."""


@dataclass(frozen=True)
class DisabledRule:
    """A rule an overlay turned off."""

    id: str
    title: str
    level: Urgency
    overlay: str
    reason: str
    acknowledge_downgrade: str | None


@dataclass(frozen=True)
class OverlayLog:
    """What the overlays of a chain changed, for the catalogue and the findings."""

    changed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per rule, question, parameter or route key (``rule:fever``, ``parameter:fever_c``,
    ``route:care_team_day``, ``text:levels.urgent.action``): what changed it, in words."""
    added: Mapping[str, str] = field(default_factory=dict)
    """Rule and question ids an overlay added, with the overlay's name."""
    disabled: tuple[DisabledRule, ...] = ()
    acknowledged: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per rule id, each acknowledged downgrade that affects it (overlay and reason)."""


def _always_answered(fact: str) -> bool:
    """True for facts read from a required report field (never unanswered)."""
    field = SymptomReport.model_fields.get(FACT_FIELDS[fact].report_field)
    return field is not None and field.is_required()


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
    routes: Mapping[str, str] = field(default_factory=dict)
    """Contact routes in English, as filled by the last pack of the chain that sets each."""
    texts: Mapping[str, str] = field(default_factory=dict)
    """English wording outside the rules, keyed like ``levels.urgent.action`` (filled)."""
    translations: Mapping[str, Translation] = field(default_factory=dict)
    chain: tuple[PackRef, ...] = ()
    """The base pack, then each overlay, each with its own content hash."""
    overlays: OverlayLog = field(default_factory=OverlayLog)
    watch_for: tuple[str, ...] = ()
    """Names of the warning signs a self_care result lists (``texts.watch_for``), in order."""
    changes: tuple[VersionRecord, ...] = ()
    """The recorded version history of the outermost pack of the chain (a full pack's, or
    an overlay's own), oldest first; never part of a hash."""

    @classmethod
    def from_path(cls, path: str | Path, base: str | Path | None = None) -> RulePack:
        """Load and validate the pack (or overlay) in directory ``path``.

        An overlay's ``extends`` is resolved against ``base`` when given, else against
        the packaged pack (or its own ``extends.path``).
        """
        from marrow_triage.pack.loader import load_rule_pack  # the loader builds packs

        return load_rule_pack(path, base=base)

    @property
    def locales(self) -> tuple[str, ...]:
        """The locales the pack has texts in: ``en`` first, then the others sorted."""
        return ("en", *sorted(self.translations))

    def match_locale(self, tag: str) -> str | None:
        """The pack's locale for a language tag (``es-MX`` -> ``es``), or None."""
        wanted = tag.strip().lower().replace("_", "-")
        if wanted in self.locales:
            return wanted
        primary = wanted.split("-", 1)[0]
        return primary if primary in self.locales else None

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

    @cached_property
    def questions_to_ask(self) -> tuple[QuestionSpec, ...]:
        """The pack's questions, plus one for each fact a warning rule reads that no
        question asks for (its text is the fact's description): a field whose answer
        could raise the level is always asked, even in a pack that forgot it."""
        asked = {question.field for question in self.questions}
        missing = sorted(fact for fact in self._raising_answers
                         if fact not in asked and not _always_answered(fact))
        extra = tuple(QuestionSpec(id=f"fallback-{fact.replace('_', '-')}", field=fact,
                                   text=f"Not answered yet: {FACT_FIELDS[fact].description}")
                      for fact in missing)
        return self.questions + extra

    def raising_answers(self, fact: str) -> dict[str, Condition | bool]:
        """For an unanswered ``fact``: per report rule above self_care that some answer to
        it could make fire, what the other facts must be for that (``True``: nothing
        more). Questions are asked when one of these holds for a rule that has not fired
        and whose level is above the result's."""
        return self._raising_answers.get(fact, {})

    def needs_unanswered(self, fact: str) -> frozenset[str]:
        """Ids of the report rules that can fire only while ``fact`` is unanswered."""
        return self._needs_unanswered.get(fact, frozenset())

    @cached_property
    def _raising_answers(self) -> dict[str, dict[str, Condition | bool]]:
        found: dict[str, dict[str, Condition | bool]] = {}
        for rule in self.rules:
            if rule.when is None or rule.level is Urgency.SELF_CARE:
                continue
            for fact in condition_fields(rule.when):
                rest = residual(rule.when, fact)
                if rest is not False:
                    found.setdefault(fact, {})[rule.id] = rest
        return found

    @cached_property
    def _needs_unanswered(self) -> dict[str, frozenset[str]]:
        found: dict[str, set[str]] = {}
        for rule in self.rules:
            if rule.when is None:
                continue
            for fact in condition_fields(rule.when):
                if residual(rule.when, fact) is False:
                    found.setdefault(fact, set()).add(rule.id)
        return {fact: frozenset(ids) for fact, ids in found.items()}

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
