"""Properties of triage over generated reports (hypothesis, via marrow_triage.testing).

Monotonicity, °F/°C invariance, totality, determinism (including rule-file order),
explanation completeness, and agreement with the independent reference evaluator.
"""

from __future__ import annotations

import enum
import json
import random
import shutil
import subprocess
import sys
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from marrow_triage import (
    RulePack,
    SymptomReport,
    Temperature,
    TriageEngine,
    TriageResult,
    Urgency,
)
from marrow_triage.models import Bleeding, Bruising, NauseaOrVomiting, PainTrend, SiteDischarge
from marrow_triage.testing import report_dicts, reports, reports_at_level, temperatures
from reference import LEVELS, ReferencePack, exact

ORDERED_ENUMS: dict[str, list[str]] = {
    # least to most worrying
    "bleeding": [m.value for m in Bleeding],
    "site_discharge": [m.value for m in SiteDischarge],
    "bruising": [m.value for m in Bruising],
    "pain_trend": [PainTrend.BETTER.value, PainTrend.SAME.value, PainTrend.WORSE.value],
    "nausea_or_vomiting": [m.value for m in NauseaOrVomiting],
}
PAINS = ("site_pain", "back_or_abdominal_pain")
FLAGS = tuple(
    name for name, info in SymptomReport.model_fields.items()
    if info.annotation is not None and "bool" in str(info.annotation)
)


@pytest.fixture(scope="module")
def reference(rules_dir: Path) -> ReferencePack:
    return ReferencePack(rules_dir)


def celsius_of(reading: Temperature) -> Fraction:
    value = exact(reading.value)
    return value if reading.unit.value == "C" else (value - 32) * Fraction(5, 9)


def with_(report: SymptomReport, **changes: Any) -> SymptomReport:
    data = report.model_dump(mode="json")
    data.update(changes)
    return SymptomReport.model_validate({k: v for k, v in data.items() if v is not None})


def question_ids(pack: RulePack, result: TriageResult) -> set[str]:
    from marrow_triage.pack.facts import FACT_FIELDS

    by_content = {(FACT_FIELDS[q.field].report_field, q.text): q.id
                  for q in pack.questions_to_ask}
    return {by_content[(q.field, q.text)] for q in result.questions}


LOW_TEMPERATURE_C = Fraction(36)
NORMAL_TOP_C = Fraction(75, 2)
"""The normal range of the at-risk rules (rules/neutropenia-risk.yaml), 36.0 to 37.5 °C."""


def test_flags_are_found() -> None:
    assert {"chills", "chest_pain", "low_white_cell_count", "received_sedation"} <= set(FLAGS)
    assert not set(FLAGS) & {"site_pain", "temperature", "bleeding"}


# --- monotonicity ------------------------------------------------------------------

@st.composite
def worsened_pairs(draw: st.DrawFn) -> tuple[str, SymptomReport, SymptomReport]:
    """(field, report, the same report with that one field worse or equal).

    "Worse" is: a temperature further from the normal range 36.0 to 37.5 °C (in either unit:
    higher above 36.0 °C, lower below it, and below it rather than within it); a higher pain score;
    a later value in each enum's order (bleeding none < spots < stops with pressure <
    soaks < does not stop; discharge none < clear < unusual; bruising none < mild <
    large; pain better < same < worse); a flag going from unanswered or "no" to "yes"
    (a symptom or a risk factor). Not compared: hours since the procedure (not a severity
    scale: sedation and the 72-hour rule depend on it both ways), and answering a field
    that was unanswered (a measured temperature rightly replaces "temperature not taken").
    """
    report = draw(reports())
    field = draw(st.sampled_from(["temperature", *PAINS, *ORDERED_ENUMS, *FLAGS]))
    if field == "temperature":
        a, b = draw(temperatures()), draw(temperatures())
        low, high = sorted((a, b), key=celsius_of)
        if celsius_of(low) < LOW_TEMPERATURE_C:
            # Below 36.0 °C is itself a warning sign after anticancer treatment: further
            # from normal is worse, so a lower reading there is the worse one, and a
            # reading above the normal range is not comparable with one below it.
            assume(celsius_of(high) < NORMAL_TOP_C)
            low, high = high, low
        pair = (low.model_dump(mode="json"), high.model_dump(mode="json"))
    elif field in PAINS:
        low_pain, high_pain = sorted((draw(st.integers(0, 10)), draw(st.integers(0, 10))))
        pair = (low_pain, high_pain)
    elif field in ORDERED_ENUMS:
        order = ORDERED_ENUMS[field]
        i, j = sorted((draw(st.sampled_from(order)), draw(st.sampled_from(order))),
                      key=order.index)
        pair = (i, j)
    else:  # a flag: not answered or no, then yes
        pair = (draw(st.sampled_from([None, False])), True)
    return field, with_(report, **{field: pair[0]}), with_(report, **{field: pair[1]})


