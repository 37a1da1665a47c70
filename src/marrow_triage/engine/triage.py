"""The triage engine: a report's path to its result.

``triage`` reads it top to bottom: the report is validated, encoded as a durable_rules
fact, evaluated by a host checked out of the pool, and the rules that fired are explained.
Everything about durable_rules (and what keeps it from crashing) is in
:mod:`marrow_triage.engine.durable`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from marrow_triage._json import checked_text
from marrow_triage.engine.durable import EvaluatorPool, Fired, report_members
from marrow_triage.engine.encode import compile_pack, compile_timeline, timeline_levels
from marrow_triage.engine.explain import Explainer
from marrow_triage.errors import BatchReportError, EngineError, LocaleError, ReportValidationError
from marrow_triage.models import SymptomReport, TriageResult, invalid_report
from marrow_triage.pack.spec import RulePack

__all__ = [
    "EngineError",
    "ReportInput",
    "TriageEngine",
    "compile_everything",
    "default_engine",
    "validate_report",
]

ReportInput = SymptomReport | Mapping[str, Any]
"""A report as the engine takes it: a :class:`SymptomReport` or a dict of its JSON form."""

_CHUNK = 256
"""Reports per stage in :meth:`TriageEngine.triage_many`."""


class TriageEngine:
    """Triage symptom reports with one rule pack.

    Safe to share between threads, across ``fork`` and from asyncio code. Construct it
    once and reuse it: loading and compiling the pack is the slow part.

    >>> engine = TriageEngine.default()
    >>> engine.triage({"hours_since_procedure": 20, "bleeding": "does_not_stop"}).level
    <Urgency.URGENT: 'urgent'>
    """

    def __init__(self, pack: RulePack) -> None:
        self.pack = pack
        # One explainer per locale, built now (each is cheap): results and findings are
        # cached per explainer, so a locale never gets another locale's cached texts.
        self._explainers = {locale: Explainer(pack, locale=locale) for locale in pack.locales}
        self.explainer = self._explainers["en"]
        """Turns fired rules into results in English; the timeline explains with it too."""
        levels = {rule.id: rule.level for rule in pack.rules}
        self._evaluators = EvaluatorPool(compile_pack(pack), levels)

    @classmethod
    def from_path(cls, path: str | Path, base: str | Path | None = None) -> TriageEngine:
        """An engine for the rule pack, or overlay, in directory ``path``.

        An overlay's ``extends`` is resolved against ``base`` when given, else against
        the packaged pack (or the overlay's own ``extends.path``).
        """
        return cls(RulePack.from_path(path, base=base))

    @property
    def locales(self) -> tuple[str, ...]:
        """The locales results can be given in (``en`` first)."""
        return self.pack.locales

    def explainer_for(self, locale: str | None = None) -> Explainer:
        """The explainer for ``locale`` (a tag such as ``es`` or ``es-MX``; None: English).

        Raises :class:`LocaleError` when the pack has no texts in that language.
        """
        if locale is None:
            return self.explainer
        explainer = self._explainers.get(locale)
        if explainer is not None:
            return explainer
        matched = self.pack.match_locale(locale)
        if matched is None:
            raise LocaleError(locale, self.pack.locales)
        return self._explainers[matched]

    @classmethod
    def default(cls) -> TriageEngine:
        """An engine for the rule pack shipped with the library."""
        return cls(RulePack.default())

    def triage(self, report: ReportInput, locale: str | None = None) -> TriageResult:
        """Triage one report (a :class:`SymptomReport` or a dict of its JSON form).

        ``locale`` picks the language of the texts (``"es"``; default English); levels,
        rule ids and field names are the same in every locale. An unknown locale raises
        :class:`~marrow_triage.LocaleError`.

        Raises :class:`~marrow_triage.ReportError` naming each bad field of an invalid
        report (a :class:`~marrow_triage.errors.ReportValidationError`, which is also the
        ``pydantic.ValidationError`` that older callers catch), and :class:`EngineError` if the
        engine fails on a valid one.
        """
        explainer = self.explainer_for(locale)
        validated = validate_report(report)
        evaluator = self._evaluators.checkout()
        try:
            fired = evaluator.evaluate(report_members(validated))
            result = explainer.build(validated, fired.rules, fired.questions)
        except Exception as exc:  # the host may be in an unknown state: not given back
            raise EngineError(f"rule engine failed: {exc}") from exc
        self._evaluators.give_back(evaluator)
        return result

    def triage_json(self, data: str | bytes, locale: str | None = None) -> TriageResult:
        """Triage a report given as JSON text (UTF-8; a byte-order mark is accepted).

        Errors as :meth:`triage`, and :class:`DuplicateKeyError` for a key given twice
        (JSON readers would keep only one of its values).
        """
        try:
            report = SymptomReport.model_validate_json(checked_text(data))
        except ValidationError as exc:
            raise invalid_report(exc) from exc
        return self.triage(report, locale)

    def triage_many(self, reports: Iterable[ReportInput],
                    locale: str | None = None) -> list[TriageResult]:
        """Triage many reports, a host checked out per chunk; results keep the input order.

        Every report is validated before any is evaluated, so an invalid one fails the
        batch before any work is done: :class:`BatchReportError` names the index of each
        invalid report (``[3].site_pain``). The work is done in stages over chunks of reports
        (encode all, evaluate all, explain all) rather than report by report: each stage's
        code and data then stay in the CPU caches (see benchmarks/README.md).
        """
        explainer = self.explainer_for(locale)
        validated = _validate_batch(reports)
        results: list[TriageResult] = []
        for start in range(0, len(validated), _CHUNK):
            chunk = validated[start:start + _CHUNK]
            fired = self.fire_many(chunk)
            try:
                results.extend(explainer.build(report, f.rules, f.questions)
                               for report, f in zip(chunk, fired, strict=True))
            except Exception as exc:
                raise EngineError(f"rule engine failed: {exc}") from exc
        return results

    def fire_many(self, reports: Sequence[SymptomReport]) -> list[Fired]:
        """What fires for each validated report (rule ids and question keys), in order,
        with one host checkout, without explaining it; :meth:`explain` makes its result.
        ``rules diff`` uses the two to build results only where two packs' can differ."""
        evaluator = self._evaluators.checkout()
        try:
            # Encode all, then evaluate all: each stage's code and data stay in the CPU
            # caches (see benchmarks/README.md).
            members = [report_members(report) for report in reports]
            fired = [evaluator.evaluate(m) for m in members]
        except Exception as exc:
            raise EngineError(f"rule engine failed: {exc}") from exc
        self._evaluators.give_back(evaluator)
        return fired

    def explain(self, report: SymptomReport, fired: Fired,
                locale: str | None = None) -> TriageResult:
        """The result for ``report`` from what :meth:`fire_many` found fired for it: the
        same result :meth:`triage` gives."""
        return self.explainer_for(locale).build(report, fired.rules, fired.questions)

    async def triage_async(self, report: ReportInput,
                           locale: str | None = None) -> TriageResult:
        """Triage without blocking the event loop (runs in a worker thread)."""
        import asyncio  # here, not at the top: it is a large part of cold start
        validated = validate_report(report)
        if locale is None:  # as before locales: a subclass's triage(report) still works
            return await asyncio.to_thread(self.triage, validated)
        return await asyncio.to_thread(self.triage, validated, locale)


def _validate_batch(reports: Iterable[ReportInput]) -> list[SymptomReport]:
    """Every report validated; :class:`BatchReportError` naming each invalid one's index."""
    validated: list[SymptomReport] = []
    failures: list[tuple[int, ReportValidationError]] = []
    for index, report in enumerate(reports):
        try:
            validated.append(validate_report(report))
        except ReportValidationError as exc:
            failures.append((index, exc))
    if failures:
        raise BatchReportError.of(failures)
    return validated


def validate_report(report: ReportInput) -> SymptomReport:
    """The report as a :class:`SymptomReport`; a :class:`ReportValidationError` if invalid."""
    if isinstance(report, SymptomReport):
        return report
    try:
        return SymptomReport.model_validate(report)
    except ValidationError as exc:
        raise invalid_report(exc) from exc


def compile_everything(pack: RulePack) -> TriageEngine:
    """Compile every ruleset of ``pack`` in durable_rules, as engines and timelines do:
    its rules and questions, and its timeline rules; the engine for its reports. Raises
    :class:`~marrow_triage.RulePackError` naming each rule the engine refuses."""
    engine = TriageEngine(pack)
    if pack.timeline_rules:
        EvaluatorPool(compile_timeline(pack), timeline_levels(pack))
    return engine


@cache
def default_engine() -> TriageEngine:
    """The engine for the packaged rule pack: built on first use, then shared.

    The library's one piece of module state, on purpose: a lazily built engine that never
    changes once built (its pack, compiled ruleset and explainer are fixed; its host pool
    and caches hold only what the pack determines), safe to share between threads and
    across ``fork``. :func:`marrow_triage.triage`, a :class:`~marrow_triage.timeline.Timeline`
    made without an engine and :mod:`marrow_triage.testing` use it; build your own
    :class:`TriageEngine` for any other pack.
    """
    return TriageEngine.default()
