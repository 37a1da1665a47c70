"""The impact of a rule change: two packs evaluated over the same reports, and what moved.

:func:`compare_engines` evaluates the same reports with both engines, a chunk at a time
(:meth:`~marrow_triage.TriageEngine.fire_many`), and groups what differs: reports whose
level moved (by transition, each with the rules whose firing explains it and the smallest
example report), rules that fire in more or fewer reports, findings whose wording changed
with the same level and rules, and the rule definitions that differ between the packs.
Results are explained only where the packs' wording can differ (see
:func:`_compare_chunk`).
:func:`report_batches` builds the report space (see :mod:`marrow_triage.change.space`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from marrow_triage._collector import full_collections_deferred
from marrow_triage._forked import can_fork, forked_map
from marrow_triage.change.episodes import (
    Episode,
    episode_dicts,
    episode_factors,
    first_checkin_dicts,
    run_dicts,
    sample_episode_dicts,
    to_episode,
)
from marrow_triage.change.space import (
    FieldClasses,
    boundary_classes,
    covering_rows,
    rows_to_reports,
    sample_reports,
)
from marrow_triage.engine.durable import Fired
from marrow_triage.engine.explain import ResultWording, TextDifferences
from marrow_triage.engine.triage import TriageEngine
from marrow_triage.models import SymptomReport, TriageResult, Urgency
from marrow_triage.pack.catalogue import condition_in_words, rule_condition_in_words
from marrow_triage.pack.spec import RulePack, RuleSpec, TimelineRuleSpec
from marrow_triage.timeline.timeline import Timeline

__all__ = [
    "EPISODE_SAMPLES",
    "Batch",
    "Cause",
    "DefinitionChange",
    "Impact",
    "RuleFiring",
    "TextChange",
    "Transition",
    "compare_engines",
    "compare_timelines",
    "episode_batches",
    "report_batches",
    "timeline_differs",
]

EPISODE_SAMPLES = 5_000
"""Seeded episodes ``rules diff`` adds by default: each weighs a timeline in both packs,
at about ten reports' cost, so a timeline change is judged in well under a minute."""

_CHUNK = 4096
"""Reports per chunk (one evaluation each with both engines, and one task for a worker):
large enough to amortise it, small enough to stream."""

Report = dict[str, Any]


@dataclass(frozen=True)
class Batch:
    """Reports of one kind (boundary classes, samples, a file), with how they were made."""

    label: str
    reports: Iterable[Report | SymptomReport]
    count: int


def report_batches(packs: Sequence[RulePack], samples: int = 100_000, seed: int = 0,
                   extra: Sequence[tuple[str, Sequence[SymptomReport]]] = ()) -> list[Batch]:
    """The report space for comparing ``packs``: their boundary classes pairwise, ``samples``
    seeded samples and the ``extra`` reports (label, reports), in that order."""
    fields = boundary_classes(packs)
    rows = covering_rows([len(f.values) for f in fields])
    classes = sum(len(f.values) for f in fields)
    batches = [Batch(f"{classes:,} boundary classes of {len(fields)} fields pairwise",
                     list(rows_to_reports(fields, rows)), len(rows))]
    if samples:
        batches.append(Batch(f"sampled (seed {seed})", _lazy_samples(fields, samples, seed),
                             samples))
    batches += [Batch(f"from {label}", reports, len(reports)) for label, reports in extra]
    return batches


def _lazy_samples(fields: list[FieldClasses], count: int, seed: int) -> Iterable[Report]:
    class _Samples:
        def __iter__(self) -> Iterator[Report]:
            return sample_reports(fields, count, seed)
    return _Samples()


