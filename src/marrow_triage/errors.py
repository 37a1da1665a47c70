"""Every error marrow_triage raises, in one hierarchy.

::

    MarrowTriageError
    ├── ReportError                  a symptom report that cannot be triaged (bad field)
    │   ├── ReportValidationError    ... as the engine raises it (also a pydantic.ValidationError)
    │   ├── QuestionnaireResponseError   ... given as a FHIR QuestionnaireResponse
    │   ├── DuplicateKeyError            ... given as JSON with a key given twice
    │   └── BatchReportError             ... in a batch (``index`` says which report)
    ├── RulePackError                a rule pack that cannot be used
    │   └── ConditionError           one ``when`` tree that does not type-check
    ├── LocaleError                  a language the rule pack has no texts in
    ├── EngineError                  the engine failed on a valid report (never a result)
    ├── TimelineError                a check-in that cannot be recorded (episode id, time)
    │   └── CheckInConflictError     its checkin_id was recorded with other content
    ├── StoreError                   a timeline store that cannot be read or written
    ├── CdsError                     a CDS Hooks request that cannot be served
    │   ├── CdsAuthError             its client JWT is missing or not acceptable
    │   └── CdsPrefetchError         the data it needs was not prefetched (HTTP 412)
    └── InstallError                 a part that cannot be imported as installed (an
                                     ImportError whose one-line message says what to do)

Each carries ``problems``: a tuple of :class:`Problem`, the one shape that the CLI, the
HTTP service and FHIR render (one line, or one JSON object, per problem).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast, get_args

import pydantic_core
import pydantic_core.core_schema

__all__ = [
    "MAX_LISTED_PROBLEMS",
    "BatchReportError",
    "CdsAuthError",
    "CdsError",
    "CdsPrefetchError",
    "CheckInConflictError",
    "ConditionError",
    "DuplicateKeyError",
    "EngineError",
    "InstallError",
    "LocaleError",
    "MarrowTriageError",
    "Problem",
    "QuestionnaireResponseError",
    "ReportError",
    "ReportValidationError",
    "RulePackError",
    "StoreError",
    "TimelineError",
    "suggest",
    "validation_problems",
]

MAX_FIELD_NAME = 60
"""Longer field names (unknown keys) are cut when shown: a problem never echoes megabytes."""


def suggest(name: str, known: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` when a close match exists, else ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


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


class DuplicateKeyError(ReportError):
    """JSON that gives one key two values, which JSON readers would silently resolve to
    one; ``paths`` holds each duplicated key's path (keys and list indices)."""

    def __init__(self, problems: Iterable[Problem],
                 paths: Iterable[tuple[str | int, ...]]) -> None:
        problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(problems, f"JSON with a duplicated key:\n{lines}")
        self.paths: tuple[tuple[str | int, ...], ...] = tuple(paths)


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


class LocaleError(MarrowTriageError, ValueError):
    """A locale the rule pack has no texts in; ``locales`` are those it has."""

    def __init__(self, locale: str, locales: Iterable[str]) -> None:
        self.locale = locale
        self.locales = tuple(locales)
        message = (f"no texts in locale {locale!r}; this rule pack has "
                   f"{', '.join(self.locales)}")
        super().__init__(message, [Problem("locale", message)])


class EngineError(MarrowTriageError, RuntimeError):
    """The rule engine failed on a valid report. Never returned as a result."""

    def __init__(self, message: str, problems: Iterable[Problem] = ()) -> None:
        super().__init__(message, problems)


class TimelineError(MarrowTriageError, ValueError):
    """A check-in that cannot be recorded (bad episode id or time)."""

    def __init__(self, message: str, problems: Iterable[Problem] = ()) -> None:
        super().__init__(message, problems or [Problem(None, message)])


class CheckInConflictError(TimelineError):
    """A ``checkin_id`` already recorded for the episode with another time or report."""


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


class CdsPrefetchError(CdsError):
    """The CDS client did not send the data a hook call needs (prefetch key left out, or
    an OperationOutcome saying the prefetch failed): CDS Hooks answers 412."""


KnownFields = Callable[[tuple[int | str, ...]], Iterable[str]]
"""The field names allowed under a location (for "did you mean" on unknown fields)."""


def validation_problems(errors: Iterable[Mapping[str, Any]], *,
                        known_fields: KnownFields | None = None) -> tuple[Problem, ...]:
    """One :class:`Problem` per pydantic error: the dotted field path and the message.

    Odd field names (empty, spaces, control characters) are shown quoted and long ones
    cut; an unknown field gets a "did you mean" from ``known_fields`` of its parent.
    """
    problems = []
    for error in errors:
        loc: Sequence[int | str] = tuple(error.get("loc", ()))
        path = ".".join(_shown(part) for part in loc) or None
        message = str(error.get("msg", "invalid"))
        if error.get("type") == "extra_forbidden" and loc and known_fields is not None:
            message += suggest(str(loc[-1]), known_fields(tuple(loc[:-1])))
        problems.append(Problem(path, message))
    return tuple(problems)


def _shown(part: int | str) -> str:
    if not isinstance(part, str):
        return str(part)
    name = part
    if len(name) > MAX_FIELD_NAME:
        name = f"{name[:MAX_FIELD_NAME]}… ({len(name)} characters)"
    return name if name.isidentifier() else json.dumps(name, ensure_ascii=True)