@settings(max_examples=250)
@given(worsened_pairs())
def test_worsening_one_field_never_lowers_the_level(
    engine: TriageEngine, case: tuple[str, SymptomReport, SymptomReport]
) -> None:
    field, better, worse = case
    before, after = engine.triage(better), engine.triage(worse)
    assert after.level >= before.level, (field, before.summary, after.summary)


@settings(max_examples=60)
@given(st.sampled_from(list(Urgency)).flatmap(
    lambda level: st.tuples(st.just(level), reports_at_level(level))))
def test_adding_a_yes_to_any_report_never_lowers_the_level(
    engine: TriageEngine, case: tuple[Urgency, SymptomReport]
) -> None:
    level, report = case
    for flag in FLAGS:
        if getattr(report, flag) is not True:
            assert engine.triage(with_(report, **{flag: True})).level >= level, flag


# --- °F / °C invariance ----------------------------------------------------------------

@settings(max_examples=150)
@given(reports(), st.integers(600, 900))
def test_the_same_temperature_in_c_and_f_gives_the_same_triage(
    engine: TriageEngine, report: SymptomReport, twentieths: int
) -> None:
    c = Fraction(twentieths, 20)  # a multiple of 0.05 °C: exact in °F to 2 decimals
    f = c * Fraction(9, 5) + 32
    c_text, f_text = (str(Decimal(x.numerator) / Decimal(x.denominator)) for x in (c, f))
    in_c = engine.triage(with_(report, temperature={"value": float(c_text), "unit": "C"}))
    in_f = engine.triage(with_(report, temperature={"value": float(f_text), "unit": "F"}))
    assert in_c.level is in_f.level
    assert [x.rule_id for x in in_c.findings] == [x.rule_id for x in in_f.findings]
    assert in_c.questions == in_f.questions
    assert in_c.advice == in_f.advice
    for finding in in_f.findings:
        if "Temperature" in finding.explanation:
            assert f"{Decimal(f_text).normalize():f} °F" in finding.explanation


# --- totality --------------------------------------------------------------------------

def check_result(engine: TriageEngine, result: TriageResult) -> None:
    levels = [f.level for f in result.findings]
    assert result.level is max(levels, default=Urgency.SELF_CARE)
    if result.level > Urgency.SELF_CARE:
        assert any(f.level is result.level and f.explanation for f in result.findings)
    assert result.action == engine.pack.texts[f"levels.{result.level.value}.action"]
    assert result.summary and "\n" not in result.summary
    assert result.ruleset.sha256 == engine.pack.sha256
    assert len(set(result.advice)) == len(result.advice)
    assert all(f.source.quote for f in result.findings)


@settings(max_examples=200)
@given(st.one_of(reports(), reports(complete=True)))
def test_every_valid_report_gets_a_consistent_result(
    engine: TriageEngine, report: SymptomReport
) -> None:
    check_result(engine, engine.triage(report))