@dataclass
class Cause:
    """Reports of one transition moved by the same rules: those now firing at the new level
    (a move up) or no longer firing at the old one (a move down), and rules whose own
    level changed; other rules whose firing changed with them are counted in ``firing``."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    relevelled: tuple[str, ...] = ()
    """``rule: old → new`` for rules that fire in both at another level."""
    count: int = 0
    example: Report = field(default_factory=dict)

    def describe(self) -> str:
        """``rule site-pain-persisting now fires; rule fever no longer fires``."""
        parts = [f"rule {r} now fires" for r in self.added]
        parts += [f"rule {r} no longer fires" for r in self.removed]
        parts += [f"rule {r}" for r in self.relevelled]
        return "; ".join(parts) or "same rules fire"


@dataclass
class Transition:
    """Reports whose level moved from ``old`` to ``new``."""

    old: Urgency
    new: Urgency
    count: int = 0
    causes: dict[tuple[tuple[str, ...], ...], Cause] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        """Levels moved: negative when the report now gets a lower level."""
        return self.new.rank - self.old.rank


@dataclass
class RuleFiring:
    """A rule that fires for more or fewer of the reports than before."""

    rule_id: str
    more: int = 0
    fewer: int = 0


@dataclass
class TextChange:
    """Reports with the same level and rules whose wording of one part changed."""

    rule_id: str
    """The finding's rule, or ``(result)`` for the result's own texts."""
    part: str
    locale: str
    count: int = 0
    old_text: str = ""
    new_text: str = ""
    example: Report = field(default_factory=dict)


@dataclass(frozen=True)
class DefinitionChange:
    """A rule whose definition differs between the packs, and in what."""

    rule_id: str
    kind: str
    """``rule`` or ``timeline rule``."""
    parts: tuple[str, ...]
    old_level: Urgency | None
    new_level: Urgency | None
    detail: str


@dataclass
class Impact:
    """What a change from the old pack to the new one does to the reports compared."""

    old: dict[str, str]
    new: dict[str, str]
    sources: list[tuple[str, int]]
    invalid: int = 0
    total: int = 0
    transitions: dict[tuple[Urgency, Urgency], Transition] = field(default_factory=dict)
    firing: dict[str, RuleFiring] = field(default_factory=dict)
    text: dict[tuple[str, str, str], TextChange] = field(default_factory=dict)
    definitions: list[DefinitionChange] = field(default_factory=list)
    timeline: Impact | None = None
    """The same comparison over episodes of check-ins (examples are episodes), made when
    the packs' timeline rules or history settings differ."""

    @property
    def lower(self) -> int:
        """Reports that now get a lower level."""
        return sum(t.count for t in self.transitions.values() if t.steps < 0)

    @property
    def higher(self) -> int:
        """Reports that now get a higher level."""
        return sum(t.count for t in self.transitions.values() if t.steps > 0)

    @property
    def timeline_lowering(self) -> list[DefinitionChange]:
        """Timeline rules whose definition lowers or removes them (information: what they
        do to patients is measured over episodes, in :attr:`timeline`)."""
        return [d for d in self.definitions if d.kind == "timeline rule" and d.old_level
                is not None and (d.new_level is None or d.new_level < d.old_level)]

    @property
    def exit_code(self) -> int:
        """3: some report or episode now gets a lower level (or a timeline rule is lowered
        and no episode was compared); 1: levels changed, none lower; 0: none."""
        timeline = self.timeline
        if self.lower or (timeline is not None and timeline.lower) or (
                timeline is None and self.timeline_lowering):
            return 3
        return 1 if self.higher or (timeline is not None and timeline.higher) else 0

    def sorted_transitions(self) -> list[Transition]:
        """Downward transitions first (largest drop first), then upward ones."""
        return sorted(self.transitions.values(),
                      key=lambda t: (t.steps > 0, t.steps if t.steps < 0 else -t.steps,
                                     -t.old.rank, -t.count))


def _size(report: Report) -> tuple[int, int, str]:
    text = json.dumps(report, sort_keys=False)
    return len(report), len(text), text


def _as_dict(report: Report | SymptomReport) -> Report:
    if isinstance(report, SymptomReport):
        return report.model_dump(mode="json", exclude_none=True)
    return report