class ReportValidationError(ReportError, pydantic_core.ValidationError):
    """An invalid report, as :meth:`~marrow_triage.TriageEngine.triage` raises it.

    A :class:`ReportError` with one problem per bad field (at most
    ``MAX_LISTED_PROBLEMS``; ``unlisted`` counts the rest). It is also the
    ``pydantic.ValidationError`` that ``triage`` raised before this hierarchy existed
    (same ``errors()``), so callers catching that keep working; pydantic's error is its
    ``__cause__``. Its message names fields and never quotes the values given.
    """

    unlisted: int = 0
    """How many more problems there were than are listed in ``problems``."""

    def __init__(self, *_pydantic_args: object) -> None:
        # pydantic builds the instance (from_exception_data, or unpickling) and passes its
        # own arguments; the problems are read back from the errors.
        errors = self.errors(include_url=False, include_input=False)
        ReportError.__init__(self, validation_problems(errors[:MAX_LISTED_PROBLEMS]))
        self.unlisted = max(0, len(errors) - MAX_LISTED_PROBLEMS)

    @classmethod
    def wrapping(cls, exc: pydantic_core.ValidationError, problems: Iterable[Problem],
                 unlisted: int = 0) -> ReportValidationError:
        """This error for pydantic's ``exc`` (its ``__cause__``), listing ``problems``."""
        error = cls.from_exception_data(exc.title, [
            _init_details(e) for e in exc.errors(include_url=False)])
        ReportError.__init__(error, problems)
        error.unlisted = unlisted
        error.__cause__ = exc
        return error

    def __reduce__(self) -> tuple[Any, ...]:
        # pydantic's own reduce rebuilds from the errors alone: keep the problems as listed.
        return _rebuilt_report_error, (self.title, _reduced_errors(self), self.problems,
                                       self.unlisted)

    def __str__(self) -> str:
        more = f"\n  ... and {self.unlisted} more problem(s)" if self.unlisted else ""
        return f"{self.args[0]}{more}"


def _reduced_errors(error: pydantic_core.ValidationError) -> list[pydantic_core.InitErrorDetails]:
    return [_init_details(e) for e in error.errors(include_url=False)]


def _rebuilt_report_error(title: str, details: list[pydantic_core.InitErrorDetails],
                          problems: tuple[Problem, ...], unlisted: int) -> ReportValidationError:
    error = ReportValidationError.from_exception_data(title, details)
    ReportError.__init__(error, problems)
    error.unlisted = unlisted
    return error


_PYDANTIC_ERROR_TYPES = frozenset(get_args(pydantic_core.core_schema.ErrorType))


def _init_details(error: Mapping[str, Any]) -> pydantic_core.InitErrorDetails:
    """An error of ``ValidationError.errors()`` in the form that rebuilds it."""
    kind = error["type"]
    details: dict[str, Any] = {"type": kind, "loc": error["loc"], "input": error.get("input")}
    if error.get("ctx") is not None:
        details["ctx"] = error["ctx"]
    if kind not in _PYDANTIC_ERROR_TYPES:  # a model's own error: kept with its message
        # The message is already rendered: its context fills no placeholder again.
        details["type"] = pydantic_core.PydanticCustomError(kind, error["msg"],
                                                            error.get("ctx"))
        details.pop("ctx", None)
    return cast("pydantic_core.InitErrorDetails", details)


class BatchReportError(ReportValidationError):
    """Reports in a batch that cannot be triaged; nothing of the batch was triaged.

    ``index`` is the position of the first invalid report, ``indices`` of every one; each
    problem's field starts with the report's position (``[3].site_pain``), and so does
    each pydantic error's ``loc`` (``(3, "site_pain")``).
    """

    indices: tuple[int, ...] = ()
    index: int = 0

    @classmethod
    def of(cls, failures: Sequence[tuple[int, ReportValidationError]]) -> BatchReportError:
        """The error for a batch whose reports at these indices failed as given."""
        error = cls.from_exception_data("SymptomReport", [
            _init_details({**e, "loc": (index, *e["loc"])})
            for index, failure in failures for e in failure.errors(include_url=False)])
        problems = tuple(
            Problem(f"[{index}].{p.field}" if p.field else f"[{index}]", p.message)
            for index, failure in failures for p in failure.problems)
        indices = tuple(index for index, _ in failures)
        lines = "\n".join(f"  - {p}" for p in problems)
        ReportError.__init__(error, problems, f"invalid report(s) at index "
                             f"{', '.join(map(str, indices))} of the batch:\n{lines}")
        error.unlisted = sum(failure.unlisted for _, failure in failures)
        error.indices, error.index = indices, indices[0]
        error.__cause__ = failures[0][1]
        return error


class InstallError(MarrowTriageError, ImportError):
    """A part of marrow_triage that cannot be imported as installed (a missing extra, or a
    durable-rules build that does not load); the message is one sentence saying what to do.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, [Problem(None, message)])

    @classmethod
    def missing_extra(cls, module: str, extra: str, missing: ImportError) -> InstallError:
        """``module`` needs the optional dependencies of ``extra``; ``missing`` is why."""
        what = missing.name or "a dependency"
        return cls(f"{module} needs the [{extra}] extra ({what} is not installed): "
                   f"pip install 'marrow-triage[{extra}]'")
