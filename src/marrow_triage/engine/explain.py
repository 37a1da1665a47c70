"""From the rules that fired to a :class:`~marrow_triage.models.TriageResult` people can read.

Explanations are the rule's own template filled with the measured values, so each one
shows what was measured and (as the loader checks) the threshold it was held against.
Every text comes from the pack, in the locale asked for; a text the pack has not
translated is shown in English and listed in the result's ``fallbacks``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol, TypeVar

from marrow_triage.engine.encode import question_key, unconditional_questions
from marrow_triage.models import (
    Finding,
    Question,
    RulesetInfo,
    SymptomReport,
    TriageResult,
    Urgency,
)
from marrow_triage.pack.conditions import AllOf, Condition, FieldTest, field_tests
from marrow_triage.pack.facts import FACT_FIELDS, FactValue, report_facts
from marrow_triage.pack.spec import RulePack, RuleSpec, TimelineRuleSpec
from marrow_triage.pack.templates import Template, render, rendered_names
from marrow_triage.pack.texts import RULE_TEXT_FIELDS
from marrow_triage.units import decimal_of, format_number, format_temperature

__all__ = [
    "Explainer",
    "FiredRule",
    "MeasuredValues",
    "PackTexts",
    "ResultWording",
    "TextDifferences",
    "render_value",
]

_T = TypeVar("_T")


class FiredRule(Protocol):
    """A rule that fired, as results count and name it (a rule or a timeline rule)."""

    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def level(self) -> Urgency: ...


class PackTexts:
    """A pack's patient-facing texts in one locale, each falling back to English.

    Looked up by the keys of :mod:`marrow_triage.pack.texts`; :meth:`text` also says
    whether the text fell back, so that results can list what is shown in English.
    """

    def __init__(self, pack: RulePack, locale: str = "en") -> None:
        self.locale = locale
        translation = pack.translations.get(locale)
        self._local: Mapping[str, str | tuple[str, ...]] = (
            translation.strings if translation is not None else {})
        self._english: dict[str, str | tuple[str, ...]] = dict(pack.texts)
        every_rule: tuple[RuleSpec | TimelineRuleSpec, ...] = (*pack.rules, *pack.timeline_rules)
        for rule in every_rule:
            for name in RULE_TEXT_FIELDS:
                value = getattr(rule, name, None)
                if value:
                    self._english[f"rules.{rule.id}.{name}"] = value
        for question in pack.questions:
            self._english[f"questions.{question.id}"] = question.text
        self.words = {key: self.text(key)[0] for key in self._english
                      if key.startswith("values.")}
        """Value words by key (``values.answer_yes``), in this locale where translated."""
        self.fell_back_words = frozenset(
            key for key in self.words if self.text(key)[1])

    def text(self, key: str) -> tuple[str, bool]:
        """The text for ``key`` and True when it is the English text standing in."""
        value = self.items(key)
        return (value[0] if value else ""), self._fell_back(key)

    def items(self, key: str) -> tuple[str, ...]:
        """A text, or list of texts (advice, reassurance), as a tuple."""
        value = self._local.get(key)
        if value is None:
            value = self._english.get(key, ())
        return (value,) if isinstance(value, str) else tuple(value)

    def _fell_back(self, key: str) -> bool:
        return self.locale != "en" and key in self._english and key not in self._local

    def fallbacks(self, keys: Iterable[str]) -> tuple[str, ...]:
        """Those of ``keys`` shown in English in this locale."""
        return tuple(key for key in keys if self._fell_back(key))


def render_value(name: str, report: SymptomReport, facts: Mapping[str, FactValue],
                 words: Mapping[str, str], used: set[str] | None = None) -> str:
    """A fact's measured value, as shown in an explanation, in the words of ``words``.

    ``used`` collects the keys of the value words it read.
    """
    def word(key: str) -> str:
        if used is not None:
            used.add(key)
        return words[key]

    if name not in facts:
        return word("values.not_answered")
    value = facts[name]
    field = FACT_FIELDS[name]
    if name == "temperature_c" and report.temperature is not None:
        return format_temperature(report.temperature)
    if name == "hours_since_procedure":
        assert isinstance(value, Fraction)
        # The hours as given: rounding 23.99 up to "24" would contradict "below 24".
        # abs(): -0.0 (which validation lets through) shows as "0", as 0 and 0.0 do.
        hours = format(decimal_of(abs(report.hours_since_procedure)).normalize(), "f")
        days = format_number(value / 24, 1)
        if days == "1":
            return render(word("values.hours_one_day"), {"hours": hours}.get)
        return render(word("values.hours"), {"hours": hours, "days": days}.get)
    if field.kind == "boolean":
        return word("values.answer_yes" if value else "values.answer_no")
    if field.kind == "integer" and field.maximum == 10:
        return f"{value}/10"
    if field.kind == "enum":
        return word(f"values.{name}.{value}")
    if field.kind == "text":
        return f"\u201c{value}\u201d"  # the patient's own words, quoted, unchanged
    return format_number(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TextDifferences:
    """Where two explainers' results can differ, for the same report and the same rules
    and question keys fired (see :meth:`Explainer.text_differences`)."""

    rules: frozenset[str]
    """Rules whose own part differs: their finding, or their share of a result (title in
    the summary, advice, reassurance), or their level; or that only one pack has."""
    levels: frozenset[Urgency]
    """Levels whose label or action differs: shown in the action and summary of a result
    at that level."""
    everywhere: bool
    """Something any result can show differs: summary wording or value words."""
    questions: bool
    """What decides a result's questions differs (their texts, or which ones an answer
    could raise): each result's questions must be worked out in both."""
    self_care: bool
    """The watch list differs: it is shown in self-care results only."""
    rule_levels: Mapping[str, Urgency]
    """Each rule's level in the first pack. Both methods below are asked about rules that
    fired in both packs with the same result level (the highest of theirs), so it gives
    that level."""

    def confined_to_rules(self, fired: Collection[str]) -> bool:
        """Whether, in a result with the ``fired`` rules (fired in both packs), only what
        the ``rules`` themselves add and the ``levels``' texts can differ: their findings
        (and the escalations' findings, which name the rules they count), their titles in
        the summary and their reassurance, the level's action and summary, and the
        questions. The watch list and other texts are the same."""
        if self.everywhere:
            return False
        return not self.self_care or self._level(fired) is not Urgency.SELF_CARE

    def same_result(self, fired: Collection[str]) -> bool:
        """Whether a result with the ``fired`` rules (and the same question keys fired in
        both) reads the same in both: every text and level equal, only the ruleset's
        identity differing."""
        return self.rules.isdisjoint(fired) and self.confined_to_rules(fired) and \
            not self.questions and (not self.levels or self._level(fired) not in self.levels)

    def _level(self, fired: Collection[str]) -> Urgency:
        return max((self.rule_levels[rule_id] for rule_id in fired),
                   default=Urgency.SELF_CARE)