def compare_engines(old: TriageEngine, new: TriageEngine, batches: Sequence[Batch], *,
                    old_label: str = "old", new_label: str = "new", workers: int = 1,
                    locales: Sequence[str] = (),
                    progress: Callable[[int, int], None] | None = None,
                    explain_all: bool = False) -> Impact:
    """Evaluate every report of ``batches`` with both engines and group what changed.

    Reports that are not valid (a generated combination a report validator refuses) are
    counted in ``invalid`` and skipped. ``progress(done, total)`` is called per chunk.
    With ``workers`` > 1 (and ``fork`` available) chunks are shared between this process
    and ``workers - 1`` forked ones; the result is the same as with one. Levels and rules
    are compared in English; ``locales`` (other locales both packs have) are compared for
    wording too. Results are built only where the packs' can differ (see
    :func:`_compare_chunk`); ``explain_all`` builds every one, with the same outcome.
    Full garbage collections are deferred while it runs
    (:func:`~marrow_triage._collector.full_collections_deferred`).
    """
    impact = Impact(old=_identity(old.pack, old_label), new=_identity(new.pack, new_label),
                    sources=[(b.label, b.count) for b in batches])
    impact.definitions = definition_changes(old.pack, new.pack)
    with full_collections_deferred():
        _compare_batches(old, new, batches, impact, workers, locales, progress, explain_all)
    return impact


def _compare_batches(old: TriageEngine, new: TriageEngine, batches: Sequence[Batch],
                     impact: Impact, workers: int, locales: Sequence[str],
                     progress: Callable[[int, int], None] | None, explain_all: bool) -> None:
    expected = sum(b.count for b in batches)
    if workers > 1 and can_fork():
        def compare(chunk: list[Report | SymptomReport]) -> tuple[int, Impact]:
            part = Impact(old={}, new={}, sources=[])  # ``impact`` names the packs
            return _compare_chunk(old, new, chunk, part, locales, explain_all), part

        done = 0
        for seen, part in forked_map(compare, _chunks(batches), workers):
            _merge(impact, part)
            done += seen
            if progress is not None:
                progress(done, expected)
        return
    done = 0
    for chunk in _chunks(batches):
        done += _compare_chunk(old, new, chunk, impact, locales, explain_all)
        if progress is not None:
            progress(done, expected)


def timeline_differs(old: RulePack, new: RulePack) -> bool:
    """True when the packs' timeline rules or history settings differ: then episodes of
    check-ins, not single reports, show what the change does."""
    if old.history != new.history:
        return True
    return any(d.kind == "timeline rule" for d in definition_changes(old, new))


def episode_batches(packs: Sequence[RulePack], samples: int = EPISODE_SAMPLES,
                    seed: int = 0) -> list[Batch]:
    """The episode space for comparing ``packs``' timelines (see
    :mod:`marrow_triage.change.episodes`): the report classes pairwise as first check-ins;
    every pair of classes of the report's fields and the history factors, then again with
    only the report fields timeline rules test answered (so that no other finding hides a
    history's effect); every reading class as a run over every span and count; and
    ``samples`` seeded episodes."""
    first = first_checkin_dicts(packs)
    runs = run_dicts(packs)
    pairwise = episode_dicts(packs)
    sparse = episode_dicts(packs, sparse=True)
    factors = episode_factors(packs)
    classes = sum(len(f.values) for f in factors)
    batches = [Batch("the report classes pairwise as first check-ins", first, len(first)),
               Batch(f"{classes:,} history classes of {len(factors)} factors pairwise with "
                     "the report's", pairwise, len(pairwise)),
               Batch("the same pairwise with only the report fields timeline rules test",
                     sparse, len(sparse)),
               Batch("reading runs (each reading class at every check-in, each span and "
                     "count)", runs, len(runs))]
    if samples:
        class _Samples:
            def __iter__(self) -> Iterator[Report]:
                return sample_episode_dicts(packs, samples, seed)
        batches.append(Batch(f"sampled (seed {seed})", _Samples(), samples))
    return batches


