"""The fact schema: the named, typed values that rules may test, derived from a report.

Rules never read a :class:`~marrow_triage.models.SymptomReport` directly. They test these
facts, and the rule loader type-checks every condition against this schema, so a rule
about ``temprature_c`` or ``bleeding: heavy`` fails at load time with a suggestion.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType
from typing import Literal

from marrow_triage.models import (
    TEMPERATURE_LIMITS,
    Bleeding,
    Bruising,
    NauseaOrVomiting,
    PainTrend,
    SiteDischarge,
    SymptomReport,
    TemperatureUnit,
)
from marrow_triage.units import celsius, exact

__all__ = [
    "FACT_FIELDS",
    "HISTORY_FACT_FIELDS",
    "READ_PLAN",
    "TIMELINE_FACT_FIELDS",
    "FactField",
    "FactValue",
    "report_facts",
]

FactKind = Literal["number", "integer", "boolean", "enum", "text"]
"""``text`` is free text that is never interpreted: rules may only test ``missing``."""
FactValue = Fraction | int | bool | str


@dataclass(frozen=True)
class FactField:
    """One value that rules may test."""

    name: str
    kind: FactKind
    description: str
    values: tuple[str, ...] = ()
    """Allowed values, most benign first, for ``enum`` fields."""
    minimum: Fraction | None = None
    maximum: Fraction | None = None
    report_field: str = ""
    """The report field it is read from (``temperature`` for ``temperature_c``)."""
    unit: str = ""
    """How an explanation states a threshold of it: ``°C``, ``/10`` (pain scores),
    ``hours``, ``minutes``, or ``""`` for a plain count."""


def _enum(name: str, kind: type[enum.Enum], description: str) -> FactField:
    values = tuple(str(m.value) for m in kind)
    return FactField(name, "enum", description, values, report_field=name)


def _flag(name: str, description: str) -> FactField:
    return FactField(name, "boolean", description, report_field=name)


def _pain(name: str, description: str) -> FactField:
    return FactField(name, "integer", description, minimum=Fraction(0), maximum=Fraction(10),
                     report_field=name, unit="/10")


FACT_FIELDS: Mapping[str, FactField] = MappingProxyType({
    f.name: f
    for f in (
        FactField("hours_since_procedure", "number", "Hours since the procedure.",
                  minimum=Fraction(0), report_field="hours_since_procedure", unit="hours"),
        FactField("temperature_c", "number", "Temperature in °C (exact, from °C or °F).",
                  minimum=exact(TEMPERATURE_LIMITS[TemperatureUnit.CELSIUS][0]),
                  maximum=exact(TEMPERATURE_LIMITS[TemperatureUnit.CELSIUS][1]),
                  report_field="temperature", unit="°C"),
        _enum("bleeding", Bleeding, "Bleeding at the needle site."),
        _enum("site_discharge", SiteDischarge, "Fluid from the needle site."),
        _pain("site_pain", "Pain at the needle site, 0 to 10."),
        _pain("back_or_abdominal_pain", "Pain in the back or abdomen, 0 to 10."),
        _enum("pain_trend", PainTrend, "How site pain has changed."),
        _flag("chills", "Chills or shivering."),
        _flag("feels_feverish", "Feeling hot or feverish."),
        _flag("site_redness", "Redness around the site."),
        _flag("site_swelling", "Swelling around the site."),
        _flag("site_warmth", "Warmth at the site."),
        _enum("bruising", Bruising, "Bruising around the site."),
        _flag("pain_down_back_of_leg", "Pain down the back of the leg."),
        _flag("dizziness_or_fainting", "Dizziness or fainting."),
        _flag("chest_pain", "Chest pain."),
        _flag("breathlessness", "Breathlessness."),
        _flag("new_confusion", "New confusion."),
        _flag("low_white_cell_count", "Known low white cell count."),
        _flag("recent_chemotherapy", "Chemotherapy in the last 6 weeks."),
        _flag("blood_thinners", "Takes blood thinners."),
        _flag("low_platelet_count", "Known low platelet count."),
        _flag("received_sedation", "Had conscious sedation."),
        _flag("generally_unwell", "Feeling generally unwell."),
        _enum("nausea_or_vomiting", NauseaOrVomiting,
              "Feeling or being sick, and whether fluids stay down."),
        _flag("cough", "A cough."),
        _flag("sore_throat", "A sore throat."),
        _flag("headache", "A headache."),
        _flag("leg_numbness_or_weakness", "New numbness or weakness in a leg."),
        _flag("rash", "A new rash or spots on the skin."),
        _flag("burning_or_frequent_urination", "Burning or frequent urination."),
        _flag("diarrhoea", "Diarrhoea."),
        _flag("bleeding_elsewhere", "Bleeding from the nose or gums, or in urine or stool."),
        _flag("took_fever_reducing_medicine",
              "Took a fever-reducing medicine in the last few hours."),
        FactField("other_concern", "text",
                  "Anything else the patient is worried about, in their own words; never "
                  "interpreted (rules may only test whether it is given).",
                  report_field="other_concern"),
    )
})


HISTORY_FACT_FIELDS: Mapping[str, FactField] = MappingProxyType({
    f.name: f
    for f in (
        FactField("raised_temperature_minutes", "number",
                  "Minutes from the first reading to this one in the unbroken run of "
                  "readings at or above history.raised_temperature_c (pack.yaml) ending "
                  "at this check-in, no two more than history.raised_run_max_gap_hours "
                  "apart; absent unless this reading is at or above the cut-off.",
                  minimum=Fraction(0), unit="minutes"),
        FactField("max_earlier_temperature_c", "number",
                  "Highest temperature (°C) taken at an earlier check-in of the episode.",
                  minimum=Fraction(30), maximum=Fraction(45), unit="°C"),
        _enum("worst_earlier_bleeding", Bleeding,
              "Worst bleeding reported at an earlier check-in of the episode."),
        FactField("site_pain_rises", "integer",
                  "How many times in a row site pain has risen, over the check-ins that "
                  "answered it, ending at this one (0 when it did not rise).",
                  minimum=Fraction(0)),
        FactField("neutropenia_risk_in_history", "boolean",
                  "A low white cell count or recent chemotherapy was reported at this or "
                  "any earlier check-in of the episode."),
        FactField("earlier_checkins", "integer",
                  "Number of earlier check-ins in the episode.", minimum=Fraction(0)),
    )
})
"""History-derived facts that timeline rules may test, computed from stored check-ins."""

TIMELINE_FACT_FIELDS: Mapping[str, FactField] = MappingProxyType(
    {**FACT_FIELDS, **HISTORY_FACT_FIELDS}
)
"""What a timeline rule may test: the current check-in's facts and the history facts."""


READ_PLAN = tuple((f.name, f.report_field, f.kind) for f in FACT_FIELDS.values())
"""Fact name, report field and kind of every report fact, in schema order."""
_READ_PLAN_BY_NAME = MappingProxyType({plan[0]: plan for plan in READ_PLAN})


def report_facts(report: SymptomReport,
                 names: Collection[str] | None = None) -> dict[str, FactValue]:
    """The facts a report states, exactly (only those in ``names``, when given). Fields
    the patient did not answer are absent."""
    facts: dict[str, FactValue] = {}
    plan = READ_PLAN if names is None else [_READ_PLAN_BY_NAME[name] for name in names]
    for name, report_field, kind in plan:
        raw = getattr(report, report_field)
        if raw is None:
            continue
        if kind == "number":
            facts[name] = celsius(raw) if name == "temperature_c" else exact(raw)
        elif kind == "enum":
            facts[name] = str(raw.value)
        else:
            facts[name] = raw
    return facts