@dataclass(frozen=True)
class ResultWording:
    """Part of a result (see :meth:`Explainer.wording`): some of its findings, and its
    action, summary, reassurance and questions. ``advice`` is left empty: it is its
    findings' (and the watch list, which the comparison using this has shown to be the
    same in both packs)."""

    findings: tuple[Finding, ...]
    action: str
    summary: str
    reassurance: tuple[str, ...]
    questions: tuple[Question, ...]
    locale: str
    advice: tuple[str, ...] = ()


class Explainer:
    """Builds the :class:`TriageResult` for the rules and questions that fired, in one locale.

    Made once per engine and locale: everything that depends only on the pack (rule order,
    citations, texts, the ruleset's identity) is built here, once. A finding depends only
    on its rule and the report fields its explanation shows (or, for an escalation, the
    findings it counts), and is immutable, so it is kept in a bounded cache keyed by
    exactly those and shared between results instead of being rendered and validated
    again. Results, immutable too, are cached the same way by their findings' keys and
    question ids. Each locale has its own explainer, so the locale is part of every key.
    """

    def __init__(self, pack: RulePack, max_cached: int = 4096, locale: str = "en") -> None:
        texts = PackTexts(pack, locale)
        self._texts = texts
        self._locale = locale
        self._rules = {rule.id: rule for rule in pack.rules}
        self._order = {rule.id: (-rule.level.rank, rule.id) for rule in pack.rules}
        self._sources = {rule.id: pack.source(rule) for rule in pack.rules}
        self._titles = {rule.id: texts.text(f"rules.{rule.id}.title")[0]
                        for rule in (*pack.rules, *pack.timeline_rules)}
        self._explanations = {rule.id: Template(texts.text(f"rules.{rule.id}.explanation")[0])
                              for rule in pack.rules}
        every_rule = (*pack.rules, *pack.timeline_rules)
        self._advice = {rule.id: texts.items(f"rules.{rule.id}.advice") for rule in every_rule}
        self._also_tell = {rule.id: texts.items(f"rules.{rule.id}.also_tell")
                           for rule in every_rule}
        self._reassurance = {rule.id: texts.items(f"rules.{rule.id}.reassurance")
                             for rule in pack.rules}
        self._rule_fallbacks = {rule.id: texts.fallbacks(
            f"rules.{rule.id}.{name}" for name in RULE_TEXT_FIELDS) for rule in every_rule}
        self._acknowledged = dict(pack.overlays.acknowledged)
        # Which report fields an explanation shows is the same in every locale (the loader
        # checks that translations keep the English placeholders).
        self._shown_facts = {rule.id: _shown_facts(rule.explanation)
                             for rule in pack.rules if rule.when_findings is None}
        self._read_shown: dict[str, Callable[[SymptomReport], object]] = {
            rule.id: _shown_reader(rule.explanation)
            for rule in pack.rules if rule.when_findings is None}
        # Questions name the report field to answer (the FHIR linkId), not the fact; a
        # fallback question (no text in the pack) shows the fact's description.
        asked = pack.questions_to_ask
        self._questions = {q.id: Question(field=FACT_FIELDS[q.field].report_field,
                                          text=texts.text(f"questions.{q.id}")[0] or q.text)
                           for q in asked}
        own = {q.id for q in pack.questions}
        self._question_fallbacks = {
            q.id: texts.fallbacks([f"questions.{q.id}"]) if q.id in own
            else ((f"questions.{q.id}",) if locale != "en" else ()) for q in asked}
        schema_order = {name: index for index, name in enumerate(FACT_FIELDS)}
        self._question_order = {q.id: (schema_order[q.field], q.id) for q in asked}
        ends = {q.id: pack.needs_unanswered(q.field) for q in asked}
        # One answer can fire several rules at once (two ambers, hence red): which rules
        # each answer fires together, per question, from the answers that can matter.
        answer_groups = {q.id: _answer_groups(pack, q.field) for q in asked}
        # Question reach works on level ranks (ints): it runs for every unanswered field.
        self._rule_ranks = {rule.id: rule.level.rank for rule in pack.rules}
        self._escalations = tuple(
            (rule.when_findings.level.rank, rule.when_findings.at_least, rule.level.rank)
            for rule in pack.rules if rule.when_findings is not None)
        self._reaches: dict[tuple[object, ...], int] = {}
        # Each question key (a question, and a rule an answer could fire) is a bit, so the
        # questions that fired are one int: cheap to key caches by and to split by question.
        pairs = sorted((q.id, rule_id) for q in asked for rule_id in pack.raising_answers(q.field))
        self._question_bits = {question_key(*pair): 1 << bit for bit, pair in enumerate(pairs)}
        self._rank_masks = [0] * len(Urgency)
        for bit, (_, rule_id) in enumerate(pairs):
            self._rank_masks[self._rule_ranks[rule_id]] |= 1 << bit
        self._group_masks = {
            q.id: tuple(sum(self._question_bits[question_key(q.id, rule_id)] for rule_id in group)
                        for group in answer_groups[q.id])
            for q in asked}
        # The question keys that hold whenever a field is unanswered are not compiled
        # (encode.unconditional_questions): read here from the report, per field.
        self._unanswered_masks = tuple(
            (FACT_FIELDS[fact].report_field, sum(self._question_bits[key] for key in keys))
            for fact, keys in unconditional_questions(pack).items())
        self._question_masks = tuple(
            (q.id, sum(1 << bit for bit, (qid, _) in enumerate(pairs) if qid == q.id),
             frozenset(ends[q.id])) for q in asked)
        self._ended_by_some_answer = frozenset().union(*ends.values())
        self._rule_question_masks = {
            rule.id: sum(1 << bit for bit, (_, rid) in enumerate(pairs) if rid == rule.id)
            for rule in pack.rules}
        watch_keys = [f"watch_for.{name}" for name in pack.watch_for]
        self._watch_for = tuple(texts.text(key)[0] for key in watch_keys)
        self._watch_for_fallbacks = texts.fallbacks(watch_keys)
        self._levels = {level: (texts.text(f"levels.{level.value}.label")[0],
                                texts.text(f"levels.{level.value}.action")[0])
                        for level in Urgency}
        self._summary = {name: Template(texts.text(f"summary.{name}")[0]) for name in
                         ("warnings", "more", "after_effects", "nothing", "questions")}
        self._level_fallbacks = {level: texts.fallbacks(
            [f"levels.{level.value}.label", f"levels.{level.value}.action"]) for level in Urgency}
        self._summary_fallbacks = {name: texts.fallbacks([f"summary.{name}"])
                                   for name in self._summary}
        self._ruleset = RulesetInfo(name=pack.name, version=pack.version, sha256=pack.sha256,
                                    chain=pack.chain)
        self._findings: dict[tuple[object, ...], tuple[Finding, tuple[str, ...]]] = {}
        self._results: dict[tuple[object, ...], TriageResult] = {}
        self._outlines: dict[tuple[object, ...], TriageResult] = {}
        self._outranked_findings: dict[tuple[object, ...], tuple[Finding, Finding]] = {}
        self._max_cached = max_cached

    def build(self, report: SymptomReport, fired_rules: Iterable[str],
              fired_questions: Iterable[str]) -> TriageResult:
        """The result for ``report`` given the ids of the rules and question keys that
        fired (the engine's; the unconditional question keys are read from ``report``)."""
        rules = self._in_result_order(fired_rules)
        keys, findings = self._findings_of(report, rules)
        asked = self._asked(report, fired_questions)
        # A result is a function of its findings and questions, each cached by a key
        # that determines it, so the findings' keys and the questions' bits determine it.
        result_key = (tuple(keys), asked)
        result = self._results.get(result_key)
        if result is None:
            result = self._remember(self._results, result_key,
                                    self._result(rules, findings, asked))
        return result

    def wording(self, report: SymptomReport, fired_rules: Iterable[str],
                fired_questions: Iterable[str], only: Collection[str]) -> ResultWording:
        """Of the result :meth:`build` gives, the findings of the rules in ``only`` (the
        same findings, from the same cache), and its action, summary, reassurance and
        questions.

        ``rules diff`` compares these where :meth:`text_differences` says nothing else can
        differ, instead of building both whole results.
        """
        rules = self._in_result_order(fired_rules)
        _, findings = self._findings_of(report, rules, only)
        level = rules[0].level if rules else Urgency.SELF_CARE
        asked = self._questions_to_ask(level, rules, self._asked(report, fired_questions))
        return ResultWording(
            findings=tuple(finding for finding, _ in findings),
            action=self._levels[level][1],
            summary=self._summary_of(level, rules, len(asked))[0],
            reassurance=self.reassurance(level, rules),
            questions=tuple(self._questions[question_id] for question_id in asked),
            locale=self._locale,
        )

    def _in_result_order(self, fired_rules: Iterable[str]) -> list[RuleSpec]:
        """The rules that fired, highest level first, then by id."""
        return [self._rules[rule_id] for rule_id in sorted(fired_rules,
                                                           key=self._order.__getitem__)]

    def _findings_of(self, report: SymptomReport, rules: list[RuleSpec],
                     only: Collection[str] | None = None,
                     ) -> tuple[list[tuple[object, ...]], list[tuple[Finding, tuple[str, ...]]]]:
        """The findings of ``rules`` (all fired, in result order; those in ``only`` when
        given) with the keys they are cached by, and the value words each showed in
        English."""
        findings: list[tuple[Finding, tuple[str, ...]] | None] = []
        keys: list[tuple[object, ...]] = []
        missed = []
        # Under an urgent or emergency action a lower finding says only what it adds
        # (as_outranked): part of its key, so that each form is made once and cached.
        ranks = self._rule_ranks
        top = ranks[rules[0].id] if rules else 0
        outranking = top >= _URGENT_RANK
        made = []
        for rule in rules:
            if only is not None and rule.id not in only:
                continue
            made.append(rule)
            outranked = outranking and ranks[rule.id] < top
            if rule.when_findings is not None:
                level = rule.when_findings.level
                key: tuple[object, ...] = (
                    rule.id, outranked, *(r.id for r in rules if r.level is level))
            else:
                key = (rule.id, outranked, self._read_shown[rule.id](report))
            cached = self._findings.get(key)
            if cached is None:
                missed.append(len(findings))
            findings.append(cached)
            keys.append(key)
        if missed:
            # Only the facts the missed explanations show, once: exact values cost fractions.
            facts = report_facts(report, {name for index in missed
                                          for name in self._shown_facts.get(made[index].id, ())})
            for index in missed:
                findings[index] = self._remember(self._findings, keys[index], self._finding(
                    made[index], rules, report, facts, outranked=bool(keys[index][1])))
        return keys, [finding for finding in findings if finding is not None]  # all, by now

    def _asked(self, report: SymptomReport, fired_questions: Iterable[str]) -> int:
        """The bits of the question keys that hold: those that fired, and those that hold
        whenever their field is unanswered (encode.unconditional_questions)."""
        bits = self._question_bits
        asked = 0
        for question in fired_questions:
            asked |= bits[question]
        answers = report.__dict__
        for field, mask in self._unanswered_masks:
            if answers[field] is None:
                asked |= mask
        return asked

    def _result(self, rules: list[RuleSpec],
                findings: list[tuple[Finding, tuple[str, ...]]],
                question_mask: int) -> TriageResult:
        """The result: its outline (everything but the findings, which show measured
        values) is the same for every report that fired the same rules and questions."""
        outline_key = (tuple(rule.id for rule in rules), question_mask)
        outline = self._outlines.get(outline_key)
        if outline is None:
            outline = self._remember(self._outlines, outline_key,
                                     self._outline(rules, question_mask))
        value_fallbacks = {key for _, keys in findings for key in keys}
        # model_copy does not validate again: the outline and each finding were
        # validated when made, and findings is the same type the outline holds.
        return outline.model_copy(update={
            "findings": tuple(finding for finding, _ in findings),  # outranked in build
            "fallbacks": tuple(sorted(value_fallbacks.union(outline.fallbacks)))
            if value_fallbacks else outline.fallbacks})

    def _outline(self, rules: list[RuleSpec], question_mask: int) -> TriageResult:
        """A result with no findings yet, for the rules and questions that fired."""
        level = rules[0].level if rules else Urgency.SELF_CARE
        asked = self._questions_to_ask(level, rules, question_mask)
        questions = tuple(self._questions[qid] for qid in asked)
        worded, fallbacks = self._worded(level, rules, len(questions))
        fallbacks += [key for qid in asked for key in self._question_fallbacks[qid]]
        return TriageResult(
            **worded,
            findings=(),
            questions=questions,
            ruleset=self._ruleset,
            locale=self._locale,
            fallbacks=tuple(sorted(set(fallbacks))),
        )

    def _worded(self, level: Urgency, fired: Sequence[FiredRule],
                unanswered: int) -> tuple[dict[str, Any], list[str]]:
        """What a result at ``level`` says for the ``fired`` rules (its level's label and
        action, summary, advice and reassurance), and the keys of the texts among them,
        the rules' own included, shown in English."""
        label, action = self._levels[level]
        summary, summary_keys = self._summary_of(level, fired, unanswered)
        fallbacks = [key for rule in fired for key in self._rule_fallbacks[rule.id]]
        fallbacks += self._level_fallbacks[level]
        fallbacks += [key for name in summary_keys for key in self._summary_fallbacks[name]]
        advice = self.advice(level, fired)
        if level is Urgency.SELF_CARE:
            advice = _unique((*advice, *self._watch_for))
            fallbacks += self._watch_for_fallbacks
        return {"level": level, "level_label": label, "action": action, "summary": summary,
                "advice": advice, "reassurance": self.reassurance(level, fired)}, fallbacks

    def advice(self, level: Urgency, fired: Iterable[FiredRule]) -> tuple[str, ...]:
        """The advice of a result at ``level`` from the rules that fired, highest first.

        Under an urgent or emergency action a lower rule's own advice would defer or soften
        it ("within 24 hours", "re-check in an hour"): only its ``also_tell`` text stays
        ("also tell them about ..."), if it has one.
        """
        if level < Urgency.URGENT:
            return _unique(text for rule in fired for text in self._advice[rule.id])
        return _unique(text for rule in fired
                       for text in (self._also_tell[rule.id] if rule.level < level
                                    else self._advice[rule.id]))

    def as_outranked(self, findings: Iterable[Finding], level: Urgency) -> tuple[Finding, ...]:
        """The findings of a result at ``level``, each lower finding's advice under an
        urgent or emergency action replaced by its ``also_tell`` text (or none), as in the
        result's advice: a finding shown on its own must not defer the action either."""
        if level < Urgency.URGENT:
            return tuple(findings)
        return tuple(self._outranked(finding) if finding.level < level else finding
                     for finding in findings)

    def _outranked(self, finding: Finding) -> Finding:
        """``finding`` with its ``also_tell`` text as its advice; kept per finding object
        (findings are shared from the cache), since copying a model is not cheap."""
        also_tell = self._also_tell.get(finding.rule_id, ())
        if finding.advice == also_tell:
            return finding
        key = (id(finding),)
        kept = self._outranked_findings.get(key)
        if kept is not None and kept[0] is finding:  # the same object, not a reused id
            return kept[1]
        outranked = finding.model_copy(update={"advice": also_tell})
        self._remember(self._outranked_findings, key, (finding, outranked))
        return outranked

    def reassurance(self, level: Urgency, fired: Iterable[FiredRule]) -> tuple[str, ...]:
        """Reassurance of the expected after-effects that fired; none under an urgent or
        emergency action, where it would contradict it."""
        if level >= Urgency.URGENT:
            return ()
        return _unique(text for rule in fired for text in self._reassurance.get(rule.id, ()))

    def _questions_to_ask(self, level: Urgency, rules: list[RuleSpec],
                          question_mask: int) -> list[str]:
        """Ids of the questions whose answer could raise ``level``, highest reach first.

        ``question_mask`` has the bit of each question key that fired: a question, and a
        rule some answer could make fire. One answer can fire several of them at once, and
        the findings it adds can complete an escalation (two ambers make a red), counting
        out the findings that answering would end (rules that need the field unanswered).
        Ties keep the report's field order, then question id.
        """
        fired = {rule.id for rule in rules}
        ranks = self._rule_ranks
        fired_counts = [0] * len(Urgency)
        for rule in rules:
            fired_counts[ranks[rule.id]] += 1
            question_mask &= ~self._rule_question_masks[rule.id]  # it fired already
        standing = self._escalation_counts(fired_counts)
        any_ended = not fired.isdisjoint(self._ended_by_some_answer)
        floor = level.rank
        reaches = self._reaches
        reach: dict[str, int] = {}
        for question_id, mask, ends in self._question_masks:
            candidates = question_mask & mask
            if not candidates:
                continue
            counts = standing
            if any_ended and not fired.isdisjoint(ends):
                # Answering ends these findings: they no longer count.
                less = fired_counts.copy()
                for rule_id in fired & ends:
                    less[ranks[rule_id]] -= 1
                counts = self._escalation_counts(less)
            # A question's reach depends only on its candidates (whose bits are its own)
            # and the escalation counts, which recur far more often than results do.
            memo_key = (candidates, counts)
            could = reaches.get(memo_key)
            if could is None:
                could = self._remember(reaches, memo_key,
                                       self._reach(question_id, candidates, counts))
            if could > floor:
                reach[question_id] = could
        return sorted(reach, key=lambda qid: (-reach[qid], self._question_order[qid]))

    def _escalation_counts(self, counts_by_rank: Sequence[int]) -> tuple[int, ...]:
        """Per escalation, the findings standing at the level it counts, capped at the
        number it needs: past that, more findings cannot change whether it fires, so
        reports that differ only there share their question reach."""
        return tuple(min(counts_by_rank[counted], least)
                     for counted, least, _ in self._escalations)

    def _reach(self, question_id: str, candidate_mask: int,
               escalation_counts: tuple[int, ...]) -> int:
        """The highest level rank an answer to the question could give, with
        ``escalation_counts`` findings standing per escalation (as
        :meth:`_escalation_counts`) and the rules of ``candidate_mask``'s question keys the
        ones an answer could add.

        In bits of the question's keys: which rules an answer fires together
        (``_group_masks``) and which of them are at each level rank (``_rank_masks``).
        """
        rank_masks = self._rank_masks
        best = -1
        for group in self._group_masks[question_id]:
            new = group & candidate_mask
            if not new:
                continue
            could = 0
            for rank in _RANKS_DOWN:
                if new & rank_masks[rank]:
                    could = rank
                    break
            for (counted, least, escalated), standing in zip(
                    self._escalations, escalation_counts, strict=True):
                added = (new & rank_masks[counted]).bit_count()
                if added and standing + added >= least:
                    could = max(could, escalated)
            best = max(best, could)
        return best

    def _remember(self, cache: dict[tuple[object, ...], _T], key: tuple[object, ...],
                  value: _T) -> _T:
        if len(cache) >= self._max_cached:
            cache.clear()
        cache[key] = value
        return value

    def _finding(self, rule: RuleSpec, fired: list[RuleSpec], report: SymptomReport,
                 facts: Mapping[str, FactValue],
                 outranked: bool = False) -> tuple[Finding, tuple[str, ...]]:
        """A finding (with its ``also_tell`` text as advice when ``outranked``), and the
        keys of the value words it showed in English as a fallback."""
        if rule.when_findings is not None:
            finding = self.escalation_finding(rule, fired)
            return (self._outranked(finding) if outranked else finding), ()
        used: set[str] = set()
        finding = Finding(
            rule_id=rule.id,
            level=rule.level,
            explanation=self._explanations[rule.id].render(
                MeasuredValues(report, facts, self._texts.words, used).get),
            advice=self._also_tell[rule.id] if outranked else self._advice[rule.id],
            source=self._sources[rule.id],
            acknowledged_downgrades=self._acknowledged.get(rule.id, ()),
        )
        return finding, tuple(sorted(used & self._texts.fell_back_words))

    def escalation_finding(self, rule: RuleSpec, fired: Iterable[FiredRule]) -> Finding:
        """The finding of escalation ``rule``, counting the ``fired`` rules at its level.

        ``fired`` is in result order (level, then id); the timeline passes its own rules
        along with the report's.
        """
        assert rule.when_findings is not None
        counted = [r for r in fired if r.level is rule.when_findings.level]
        return Finding(
            rule_id=rule.id,
            level=rule.level,
            explanation=self._explanations[rule.id].render({
                "count": str(len(counted)),
                "findings": "; ".join(self._titles.get(r.id, r.title) for r in counted)}.get),
            advice=self._advice[rule.id],
            source=self._sources[rule.id],
            based_on=tuple(r.id for r in counted),
            acknowledged_downgrades=self._acknowledged.get(rule.id, ()),
        )

    # How each attribute bears on what a result reads, for text_differences. A test checks
    # that every attribute is named in one of these, so none is left out of the comparison.
    _PER_RULE = ("_rules", "_order", "_sources", "_titles", "_explanations", "_advice",
                 "_also_tell", "_reassurance", "_rule_fallbacks", "_acknowledged",
                 "_shown_facts")
    """Mappings by rule id: what one rule adds to the results it fires in."""
    _PER_LEVEL = ("_levels", "_level_fallbacks")
    """Mappings by level: its label and action."""
    _EVERYWHERE = ("_locale", "_summary", "_summary_fallbacks")
    """What any result can show."""
    _QUESTIONS = ("_questions", "_question_fallbacks", "_question_order", "_rule_ranks",
                  "_escalations", "_question_bits", "_rank_masks", "_group_masks",
                  "_unanswered_masks", "_question_masks", "_ended_by_some_answer",
                  "_rule_question_masks")
    """What decides which questions a result asks, and their texts."""
    _SELF_CARE = ("_watch_for", "_watch_for_fallbacks")
    """The watch list, in self-care results only."""
    _NOT_COMPARED = ("_texts", "_read_shown", "_ruleset", "_findings", "_results",
                     "_outlines", "_outranked_findings", "_reaches", "_max_cached")
    """The texts (their value words are compared; the rest is in the attributes above),
    functions of a rule's explanation (compared in ``_rules``), the ruleset's identity (not
    a text) and the caches."""

    def text_differences(self, other: Explainer) -> TextDifferences:
        """Where this explainer's results and ``other``'s (another pack's, same locale) can
        differ for the same report, with the same rules and question keys fired.

        ``rules diff`` builds both results only where they can differ: a report that fires
        none of ``rules`` reads the same in both packs, apart from the ruleset's identity.
        """
        differing: set[str] = set()
        for name in self._PER_RULE:
            mine, theirs = getattr(self, name), getattr(other, name)
            differing.update(rule_id for rule_id in mine.keys() | theirs.keys()
                             if mine.get(rule_id, _ABSENT) != theirs.get(rule_id, _ABSENT))
        everywhere = any(getattr(self, name) != getattr(other, name)
                         for name in self._EVERYWHERE)
        everywhere = everywhere or self._texts.words != other._texts.words \
            or self._texts.fell_back_words != other._texts.fell_back_words
        self_care = any(getattr(self, name) != getattr(other, name) for name in self._SELF_CARE)
        questions = any(getattr(self, name) != getattr(other, name) for name in self._QUESTIONS)
        levels = frozenset(level for level in Urgency if any(
            getattr(self, name)[level] != getattr(other, name)[level]
            for name in self._PER_LEVEL))
        return TextDifferences(frozenset(differing), levels, everywhere, questions, self_care,
                               {rule.id: rule.level for rule in self._rules.values()})

    @property
    def words(self) -> Mapping[str, str]:
        """How measured values are shown in this locale (``PackTexts.words``)."""
        return self._texts.words

    @property
    def texts(self) -> PackTexts:
        """The pack's texts in this locale (the timeline renders its findings from them)."""
        return self._texts

    @property
    def locale(self) -> str:
        """The locale of this explainer's texts (``en``, ``es``)."""
        return self._locale

    def with_findings(self, result: TriageResult, findings: Sequence[Finding],
                      fired: Sequence[FiredRule],
                      fallbacks: Iterable[str] = ()) -> TriageResult:
        """``result`` (this explainer's, for the same report) with ``findings`` in its place.

        ``fired`` are the rules of ``findings`` in result order, report and timeline rules
        alike; the level, action, summary, advice, reassurance and the findings' own advice
        follow them, by the same wording policy as a single report's result. The result's
        ``fallbacks`` are listed again for what it now shows, with ``fallbacks`` (the keys
        of texts the new findings showed in English) added.
        """
        level = findings[0].level if findings else Urgency.SELF_CARE
        worded, shown = self._worded(level, fired, len(result.questions))
        # The value words of the findings kept and the questions stay what they were.
        shown += [key for key in result.fallbacks if key.startswith(("values.", "questions."))]
        shown += fallbacks
        return result.model_copy(update={
            **worded,
            "findings": self.as_outranked(findings, level),
            "fallbacks": tuple(sorted(set(shown))),
        })

    def level_texts(self, level: Urgency) -> tuple[str, str]:
        """The level's label and action in this locale."""
        return self._levels[level]

    def summary(self, level: Urgency, fired: Sequence[FiredRule], unanswered: int) -> str:
        """The one-line summary of a result: its level, the warning signs (or that there
        are none), the action, and how many questions are still to answer."""
        return self._summary_of(level, fired, unanswered)[0]

    def _summary_of(self, level: Urgency, rules: Sequence[FiredRule],
                    unanswered: int) -> tuple[str, list[str]]:
        """The one-line summary, and which summary templates it used."""
        label, action = self._levels[level]
        templates = self._summary
        warnings = [self._titles.get(r.id, r.title) for r in rules
                    if r.level is not Urgency.SELF_CARE]
        if warnings:
            used = ["warnings"]
            shown = ", ".join(warnings[:3])
            if len(warnings) > 3:
                used.append("more")
                shown = templates["more"].render({"warnings": shown,
                                                  "count": str(len(warnings) - 3)}.get)
            text = templates["warnings"].render({"level": label, "warnings": shown,
                                                 "action": action}.get)
        elif rules:
            used = ["after_effects"]
            text = templates["after_effects"].render({
                "level": label, "after_effects": ", ".join(self._titles.get(r.id, r.title)
                                                           for r in rules)}.get)
        else:
            used = ["nothing"]
            text = templates["nothing"].render({"level": label}.get)
        if unanswered:
            used.append("questions")
            text += " " + templates["questions"].render({"count": str(unanswered)}.get)
        return text, used