def compare_timelines(old: TriageEngine, new: TriageEngine, batches: Sequence[Batch], *,
                      old_label: str = "old", new_label: str = "new",
                      progress: Callable[[int, int], None] | None = None) -> Impact:
    """Evaluate every episode of ``batches`` (see :func:`episode_batches`) with both
    packs' timelines (:meth:`~marrow_triage.timeline.Timeline.evaluate`, no store) and
    group what changed as :func:`compare_engines` does for reports; rule firing and
    wording are kept for timeline and escalation rules only (the others fire as in the
    report alone, compared as reports).

    A pack without ``history:`` has no timeline: its result is the report's own.
    """
    impact = Impact(old=_identity(old.pack, old_label), new=_identity(new.pack, new_label),
                    sources=[(b.label, b.count) for b in batches])
    timelines = [Timeline(None, e) if e.pack.history is not None else None for e in (old, new)]
    expected, done = sum(b.count for b in batches), 0
    for chunk in _chunks(batches):
        originals: list[Report] = []
        episodes: list[Episode] = []
        for data in chunk:
            assert isinstance(data, dict)
            try:
                episodes.append(to_episode(data))
            except ValidationError:
                impact.invalid += 1
                continue
            originals.append(data)
        reports = [e.report for e in episodes]
        results = []
        for engine, timeline in zip((old, new), timelines, strict=True):
            singles = engine.triage_many(reports)
            results.append(singles if timeline is None else
                           [timeline.evaluate(e.earlier, e.report, e.at, single)
                            for e, single in zip(episodes, singles, strict=True)])
        for original, before, after in zip(originals, *results, strict=True):
            _compare(impact, original, before, after)
        impact.total += len(episodes)
        done += len(chunk)
        if progress is not None:
            progress(done, expected)
    # Report rules fire in an episode as in its report alone (compared as reports); only
    # timeline rules, and escalations that count their findings, depend on the history.
    timeline_ids = {r.id for e in (old, new) for r in e.pack.timeline_rules}
    timeline_ids |= {r.id for e in (old, new) for r in e.pack.rules if r.is_escalation}
    impact.text = {k: v for k, v in impact.text.items() if k[0] in timeline_ids}
    impact.firing = {k: v for k, v in impact.firing.items() if k in timeline_ids}
    return impact


def _compare_chunk(old: TriageEngine, new: TriageEngine, chunk: list[Report | SymptomReport],
                   impact: Impact, locales: Sequence[str] = (),
                   explain_all: bool = False) -> int:
    """Compare one chunk of reports into ``impact``; the number of reports seen.

    Both packs evaluate every report. Where the rules that fired differ, their levels say
    what moved. Where the same rules fired, only the wording can differ, and only where
    :meth:`~marrow_triage.engine.explain.Explainer.text_differences` says it can: a report
    that fires the same rules and question keys, none of them worded differently, is not
    explained at all; where only some rules' texts, a level's texts or the questions
    differ, just those parts are compared (:meth:`~marrow_triage.engine.explain.Explainer.wording`);
    otherwise both whole results. ``explain_all`` builds and compares every result instead
    (the tests hold the two ways to the same impact).
    """
    originals: list[Report | SymptomReport] = []
    reports: list[SymptomReport] = []
    for report in chunk:
        if isinstance(report, SymptomReport):
            validated = report
        else:
            try:
                validated = SymptomReport.model_validate(report)
            except ValidationError:
                impact.invalid += 1
                continue
        originals.append(report)
        reports.append(validated)
    if explain_all:
        _compare_results(old, new, originals, reports, impact, locales)
        impact.total += len(reports)
        return len(chunk)
    # Levels and rules are compared in English; other locales for their wording only.
    compared = [(locale, old.explainer_for(locale).text_differences(new.explainer_for(locale)))
                for locale in ("en", *locales)]
    old_rules = {rule.id: rule.level for rule in old.pack.rules}
    escalations = frozenset(rule.id for rule in old.pack.rules if rule.is_escalation)
    new_rules = {rule.id: rule.level for rule in new.pack.rules}
    for original, report, was, now in zip(originals, reports, old.fire_many(reports),
                                          new.fire_many(reports), strict=True):
        # A report's level and findings follow from the rules that fired and their levels
        # (as Explainer.build orders them): results are needed only for their wording.
        old_levels = {rule_id: old_rules[rule_id] for rule_id in was.rules}
        new_levels = {rule_id: new_rules[rule_id] for rule_id in now.rules}
        _compare_firing(impact, original, (_top(old_levels), old_levels),
                        (_top(new_levels), new_levels),
                        functools.partial(_compare_wording, impact, original, report,
                                          (old, was), (new, now), compared, escalations))
    impact.total += len(reports)
    return len(chunk)