@settings(max_examples=60)
@given(report_dicts())
def test_report_dicts_are_valid_json_reports(engine: TriageEngine, data: dict[str, Any]) -> None:
    text = json.dumps(data, allow_nan=False)
    assert engine.triage_json(text) == engine.triage(data)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                               max_size=4),
    max_leaves=12,
)
FIELD_NAMES = list(SymptomReport.model_fields)
ALMOST_REPORTS = st.dictionaries(
    st.sampled_from([*FIELD_NAMES, "temprature", "site_pian", "unit", "value"]),
    st.one_of(JSON, st.sampled_from([True, False, 0, 10, 11, -1, 38.3, 60, "C", "F", "none",
                                     "mild", "unusual", {"value": 38.3, "unit": "C"},
                                     {"value": 101, "unit": "K"}, float("nan")])),
    max_size=8,
)


@settings(max_examples=200)
@given(st.one_of(JSON, ALMOST_REPORTS))
def test_any_input_gets_a_result_or_a_validation_error(engine: TriageEngine, data: Any) -> None:
    try:
        result = engine.triage(data)
    except ValidationError as exc:
        assert exc.errors()
    else:
        check_result(engine, result)
    try:
        text = json.dumps(data)
    except ValueError:
        return
    try:
        engine.triage_json(text)
    except ValidationError as exc:
        assert exc.errors()


@settings(max_examples=100)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_any_text_gets_a_result_or_a_validation_error(engine: TriageEngine,
                                                      text: str | bytes) -> None:
    try:
        check_result(engine, engine.triage_json(text))
    except ValidationError as exc:
        assert exc.errors()


# --- determinism and rule-file order ----------------------------------------------------

def shuffled_pack(source: Path, target: Path, seed: int) -> None:
    """Copy a pack with its rules and questions shuffled into differently named files."""
    rng = random.Random(seed)
    target.mkdir()
    if (source / "locales").is_dir():  # translations are keyed by id, not by file
        shutil.copytree(source / "locales", target / "locales")
    sections: dict[str, list[Any]] = {}
    for path in sorted(source.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        if path.name == "pack.yaml":
            (target / "pack.yaml").write_text(text, encoding="utf-8")
            continue
        for key, items in (yaml.safe_load(text) or {}).items():
            sections.setdefault(key, []).extend(items)
    for key, items in sections.items():
        rng.shuffle(items)
        parts = 3 if key == "rules" else 1
        for i in range(parts):
            name = f"{rng.randrange(10**6):06d}-{key}-{i}.yaml"
            chunk = items[i::parts]
            (target / name).write_text(
                yaml.safe_dump({key: chunk}, sort_keys=False, allow_unicode=True, width=200),
                encoding="utf-8")


@pytest.fixture(scope="module")
def shuffled_engines(rules_dir: Path, tmp_path_factory: pytest.TempPathFactory
                     ) -> list[TriageEngine]:
    engines = []
    for seed in (1, 2):
        target = tmp_path_factory.mktemp("shuffled") / "pack"
        shuffled_pack(rules_dir, target, seed)
        engines.append(TriageEngine.from_path(target))
    return engines


def test_shuffled_pack_is_really_shuffled(rules_dir: Path, tmp_path: Path) -> None:
    shuffled_pack(rules_dir, tmp_path / "a", 1)
    names = sorted(p.name for p in (tmp_path / "a").glob("*.yaml"))
    assert set(names).isdisjoint(p.name for p in rules_dir.glob("*.yaml") if
                                 p.name != "pack.yaml")
    first_rules = [yaml.safe_load(p.read_text())["rules"][0]["id"]
                   for p in (tmp_path / "a").glob("*-rules-*.yaml")]
    original = [yaml.safe_load(p.read_text()).get("rules", [{}])[0].get("id")
                for p in rules_dir.glob("*.yaml") if p.name != "pack.yaml"]
    assert first_rules != original


def test_shuffled_packs_have_the_same_sha256(engine: TriageEngine,
                                             shuffled_engines: list[TriageEngine]) -> None:
    for other in shuffled_engines:
        assert other.pack.sha256 == engine.pack.sha256
        assert other.pack.rules == engine.pack.rules


@settings(max_examples=120)
@given(st.one_of(reports(), st.sampled_from(list(Urgency)).flatmap(reports_at_level)))
def test_results_are_byte_identical_whatever_the_rule_file_order(
    engine: TriageEngine, shuffled_engines: list[TriageEngine], report: SymptomReport
) -> None:
    expected = engine.triage(report).model_dump_json()
    assert engine.triage(report).model_dump_json() == expected
    assert engine.triage(report.model_dump(mode="json")).model_dump_json() == expected
    for other in shuffled_engines:
        assert other.triage(report).model_dump_json() == expected


# --- explanation completeness -----------------------------------------------------------

def shown(fact: str, report: SymptomReport) -> str:
    """How a measured value must appear in an explanation (rendered independently)."""
    if fact == "temperature_c":
        if report.temperature is None:
            return "not answered"
        return (f"{Decimal(repr(report.temperature.value)).normalize():f} "
                f"°{report.temperature.unit.value}")
    value = getattr(report, fact)
    if value is None:
        return "not answered"
    if fact == "hours_since_procedure":
        return f"{Decimal(repr(value)).normalize():f} hours"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value}/10"
    if isinstance(value, enum.Enum):
        return str(value.value).replace("_", " ")
    return f"\u201c{value}\u201d"  # free text, quoted as written