_RANKS_DOWN = tuple(range(len(Urgency) - 1, -1, -1))
"""Level ranks, highest first."""
_URGENT_RANK = Urgency.URGENT.rank


_ABSENT = object()
"""A rule one pack does not have (differs from any value)."""


def _shown_facts(template: str) -> tuple[str, ...]:
    """The facts whose values an explanation shows."""
    return tuple(sorted({name for name in rendered_names(template) if name in FACT_FIELDS}))


def _shown_reader(template: str) -> Callable[[SymptomReport], object]:
    """Reads the report fields whose values a report rule's explanation shows.

    Equal values of a field always render the same (``20`` and ``20.0`` hours both show
    as "20"), so these values, with the rule, determine the explanation.
    """
    fields = sorted({FACT_FIELDS[name].report_field for name in _shown_facts(template)})
    return operator.attrgetter(*fields) if fields else _nothing


def _nothing(_report: SymptomReport) -> None:
    return None


class MeasuredValues:
    """The measured values of a report, for :func:`~marrow_triage.pack.templates.render`:
    renders only the placeholders a template uses, in the value words given
    (``PackTexts.words``)."""

    def __init__(self, report: SymptomReport, facts: Mapping[str, FactValue],
                 words: Mapping[str, str], used: set[str] | None = None) -> None:
        self._report = report
        self._facts = facts
        self._words = words
        self._used = used

    def get(self, name: str) -> str | None:
        """The value shown for placeholder ``name``; None for a name that is not a fact."""
        if name not in FACT_FIELDS:
            return None
        return render_value(name, self._report, self._facts, self._words, self._used)