def _top(levels: Mapping[str, Urgency]) -> Urgency:
    return max(levels.values(), default=Urgency.SELF_CARE)


def _compare_wording(impact: Impact, original: Report | SymptomReport, report: SymptomReport,
                     before: tuple[TriageEngine, Fired], after: tuple[TriageEngine, Fired],
                     compared: Sequence[tuple[str, TextDifferences]],
                     escalations: frozenset[str]) -> None:
    """The same rules fired in both packs: compare the two results' wording in each locale,
    as little of them as can differ (see :meth:`TextDifferences.confined_to_rules`)."""
    (old, was), (new, now) = before, after
    same_questions = was.questions.keys() == now.questions.keys()
    for locale, differences in compared:
        if differences.confined_to_rules(was.rules):
            if same_questions and differences.same_result(was.rules):
                continue
            # The escalations' findings name the rules they count.
            shown = (differences.rules | escalations).intersection(was.rules)
            _text_changes(impact, original,
                          old.explainer_for(locale).wording(report, was.rules, was.questions,
                                                            shown),
                          new.explainer_for(locale).wording(report, now.rules, now.questions,
                                                            shown))
            continue
        _text_changes(impact, original, old.explain(report, was, locale),
                      new.explain(report, now, locale))


def _compare_results(old: TriageEngine, new: TriageEngine,
                     originals: Sequence[Report | SymptomReport],
                     reports: Sequence[SymptomReport], impact: Impact,
                     locales: Sequence[str]) -> None:
    """The plain way: every result built, in each locale, and compared."""
    olds, news = old.triage_many(reports), new.triage_many(reports)
    for original, before, after in zip(originals, olds, news, strict=True):
        _compare(impact, original, before, after)
    for locale in locales:  # the same findings, worded in another language
        olds = old.triage_many(reports, locale=locale)
        news = new.triage_many(reports, locale=locale)
        for original, before, after in zip(originals, olds, news, strict=True):
            if before.level is after.level and \
                    [f.rule_id for f in before.findings] == [f.rule_id for f in after.findings]:
                _text_changes(impact, original, before, after)


def _chunks(batches: Sequence[Batch]) -> Iterator[list[Report | SymptomReport]]:
    chunk: list[Report | SymptomReport] = []
    for batch in batches:
        for report in batch.reports:
            chunk.append(report)
            if len(chunk) == _CHUNK:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _merge(into: Impact, part: Impact) -> None:
    """Add a chunk's partial impact to ``into``."""
    into.total += part.total
    into.invalid += part.invalid
    for key, transition in part.transitions.items():
        target = into.transitions.setdefault(key, Transition(*key))
        target.count += transition.count
        for cause_key, cause in transition.causes.items():
            mine = target.causes.setdefault(cause_key, Cause(cause.added, cause.removed,
                                                             cause.relevelled))
            mine.count += cause.count
            mine.example = _keep_smaller(mine.example, cause.example)
    for rule_id, firing in part.firing.items():
        target_firing = into.firing.setdefault(rule_id, RuleFiring(rule_id))
        target_firing.more += firing.more
        target_firing.fewer += firing.fewer
    for text_key, change in part.text.items():
        mine_text = into.text.get(text_key)
        if mine_text is None:
            into.text[text_key] = change
            continue
        mine_text.count += change.count
        if _keep_smaller(mine_text.example, change.example) is not mine_text.example:
            mine_text.example = change.example
            mine_text.old_text, mine_text.new_text = change.old_text, change.new_text


def _identity(pack: RulePack, label: str) -> dict[str, str]:
    return {"label": label, "name": pack.name, "version": pack.version, "sha256": pack.sha256}


def _keep_smaller(current: Report, candidate: Report | SymptomReport) -> Report:
    if current and isinstance(candidate, dict) and len(candidate) != len(current):
        # Fewer fields is smaller (_size's first key): no need to write either out.
        return candidate if len(candidate) < len(current) else current
    as_dict = _as_dict(candidate)
    if not current or _size(as_dict) < _size(current):
        return as_dict
    return current


