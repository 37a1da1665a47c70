"""The data that crosses the public API: the symptom report in, the triage result out.

Every model rejects unknown fields, so a misspelt field name is an error rather than a
silently ignored symptom. Numbers are strict: ``true`` is not a pain score and ``"38"``
is not a temperature.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from itertools import islice
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from marrow_triage.errors import MAX_LISTED_PROBLEMS, ReportValidationError, validation_problems

__all__ = [
    "AuditRecord",
    "Bleeding",
    "Bruising",
    "Finding",
    "NauseaOrVomiting",
    "PackRef",
    "PainTrend",
    "Question",
    "RulesetInfo",
    "SiteDischarge",
    "Source",
    "SymptomReport",
    "Temperature",
    "TemperatureUnit",
    "TriageResult",
    "Urgency",
    "invalid_report",
    "listed_errors",
]


class Urgency(enum.StrEnum):
    """How soon the patient needs care, ordered ``self_care < soon < urgent < emergency``."""

    SELF_CARE = "self_care"
    SOON = "soon"
    URGENT = "urgent"
    EMERGENCY = "emergency"

    @property
    def rank(self) -> int:
        """Position in the order, 0 for ``self_care`` up to 3 for ``emergency``."""
        return _URGENCY_RANKS[self]

    @property
    def action(self) -> str:
        """What the level means, in one generic sentence (a code system's definition).

        A result's ``action`` is the rule pack's wording instead, with the pack's contact
        routes filled in and in the result's locale.
        """
        return _URGENCY_ACTIONS[self]

    @property
    def label(self) -> str:
        """Short human label, e.g. ``"Emergency"``."""
        return self.value.replace("_", " ").capitalize()

    def __lt__(self, other: object) -> bool:
        if other.__class__ is Urgency:  # the common case, kept cheap: results sort by level
            return _URGENCY_RANKS[self] < _URGENCY_RANKS[other]
        rank = _rank_of(other)
        if rank is None:
            return NotImplemented
        return self.rank < rank

    def __le__(self, other: object) -> bool:
        if other.__class__ is Urgency:  # the common case, kept cheap: results sort by level
            return _URGENCY_RANKS[self] <= _URGENCY_RANKS[other]
        rank = _rank_of(other)
        if rank is None:
            return NotImplemented
        return self.rank <= rank

    def __gt__(self, other: object) -> bool:
        if other.__class__ is Urgency:  # the common case, kept cheap: results sort by level
            return _URGENCY_RANKS[self] > _URGENCY_RANKS[other]
        rank = _rank_of(other)
        if rank is None:
            return NotImplemented
        return self.rank > rank

    def __ge__(self, other: object) -> bool:
        if other.__class__ is Urgency:  # the common case, kept cheap: results sort by level
            return _URGENCY_RANKS[self] >= _URGENCY_RANKS[other]
        rank = _rank_of(other)
        if rank is None:
            return NotImplemented
        return self.rank >= rank

    # Hash as the level name (as ``hash(self.value)`` would), in C: levels key hot dicts.
    __hash__ = str.__hash__

    def __str__(self) -> str:
        return self.value


def _rank_of(other: object) -> int | None:
    """Rank of an Urgency or of a level name such as ``"urgent"``.

    Without this, ``Urgency.EMERGENCY >= "urgent"`` would fall back to comparing the
    strings alphabetically and be False. An unknown level name raises ValueError.
    """
    if isinstance(other, Urgency):
        return other.rank
    if isinstance(other, str):
        return Urgency(other).rank
    return None


_URGENCY_ORDER = (Urgency.SELF_CARE, Urgency.SOON, Urgency.URGENT, Urgency.EMERGENCY)
_URGENCY_RANKS = {level: rank for rank, level in enumerate(_URGENCY_ORDER)}
_URGENCY_ACTIONS = {
    Urgency.EMERGENCY: "Call emergency services now.",
    Urgency.URGENT: "Call your care team now, day or night.",
    Urgency.SOON: "Contact your care team within 24 hours.",
    # Not "an expected after-effect": a report with nothing in it expects nothing.
    Urgency.SELF_CARE: (
        "Nothing you reported needs a call now: care for yourself at home and watch for "
        "the warning signs."
    ),
}


class TemperatureUnit(enum.StrEnum):
    """Unit of a temperature reading."""

    CELSIUS = "C"
    FAHRENHEIT = "F"


class Bleeding(enum.StrEnum):
    """Bleeding at the needle site, from least to most worrying."""

    NONE = "none"
    SPOTS_ON_DRESSING = "spots_on_dressing"
    STOPS_WITH_PRESSURE = "stops_with_pressure"
    SOAKS_DRESSING = "soaks_dressing"
    DOES_NOT_STOP = "does_not_stop"


class SiteDischarge(enum.StrEnum):
    """Fluid from the needle site; ``unusual`` means cloudy, pus or foul-smelling."""

    NONE = "none"
    CLEAR = "clear"
    UNUSUAL = "unusual"


class Bruising(enum.StrEnum):
    """Bruising around the needle site."""

    NONE = "none"
    MILD = "mild"
    LARGE_OR_SPREADING = "large_or_spreading"


class PainTrend(enum.StrEnum):
    """How pain at the site has changed since the last check."""

    BETTER = "better"
    SAME = "same"
    WORSE = "worse"


class NauseaOrVomiting(enum.StrEnum):
    """Feeling sick or being sick, from least to most worrying."""

    NONE = "none"
    NAUSEA = "nausea"
    VOMITING_KEEPING_FLUIDS_DOWN = "vomiting_keeping_fluids_down"
    CANNOT_KEEP_FLUIDS_DOWN = "cannot_keep_fluids_down"


# Plausible ranges of a body temperature taken at home. Outside them the reading is a
# typo or a broken thermometer, and triaging it would give a confident wrong answer.
_CELSIUS_LIMITS = (30.0, 45.0)
TEMPERATURE_LIMITS: Mapping[TemperatureUnit, tuple[float, float]] = MappingProxyType({
    TemperatureUnit.CELSIUS: _CELSIUS_LIMITS,
    TemperatureUnit.FAHRENHEIT: (_CELSIUS_LIMITS[0] * 9 / 5 + 32, _CELSIUS_LIMITS[1] * 9 / 5 + 32),
})
"""Per unit, the lowest and highest reading accepted (the fact schema's range too)."""
MAX_HOURS_SINCE_PROCEDURE = 24 * 365
MAX_OTHER_CONCERN_LENGTH = 1000
"""Longest free-text concern accepted: a message for a person to read, not a document."""

_Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]
PainScore = Annotated[int, Field(strict=True, ge=0, le=10)]
Flag = Annotated[bool, Field(strict=True)]
ConcernText = Annotated[
    str, Field(strict=True, min_length=1, max_length=MAX_OTHER_CONCERN_LENGTH)
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


_TOO_MANY = "too_many_unknown_fields"


class _InputModel(_Model):
    """An input model: past ``MAX_LISTED_PROBLEMS`` unknown keys, validation stops.

    pydantic reports every unknown key, and every caller renders each one: 30,000 keys
    made a 2.6 MB answer. Beyond the limit the first keys are listed, the rest counted,
    and the known fields are not validated at all (the input is wrong either way).
    """

    @model_validator(mode="wrap")
    @classmethod
    def _few_unknown_keys(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # Fast path: with this few keys there cannot be too many unknown ones.
        if not isinstance(data, dict) or len(data) <= MAX_LISTED_PROBLEMS:
            return handler(data)
        fields = cls.model_fields
        # Counted through the few fields, not the many keys: the work stays bounded too.
        unknown = len(data) - sum(1 for name in fields if name in data)
        if unknown <= MAX_LISTED_PROBLEMS:
            return handler(data)
        first = islice((key for key in data if key not in fields), MAX_LISTED_PROBLEMS)
        listed = [
            InitErrorDetails(type="extra_forbidden", loc=(key,), input=data[key])
            for key in first
        ]
        rest = unknown - MAX_LISTED_PROBLEMS
        listed.append(InitErrorDetails(
            type=PydanticCustomError(
                _TOO_MANY,
                "and {rest} more unknown field(s), not listed; validation stopped",
                {"rest": rest},
            ),
            loc=(),
            input=None,
        ))
        raise ValidationError.from_exception_data(cls.__name__, listed)


def listed_errors(
    errors: Iterable[Mapping[str, Any]], limit: int = MAX_LISTED_PROBLEMS
) -> tuple[list[Mapping[str, Any]], int]:
    """The validation errors to list (at most ``limit``) and how many more there are.

    Takes pydantic's error dicts (``ValidationError.errors()``); the count includes the
    unknown keys an input model counted without listing.
    """
    listed: list[Mapping[str, Any]] = []
    rest = 0
    for error in errors:
        if error.get("type") == _TOO_MANY:
            rest += int((error.get("ctx") or {}).get("rest", 0))
        elif len(listed) < limit:
            listed.append(error)
        else:
            rest += 1
    return listed, rest


class Temperature(_InputModel):
    """A temperature reading in degrees Celsius or Fahrenheit."""

    value: _Finite = Field(description="The reading as shown on the thermometer.")
    unit: TemperatureUnit = Field(description='"C" for Celsius, "F" for Fahrenheit.')

    @model_validator(mode="after")
    def _plausible(self) -> Temperature:
        low, high = TEMPERATURE_LIMITS[self.unit]
        if not low <= self.value <= high:
            # The reading itself is not repeated: error answers never echo a report.
            raise ValueError(
                f"not a plausible body temperature (expected {low:g} to {high:g} "
                f"°{self.unit.value})"
            )
        return self


class SymptomReport(_InputModel):
    """What the patient reports at one check-in after the procedure.

    Only ``hours_since_procedure`` is required. A symptom field left out means "not
    asked or not answered", never "absent": the result asks about missing data that
    matters instead of assuming all is well.
    """

    hours_since_procedure: _Finite = Field(
        ge=0, le=MAX_HOURS_SINCE_PROCEDURE, description="Hours since the procedure."
    )
    temperature: Temperature | None = Field(
        default=None, description="Latest temperature reading, if one was taken."
    )
    bleeding: Bleeding | None = Field(default=None, description="Bleeding at the needle site.")
    site_discharge: SiteDischarge | None = Field(
        default=None, description="Fluid from the needle site (unusual = cloudy, pus, smelly)."
    )
    site_pain: PainScore | None = Field(
        default=None, description="Pain at the needle site, 0 (none) to 10 (worst)."
    )
    back_or_abdominal_pain: PainScore | None = Field(
        default=None, description="Pain in the back, side (flank) or abdomen, 0 to 10."
    )
    pain_trend: PainTrend | None = Field(
        default=None, description="How site pain has changed since the last check."
    )
    chills: Flag | None = Field(default=None, description="Chills or shivering.")
    feels_feverish: Flag | None = Field(default=None, description="Feeling hot or feverish.")
    site_redness: Flag | None = Field(default=None, description="Redness around the site.")
    site_swelling: Flag | None = Field(default=None, description="Swelling around the site.")
    site_warmth: Flag | None = Field(default=None, description="The site feels warm or hot.")
    bruising: Bruising | None = Field(default=None, description="Bruising around the site.")
    pain_down_back_of_leg: Flag | None = Field(
        default=None, description="Pain running down the back of the leg."
    )
    dizziness_or_fainting: Flag | None = Field(
        default=None, description="Feeling dizzy or light-headed, or fainting."
    )
    chest_pain: Flag | None = Field(default=None, description="Chest pain or tightness.")
    breathlessness: Flag | None = Field(
        default=None, description="Short of breath or struggling to breathe."
    )
    new_confusion: Flag | None = Field(
        default=None, description="New confusion, or unusually hard to wake."
    )
    low_white_cell_count: Flag | None = Field(
        default=None, description="The care team has said the white cell count is low."
    )
    recent_chemotherapy: Flag | None = Field(
        default=None, description="Chemotherapy in the last 6 weeks."
    )
    blood_thinners: Flag | None = Field(
        default=None, description="Takes blood thinners (anticoagulant or antiplatelet)."
    )
    low_platelet_count: Flag | None = Field(
        default=None, description="The care team has said the platelet count is low."
    )
    received_sedation: Flag | None = Field(
        default=None, description="Had conscious (twilight) sedation for the procedure."
    )
    generally_unwell: Flag | None = Field(
        default=None, description="Feeling generally unwell."
    )
    nausea_or_vomiting: NauseaOrVomiting | None = Field(
        default=None,
        description="Feeling sick or being sick, and whether fluids stay down.",
    )
    cough: Flag | None = Field(default=None, description="A cough.")
    sore_throat: Flag | None = Field(default=None, description="A sore throat.")
    headache: Flag | None = Field(default=None, description="A headache.")
    leg_numbness_or_weakness: Flag | None = Field(
        default=None, description="New numbness or weakness in a leg."
    )
    rash: Flag | None = Field(default=None, description="A new rash or spots on the skin.")
    burning_or_frequent_urination: Flag | None = Field(
        default=None, description="Burning when passing urine, or passing urine more often."
    )
    diarrhoea: Flag | None = Field(default=None, description="Diarrhoea (loose, watery stools).")
    bleeding_elsewhere: Flag | None = Field(
        default=None,
        description="Bleeding anywhere other than the needle site: nose, gums, or blood in "
        "urine or stool.",
    )
    took_fever_reducing_medicine: Flag | None = Field(
        default=None,
        description="Took a medicine that lowers a temperature (paracetamol/acetaminophen, "
        "ibuprofen, aspirin) in the last few hours; it can hide a fever.",
    )
    other_concern: ConcernText | None = Field(
        default=None,
        description="Anything else the patient is worried about, in their own words. Never "
        "interpreted: a person must read it. Blank text counts as not answered.",
    )

    @field_validator("other_concern", mode="before")
    @classmethod
    def _blank_concern_is_unanswered(cls, value: object) -> object:
        # An empty text box is "nothing to add", not a concern for a nurse to read.
        if isinstance(value, str) and not value.strip():
            return None
        return value


class Source(_Model):
    """Where a rule comes from: the document, its section and the sentence it encodes."""

    document: str = Field(description="Identifier of the document in the rule pack.")
    title: str = Field(description="Title of the document.")
    publisher: str
    url: str | None = None
    section: str
    quote: str = Field(description="The sentence the rule encodes.")
    verbatim: bool = Field(description="True when `quote` is the document's exact words.")


class Finding(_Model):
    """One rule that fired, with its reasoning shown in plain language."""

    rule_id: str
    level: Urgency
    explanation: str = Field(description="The measured value against the threshold.")
    advice: tuple[str, ...] = ()
    source: Source
    based_on: tuple[str, ...] = Field(
        default=(), description="Rule ids of the findings an escalation rule combined."
    )
    acknowledged_downgrades: tuple[str, ...] = Field(
        default=(),
        description="Why a site overlay made this rule less cautious than its base pack "
        "(each overlay's `acknowledge_downgrade` reason for this rule or a parameter it "
        "uses); empty when no overlay did.",
    )


class Question(_Model):
    """Something the patient was not asked whose answer could raise the level."""

    field: str = Field(
        description="The report field to answer: a SymptomReport field name and the FHIR "
        "Questionnaire linkId.")
    text: str


class PackRef(_Model):
    """One pack of a chain: a full pack, or an overlay that changes the pack before it."""

    name: str
    version: str
    sha256: str = Field(description="SHA-256 of this pack's own canonical content.")


class RulesetInfo(_Model):
    """Identity of the rule pack that produced a result.

    ``name`` and ``version`` are the outermost pack's (the overlay a site runs, or the full
    pack when there is no overlay); ``sha256`` identifies the merged rules that ran;
    ``chain`` lists the base pack and then each overlay, in the order they apply.
    """

    name: str
    version: str
    sha256: str
    chain: tuple[PackRef, ...] = ()


class TriageResult(_Model):
    """An urgency level with every finding that explains it."""

    level: Urgency
    level_label: str = Field(default="", description="The level's name in `locale`.")
    action: str = Field(description="What to do now, for this level, with the contact route "
                        "filled in.")
    summary: str = Field(description="One line for a nurse's screen.")
    findings: tuple[Finding, ...] = ()
    advice: tuple[str, ...] = ()
    reassurance: tuple[str, ...] = ()
    questions: tuple[Question, ...] = ()
    ruleset: RulesetInfo
    locale: str = Field(default="en", description="Language of the patient-facing texts.")
    fallbacks: tuple[str, ...] = Field(
        default=(),
        description="Texts shown in English because the pack has no translation of them "
        "in `locale` (keys such as `rules.fever.advice`).",
    )


class AuditRecord(_Model):
    """What an app stores to show later why a patient was told what they were told."""

    kind: Literal["marrow_triage.audit/1"] = "marrow_triage.audit/1"
    recorded_at: AwareDatetime
    library_version: str
    ruleset: RulesetInfo
    report: SymptomReport
    result: TriageResult


def invalid_report(exc: ValidationError) -> ReportValidationError:
    """pydantic's error for a :class:`SymptomReport` as the library's
    :class:`~marrow_triage.errors.ReportValidationError`: at most ``MAX_LISTED_PROBLEMS``
    problems (unknown fields with a "did you mean"), the rest counted."""
    listed, rest = listed_errors(exc.errors(include_url=False, include_input=False))
    problems = validation_problems(listed, known_fields=_known_report_fields)
    return ReportValidationError.wrapping(exc, problems, unlisted=rest)


def _known_report_fields(parent: tuple[int | str, ...]) -> tuple[str, ...]:
    if not parent:
        return tuple(SymptomReport.model_fields)
    if parent == ("temperature",):
        return tuple(Temperature.model_fields)
    return ()