def condition_tests(condition: dict[str, Any]) -> list[tuple[str, Any]]:
    """(fact, threshold as written or None) for every test in a rule-file condition."""
    out: list[tuple[str, Any]] = []
    for key, value in condition.items():
        if key in ("all", "any"):
            for part in value:
                out.extend(condition_tests(part))
        else:
            for op, arg in value.items():
                out.append((key, arg if op in ("at_least", "below") else None))
    return out


@settings(max_examples=150)
@given(st.one_of(reports(), st.sampled_from(list(Urgency)).flatmap(reports_at_level)))
def test_every_explanation_shows_each_measured_value_and_threshold(
    engine: TriageEngine, reference: ReferencePack, report: SymptomReport
) -> None:
    rules = {r["id"]: r for r in reference.rules}
    result = engine.triage(report)
    for finding in result.findings:
        rule = rules[finding.rule_id]
        if "when_findings" in rule:
            count = sum(1 for f in result.findings
                        if f.level.value == rule["when_findings"]["level"])
            assert f"{count} findings" in finding.explanation
            assert str(rule["when_findings"]["at_least"]) in finding.explanation
            assert len(finding.based_on) == count
            continue
        for fact, threshold in condition_tests(rule["when"]):
            assert shown(fact, report) in finding.explanation, (fact, finding.explanation)
            if threshold is not None:
                assert str(threshold) in finding.explanation, (threshold, finding.explanation)


# --- differential: the engine against the reference evaluator ----------------------------

@settings(max_examples=300)
@given(st.one_of(reports(), reports(complete=True),
                 st.sampled_from(list(Urgency)).flatmap(reports_at_level)))
def test_engine_agrees_with_the_reference_evaluator(
    engine: TriageEngine, reference: ReferencePack, report: SymptomReport
) -> None:
    result = engine.triage(report)
    verdict = reference.evaluate(report)
    assert result.level.value == verdict.level
    assert {f.rule_id for f in result.findings} == verdict.rules
    assert question_ids(engine.pack, result) == verdict.questions


def test_the_reference_reads_the_packaged_rules(engine: TriageEngine, rules_dir: Path,
                                                 reference: ReferencePack) -> None:
    assert RulePack.from_path(rules_dir).sha256 == engine.pack.sha256
    assert {r["id"] for r in reference.rules} == {r.id for r in engine.pack.rules}
    assert {q["id"] for q in reference.questions} == {q.id for q in engine.pack.questions}
    assert set(LEVELS) == {u.value for u in Urgency}


def test_the_reference_can_disagree(engine: TriageEngine, reference: ReferencePack) -> None:
    """The differential test is not vacuous: the reference evaluates the rules itself."""
    report = SymptomReport.model_validate(
        {"hours_since_procedure": 3, "temperature": {"value": 100.94, "unit": "F"}})
    assert reference.evaluate(report).rules == {"fever"}
    fake = ReferencePack.__new__(ReferencePack)
    fake.rules = [dict(r, level="soon") if r["id"] == "fever" else r for r in reference.rules]
    fake.questions = reference.questions
    assert fake.evaluate(report).level != engine.triage(report).level.value