def _compare(impact: Impact, original: Report | SymptomReport, before: TriageResult,
             after: TriageResult) -> None:
    if before is after:
        return
    _compare_firing(impact, original, (before.level, _levels(before)),
                    (after.level, _levels(after)),
                    lambda: _text_changes(impact, original, before, after))


def _levels(result: TriageResult) -> dict[str, Urgency]:
    return {finding.rule_id: finding.level for finding in result.findings}


def _compare_firing(impact: Impact, original: Report | SymptomReport,
                    before: tuple[Urgency, Mapping[str, Urgency]],
                    after: tuple[Urgency, Mapping[str, Urgency]],
                    compare_texts: Callable[[], None]) -> None:
    """Record what moved between two results, each given as its level and the levels of
    the rules that fired; ``compare_texts`` is called when the same rules fire at the same
    level (only then can their wording be compared)."""
    (old_level, old_levels), (new_level, new_levels) = before, after
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    if old_levels.keys() != new_levels.keys():
        added = tuple(sorted(new_levels.keys() - old_levels.keys()))
        removed = tuple(sorted(old_levels.keys() - new_levels.keys()))
        for rule_id in added:
            impact.firing.setdefault(rule_id, RuleFiring(rule_id)).more += 1
        for rule_id in removed:
            impact.firing.setdefault(rule_id, RuleFiring(rule_id)).fewer += 1
    if old_level is not new_level:
        relevelled = tuple(f"{rule_id}: {old_levels[rule_id]} → {level}"
                           for rule_id, level in sorted(new_levels.items())
                           if old_levels.get(rule_id, level) is not level)
        # Group by the changes that decide the move: rules now firing at the new (higher)
        # level, or no longer firing at the old (higher) one; others are incidental.
        if new_level > old_level:
            decisive: tuple[tuple[str, ...], tuple[str, ...]] = (
                tuple(r for r in added if new_levels[r] is new_level), ())
        else:
            decisive = ((), tuple(r for r in removed if old_levels[r] is old_level))
        if decisive[0] or decisive[1] or relevelled:
            added, removed = decisive
        key = (old_level, new_level)
        transition = impact.transitions.setdefault(key, Transition(*key))
        transition.count += 1
        cause = transition.causes.setdefault((added, removed, relevelled),
                                             Cause(added, removed, relevelled))
        cause.count += 1
        cause.example = _keep_smaller(cause.example, original)
    elif not added and not removed:
        compare_texts()
    # Otherwise other rules fire at the same level: texts differ because of that.


def _text_changes(impact: Impact, original: Report | SymptomReport,
                  before: TriageResult | ResultWording,
                  after: TriageResult | ResultWording) -> None:
    locale = str(getattr(after, "locale", None) or "en")
    old_by_id = {f.rule_id: f for f in before.findings}
    changes: list[tuple[str, str, str, str]] = []
    for finding in after.findings:
        previous = old_by_id.get(finding.rule_id)
        if previous is None or previous is finding:
            continue
        if previous.explanation != finding.explanation:
            changes.append((finding.rule_id, "explanation", previous.explanation,
                            finding.explanation))
        if previous.advice != finding.advice:
            changes.append((finding.rule_id, "advice", " / ".join(previous.advice),
                            " / ".join(finding.advice)))
        if previous.source != finding.source:
            changes.append((finding.rule_id, "source", previous.source.quote,
                            finding.source.quote))
    for part in ("action", "summary", "reassurance", "questions"):
        was, now = getattr(before, part), getattr(after, part)
        if was is not now and was != now:
            changes.append(("(result)", part, _text(was), _text(now)))
    # A result's advice is its findings' (compared above) and, in self care, the watch list.
    was_watch, now_watch = _watch_list(before), _watch_list(after)
    if was_watch != now_watch:
        changes.append(("(result)", "watch_for", _text(was_watch), _text(now_watch)))
    for rule_id, part, was, now in changes:
        key = (rule_id, part, locale)
        change = impact.text.setdefault(key, TextChange(rule_id, part, locale))
        change.count += 1
        smaller = _keep_smaller(change.example, original)
        if smaller is not change.example:
            change.example, change.old_text, change.new_text = smaller, was, now