def _answer_groups(pack: RulePack, field: str) -> tuple[frozenset[str], ...]:
    """For each answer to ``field`` that can matter (each value the rules name, each
    threshold and a hundredth either side, yes and no), the raising rules it would fire
    together, the rest of each rule taken to hold."""
    rules = [pack.rule(rule_id) for rule_id in pack.raising_answers(field)]
    answers: set[object] = {True, False}
    for rule in rules:
        assert rule.when is not None  # raising rules are report rules
        for test in field_tests(rule.when):
            if test.field != field or test.op == "missing":
                continue
            if test.op in ("at_least", "below"):
                point = Fraction(test.value)  # type: ignore[arg-type]
                answers.update({point, point - Fraction(1, 100), point + Fraction(1, 100)})
            elif isinstance(test.value, tuple):
                answers.update(test.value)
            else:
                answers.add(test.value)
    groups = {frozenset(rule.id for rule in rules
                        if rule.when is not None and _answer_fires(rule.when, field, answer))
              for answer in answers}
    return tuple(sorted((g for g in groups if g), key=sorted))


def _answer_fires(condition: Condition, field: str, answer: object) -> bool:
    """Whether ``condition`` holds with ``field`` answered ``answer``, every test of
    another fact taken to hold."""
    if isinstance(condition, FieldTest):
        if condition.field != field:
            return True
        if condition.op == "missing":
            return condition.value is False
        if isinstance(answer, bool) != isinstance(condition.value, bool) and \
                condition.op in ("is", "at_least", "below"):
            return False
        try:
            if condition.op == "at_least":
                return answer >= condition.value  # type: ignore[operator]
            if condition.op == "below":
                return answer < condition.value  # type: ignore[operator]
        except TypeError:
            return False
        if condition.op == "is":
            return answer == condition.value
        return answer in condition.value  # type: ignore[operator]
    if isinstance(condition, AllOf):
        return all(_answer_fires(part, field, answer) for part in condition.parts)
    return any(_answer_fires(part, field, answer) for part in condition.parts)


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
