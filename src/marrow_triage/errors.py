"""Every error marrow_triage raises, in one hierarchy.

::

    MarrowTriageError
    ├── ReportError                  a symptom report that cannot be triaged (bad field)
    │   └── QuestionnaireResponseError   ... given as a FHIR QuestionnaireResponse
    ├── RulePackError                a rule pack that cannot be used
    │   └── ConditionError           one ``when`` tree that does not type-check
    ├── EngineError                  the engine failed on a valid report (never a result)
    ├── TimelineError                a check-in that cannot be recorded (episode id, time)
    ├── StoreError                   a timeline store that cannot be read or written
    └── CdsError                     a CDS Hooks request that cannot be served
        └── CdsAuthError             its client JWT is missing or not acceptable

Each carries ``problems``: a tuple of :class:`Problem`, the one shape that the CLI, the
HTTP service and FHIR render (one line, or one JSON object, per problem).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "MAX_LISTED_PROBLEMS",
    "CdsAuthError",
    "CdsError",
    "ConditionError",
    "EngineError",
    "MarrowTriageError",
    "Problem",
    "QuestionnaireResponseError",
    "ReportError",
    "RulePackError",
    "StoreError",
    "TimelineError",
]


MAX_LISTED_PROBLEMS = 20
"""How many problems an error lists; the rest are counted, not listed (nor looked for).

A body of 30,000 misspelt keys must cost a small answer, not 30,000 lines each with a
spelling suggestion."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong, and where.

    ``field`` is the dotted path of the field at fault (``temperature.value``, a FHIR
    linkId, ``when.any[2].site_pain``), or None for the input as a whole. Rule-pack
    problems also name the ``file`` and, when there is one, the ``rule_id``.
    """

    field: str | None
    message: str
    file: str | None = None
    rule_id: str | None = None

    @classmethod
    def in_pack(cls, file: str, rule_id: str | None, field: str, message: str) -> Problem:
        """A problem in a rule pack file (and rule, when there is one)."""
        return cls(field, message, file, rule_id)

    @property
    def link_id(self) -> str | None:
        """The FHIR linkId at fault: the same as ``field``."""
        return self.field

    def as_dict(self) -> dict[str, str]:
        """The JSON shape of a problem (keys with no value are left out)."""
        out = {"field": self.field, "message": self.message, "file": self.file,
               "rule_id": self.rule_id}
        return {k: v for k, v in out.items() if v is not None}

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file)
        if self.rule_id is not None:
            where.append(f" rule {self.rule_id!r}")
        if self.field:
            where.append(f" {self.field}" if where else self.field)
        return f"{':'.join(where)}: {self.message}" if where else self.message


class MarrowTriageError(Exception):
    """The base of every error marrow_triage raises; ``problems`` says what and where."""

    def __init__(self, message: str, problems: Iterable[Problem] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[Problem, ...] = tuple(problems)


class ReportError(MarrowTriageError, ValueError):
    """A symptom report that cannot be triaged: one problem per bad field."""

    def __init__(self, problems: Iterable[Problem], message: str | None = None) -> None:
        problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(message or f"invalid symptom report:\n{lines}", problems)


class QuestionnaireResponseError(ReportError):
    """A QuestionnaireResponse that cannot be read as a symptom report (problems by linkId)."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            problems, f"QuestionnaireResponse cannot be read as a symptom report:\n{lines}"
        )


class RulePackError(MarrowTriageError, ValueError):
    """A rule pack that cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        problems = tuple(problems)
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"invalid rule pack ({len(problems)} problem(s)):\n{lines}", problems)


class ConditionError(RulePackError):
    """A condition that does not type-check; ``path`` says where inside ``when``."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__([Problem(path, message)])
        self.args = (f"{path}: {message}",)
        self.path = path
        self.message = message


class EngineError(MarrowTriageError, RuntimeError):
    """The rule engine failed on a valid report. Never returned as a result."""

    def __init__(self, message: str, problems: Iterable[Problem] = ()) -> None:
        super().__init__(message, problems)


class TimelineError(MarrowTriageError, ValueError):
    """A check-in that cannot be recorded (bad episode id or time)."""

    def __init__(self, message: str, problems: Iterable[Problem] = ()) -> None:
        super().__init__(message, problems or [Problem(None, message)])


class StoreError(MarrowTriageError):
    """A timeline store that cannot be opened, read or written as asked."""

    def __init__(self, message: str, problems: Iterable[Problem] = ()) -> None:
        super().__init__(message, problems or [Problem(None, message)])


class CdsError(MarrowTriageError):
    """A CDS Hooks request that cannot be served; the message says why."""

    def __init__(self, message: str, problems: Iterable[Problem] = ()) -> None:
        super().__init__(message, problems or [Problem(None, message)])


class CdsAuthError(CdsError):
    """A CDS client's JWT was missing or not acceptable; the message says why."""