def _watch_list(result: TriageResult | ResultWording) -> tuple[str, ...]:
    """The advice a result gives beyond its findings': the watch list of a self-care one."""
    own = {text for finding in result.findings for text in finding.advice}
    return tuple(text for text in result.advice if text not in own)


def _text(value: object) -> str:
    if isinstance(value, tuple):
        return " / ".join(getattr(v, "text", str(v)) for v in value)
    return str(value)


def _rule_parts(rule: RuleSpec | TimelineRuleSpec) -> dict[str, object]:
    data = rule.model_dump(mode="json", exclude={"when", "when_findings", "id"})
    data["condition"] = rule.condition_data()
    return data


def _condition_words(rule: RuleSpec | TimelineRuleSpec) -> str:
    if isinstance(rule, RuleSpec):
        return rule_condition_in_words(rule)
    return condition_in_words(rule.when)


def definition_changes(old: RulePack, new: RulePack) -> list[DefinitionChange]:
    """Rules and timeline rules added, removed or changed, by id."""
    out: list[DefinitionChange] = []
    kinds: tuple[tuple[str, dict[str, RuleSpec | TimelineRuleSpec],
                       dict[str, RuleSpec | TimelineRuleSpec]], ...] = (
        ("rule", {r.id: r for r in old.rules}, {r.id: r for r in new.rules}),
        ("timeline rule", {r.id: r for r in old.timeline_rules},
         {r.id: r for r in new.timeline_rules}),
    )
    for kind, before, after in kinds:
        for rule_id in sorted(set(before) | set(after)):
            was, now = before.get(rule_id), after.get(rule_id)
            if was is None and now is not None:
                out.append(DefinitionChange(rule_id, kind, ("added",), None, now.level,
                                            f"added: {now.level} when {_condition_words(now)}"))
            elif now is None and was is not None:
                out.append(DefinitionChange(rule_id, kind, ("removed",), was.level, None,
                                            f"removed (was {was.level} when "
                                            f"{_condition_words(was)})"))
            elif was is not None and now is not None:
                old_parts, new_parts = _rule_parts(was), _rule_parts(now)
                parts = tuple(k for k in sorted(set(old_parts) | set(new_parts))
                              if old_parts.get(k) != new_parts.get(k))
                if not parts:
                    continue
                details = []
                if "level" in parts:
                    details.append(f"level {was.level} → {now.level}")
                if "condition" in parts:
                    details.append(f"when {_condition_words(was)} → {_condition_words(now)}")
                rest = [p for p in parts if p not in ("level", "condition")]
                if rest:
                    details.append("wording: " + ", ".join(rest))
                out.append(DefinitionChange(rule_id, kind, parts, was.level, now.level,
                                            "; ".join(details)))
    return out


def firing_sorted(impact: Impact) -> list[RuleFiring]:
    """Rules whose firing changed, those firing less first (they can under-triage)."""
    return sorted(impact.firing.values(), key=lambda r: (-r.fewer, -r.more, r.rule_id))


def counted_text(impact: Impact) -> list[TextChange]:
    """Text changes by rule, part and locale."""
    return [impact.text[k] for k in sorted(impact.text)]


def example_json(report: Report) -> str:
    """An example report on one line, fields in schema order."""
    return json.dumps(report, ensure_ascii=False)


def counts_line(impact: Impact, what: str = "reports") -> str:
    """``412,330 reports: 1,904 boundary classes … pairwise + 100,000 sampled + …``."""
    text = f"{impact.total:,} {what}: " + " + ".join(
        _source_text(label, count, what) for label, count in impact.sources)
    if impact.invalid:
        text += f" ({impact.invalid:,} generated combinations were not valid {what})"
    return text


def _source_text(label: str, count: int, what: str) -> str:
    if "pairwise" in label:
        return f"{label} ({count:,} {what})"
    return f"{count:,} {label}"