# --- the strategies themselves ------------------------------------------------------------

@pytest.mark.parametrize("level", list(Urgency), ids=str)
def test_reports_at_level_reach_each_level(engine: TriageEngine, reference: ReferencePack,
                                           level: Urgency) -> None:
    seen: set[str] = set()

    @settings(max_examples=40, database=None)
    @given(reports_at_level(level))
    def check(report: SymptomReport) -> None:
        result = engine.triage(report)
        assert result.level is level
        assert reference.evaluate(report).level == level.value
        seen.update(f.rule_id for f in result.findings if f.level is level)

    check()
    assert seen or level is Urgency.SELF_CARE


def test_reports_at_level_with_another_engine(engine: TriageEngine, pack_copy: Path) -> None:
    """With a pack where urgent is reachable only by escalation, the strategy still works."""
    for path in pack_copy.glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        if not isinstance(data.get("rules"), list):
            continue
        data["rules"] = [r for r in data["rules"]
                         if r["level"] != "urgent" or "when_findings" in r]
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    other = TriageEngine.from_path(pack_copy)
    assert {r.id for r in other.pack.rules if r.level is Urgency.URGENT} == {
        "multiple-amber-findings"}

    @settings(max_examples=20, database=None)
    @given(reports_at_level(Urgency.URGENT, other))
    def check(report: SymptomReport) -> None:
        result = other.triage(report)
        assert result.level is Urgency.URGENT
        assert "multiple-amber-findings" in {f.rule_id for f in result.findings}

    check()


def test_importing_marrow_triage_does_not_import_hypothesis() -> None:
    code = ("import sys, marrow_triage; marrow_triage.triage({'hours_since_procedure': 1}); "
            "sys.exit('hypothesis' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_complete_reports_answer_every_field() -> None:
    @settings(max_examples=30, database=None)
    @given(reports(complete=True))
    def check(report: SymptomReport) -> None:
        assert all(getattr(report, name) is not None for name in SymptomReport.model_fields)

    check()


@pytest.mark.parametrize(("value", "unit"), [(38.3, "C"), (38.29, "C"), (100.94, "F"),
                                             (100.93, "F"), (38.0, "C"), (100.4, "F")])
def test_generated_temperatures_reach_the_thresholds_exactly(value: float, unit: str) -> None:
    from hypothesis import find

    found = find(temperatures(), lambda t: t.value == value and t.unit.value == unit,
                 settings=settings(max_examples=5000, database=None))
    assert found.value == value


def test_generated_reports_leave_fields_out() -> None:
    from hypothesis import find

    found = find(reports(), lambda r: r.temperature is None and r.chills is True,
                 settings=settings(max_examples=2000, database=None))
    assert found.temperature is None


@settings(max_examples=200)
@given(temperatures())
def test_the_converted_temperature_shown_never_crosses_a_threshold(
    engine: TriageEngine, reference: ReferencePack, reading: Temperature
) -> None:
    """"100.939 °F (38.3 °C) is below the fever threshold of 38.3 °C" would contradict
    itself: the value shown in the other unit is on the same side of every threshold."""
    import re

    thresholds = {exact(arg) for rule in reference.rules if "when" in rule
                  for fact, arg in condition_tests(rule["when"])
                  if fact == "temperature_c" and arg is not None}
    report = SymptomReport(hours_since_procedure=5, temperature=reading, chills=True)
    explanation = {f.rule_id: f.explanation for f in engine.triage(report).findings}["chills"]
    other = "C" if reading.unit.value == "F" else "F"
    match = re.search(rf"\(([0-9.]+) °{other}\)", explanation)
    assert match, explanation
    shown = Fraction(Decimal(match.group(1)))
    true_c = celsius_of(reading)
    for t in thresholds:
        limit = t if other == "C" else t * Fraction(9, 5) + 32
        if other == "F" and (limit * 10).denominator != 1:
            continue  # shown to 1 decimal: only thresholds exact at 1 decimal can be kept
        assert (shown >= limit) == (true_c >= t), (explanation, t)


# --- taking a temperature never lowers the result (issue 15) ----------------------------

@settings(max_examples=150)
@given(reports(), st.integers(360, 374), st.sampled_from(["C", "F"]),
       st.sampled_from(["low_white_cell_count", "recent_chemotherapy"]))
def test_a_normal_reading_never_lowers_the_level_of_a_patient_at_risk(
    engine: TriageEngine, report: SymptomReport, tenths: int, unit: str, risk: str
) -> None:
    """For a patient at risk of neutropenia, answering the temperature with a reading in
    the normal range (36.0 to 37.4 °C) gives at least the level of not answering it."""
    at_risk = with_(report, **{risk: True}, temperature=None)
    celsius = Fraction(tenths, 10)
    value = celsius if unit == "C" else celsius * Fraction(9, 5) + 32
    reading = {"value": float(Decimal(value.numerator) / Decimal(value.denominator)),
               "unit": unit}
    unanswered = engine.triage(at_risk)
    measured = engine.triage(with_(at_risk, temperature=reading))
    assert measured.level >= unanswered.level, (unanswered.summary, measured.summary)


# --- one check-in and a timeline holding only it agree (issue 15) ----------------------

@settings(max_examples=80)
@given(st.one_of(reports(), st.sampled_from(list(Urgency)).flatmap(reports_at_level)))
def test_a_timeline_with_one_checkin_agrees_with_the_report(
    engine: TriageEngine, report: SymptomReport
) -> None:
    from datetime import UTC, datetime

    from marrow_triage.timeline import Timeline

    single = engine.triage(report)
    timeline = Timeline(_NoCheckins(), engine)
    through = timeline.evaluate([], report, datetime(2026, 11, 25, 8, 0, tzinfo=UTC))
    assert through.level is single.level, (single.summary, through.summary)
    assert {f.rule_id for f in single.findings} <= {f.rule_id for f in through.findings}


class _NoCheckins:
    """A store that holds nothing: the timeline sees only the check-in being evaluated."""

    def checkins(self, episode_id: str) -> list[Any]:
        return []


def test_benign_values_sit_below_the_packs_own_thresholds(pack_copy: Path) -> None:
    """The strategies' benign values follow the pack they are given: with the fever and
    pain thresholds lowered in a copy of the pack, benign values stay below the new ones."""
    from marrow_triage.testing import _benign_values

    meta = pack_copy / "pack.yaml"  # the thresholds are parameters: lower them there
    text = meta.read_text("utf-8")
    for name, was, now in (("severe_pain", "7", "5"), ("neutropenic_fever_c", "38.0", "37.5")):
        line = f"  {name}:\n    value: {was}\n"
        assert line in text
        text = text.replace(line, f"  {name}:\n    value: {now}\n")
    meta.write_text(text, "utf-8")
    benign = _benign_values(RulePack.from_path(pack_copy))

    @settings(max_examples=200, deadline=None)
    @given(reading=benign["temperature"], site_pain=benign["site_pain"])
    def check(reading: Any, site_pain: int) -> None:
        celsius = exact(reading.value) if reading.unit.value == "C" else \
            (exact(reading.value) - 32) * Fraction(5, 9)
        assert Fraction(30) <= celsius < Fraction(375, 10)
        assert site_pain < 5

    check()


# --- no result contradicts itself (issue 15) ---------------------------------------------

DEFERRING = ("within 24 hours", "re-check", "in one hour", "next contact", "has not eased",
             "is normal", "expected", "not a warning sign", "at home")
"""Words that defer or soften an action, or reassure: none belongs under urgent or emergency."""

ANY_REPORT = st.one_of(reports(), reports(complete=True),
                       st.sampled_from(list(Urgency)).flatmap(reports_at_level))


@settings(max_examples=250)
@given(ANY_REPORT)
def test_no_result_contradicts_its_level(engine: TriageEngine, report: SymptomReport) -> None:
    result = engine.triage(report)
    pack = engine.pack
    fired = [pack.rule(f.rule_id) for f in result.findings]
    if result.level >= Urgency.URGENT:
        assert result.reassurance == (), result.summary
        for text in result.advice:
            assert not any(word in text.lower() for word in DEFERRING), (text, result.summary)
            # Each line is advice of the result's own level, or what a lower finding
            # keeps to say ("also tell them about ...").
            assert any(text in (r.advice if r.level is result.level else r.also_tell)
                       for r in fired), text
        for finding in result.findings:  # a finding shown on its own says the same
            rule = pack.rule(finding.rule_id)
            assert finding.advice == (rule.advice if rule.level is result.level
                                      else rule.also_tell), finding.rule_id
            assert not any(word in text.lower() for text in finding.advice
                           for word in DEFERRING), (finding.rule_id, finding.advice)
        if result.level is Urgency.EMERGENCY:
            assert not any(text.lower().startswith(("call your care team", "contact your"))
                           for text in result.advice), result.advice
    if result.level is Urgency.SELF_CARE:
        watch = {pack.texts[f"watch_for.{name}"] for name in pack.watch_for}
        assert watch and watch <= set(result.advice)  # the warning signs to watch for
        assert "expected" not in result.action.lower()
        reassured = {text for r in fired for text in r.reassurance}
        assert set(result.reassurance) == reassured  # only about what was reported
        if not result.findings:
            assert "expected" not in result.summary.lower()


def test_the_contradiction_check_can_fail(engine: TriageEngine) -> None:
    """Without the wording policy, an emergency would carry deferring advice."""
    report = {"hours_since_procedure": 3, "new_confusion": True, "received_sedation": True,
              "site_redness": True}
    result = engine.triage(report)
    assert result.level is Urgency.EMERGENCY and result.reassurance == ()
    rules = [engine.pack.rule(f.rule_id) for f in result.findings]
    naive = [a for r in rules for a in r.advice]
    assert any(word in text.lower() for text in naive for word in DEFERRING)
    assert not any(word in text.lower() for text in result.advice for word in DEFERRING)
    assert "Also tell them about the redness around the needle site." in result.advice
    redness = next(f for f in result.findings if f.rule_id == "site-redness")
    assert redness.advice == ("Also tell them about the redness around the needle site.",)


# --- questions: asked whenever an answer could raise the level, highest first -------------

@settings(max_examples=150)
@given(ANY_REPORT)
def test_questions_are_what_could_raise_the_level_in_order(
    engine: TriageEngine, reference: ReferencePack, report: SymptomReport
) -> None:
    from marrow_triage.pack.facts import FACT_FIELDS

    result = engine.triage(report)
    reach = reference.reach(report)  # brute force: every answer tried
    by_report_field = {FACT_FIELDS[fact].report_field: level for fact, level in reach.items()}
    asked = [q.field for q in result.questions]
    assert set(asked) == set(by_report_field)
    assert set(asked) <= set(SymptomReport.model_fields)  # report fields, FHIR linkIds
    ranks = [LEVELS.index(by_report_field[name]) for name in asked]
    assert ranks == sorted(ranks, reverse=True), list(zip(asked, ranks, strict=True))
    assert asked == reference.questions_in_order(report)  # ties: the report's field order


def test_an_answer_that_fires_two_ambers_is_asked_as_urgent(engine: TriageEngine) -> None:
    """Shivering after a fever-reducing medicine fires two ambers at once (medicine while
    feverish, temperature not taken), which make urgent: asked before the amber questions."""
    result = engine.triage({"hours_since_procedure": 0, "took_fever_reducing_medicine": True})
    asked = [q.field for q in result.questions]
    assert engine.triage({"hours_since_procedure": 0, "took_fever_reducing_medicine": True,
                          "chills": True}).level is Urgency.URGENT
    assert asked.index("chills") < asked.index("site_redness")
    assert asked.index("feels_feverish") < asked.index("site_redness")
