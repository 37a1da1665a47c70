"""Timeline: each timeline rule at and either side of its windows, combination with the
single-report result, storage (restart, forget, expiry, overdue), the rule loader and CLI."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from marrow_triage import (
    ReportError,
    RulePack,
    RulePackError,
    StoreError,
    TriageEngine,
    TriageResult,
    Urgency,
)
from marrow_triage.adapters.cli.main import app
from marrow_triage.pack.catalogue import render_catalogue
from marrow_triage.timeline import SQLiteStore, Store, Timeline, TimelineError

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
CLOCK = T0 + timedelta(days=60)  # "now" for these tests: every check-in is in the past


def clock() -> datetime:
    return CLOCK
FEVER_WINDOW_RULES = {"fever-sustained"}


@pytest.fixture
def timeline(tmp_path: Path, engine: TriageEngine) -> Iterator[Timeline]:
    store = SQLiteStore(tmp_path / "timeline.db")
    yield Timeline(store, engine, clock=clock)
    store.close()


def temp(value: float, unit: str = "C") -> dict[str, Any]:
    return {"value": value, "unit": unit}


def rec(tl: Timeline, minutes: float, episode: str = "ep-1", **report: Any) -> TriageResult:
    report.setdefault("hours_since_procedure", 10 + minutes / 60)
    return tl.record(episode, report, T0 + timedelta(minutes=minutes))


def fired(result: TriageResult) -> set[str]:
    return {f.rule_id for f in result.findings}


def finding(result: TriageResult, rule_id: str) -> Any:
    return next(f for f in result.findings if f.rule_id == rule_id)


# --- fever sustained over an hour (IDSA: 38.0 °C for an hour) -------------------------

@pytest.mark.parametrize(("minutes", "expected"), [(59, False), (59.99, False), (60, True),
                                                  (61, True), (239, True)])
def test_fever_sustained_needs_an_hour(timeline: Timeline, minutes: float,
                                       expected: bool) -> None:
    first = rec(timeline, 0, temperature=temp(38.0))
    assert "fever-sustained" not in fired(first)
    assert first.level is Urgency.SOON
    second = rec(timeline, minutes, temperature=temp(38.0))
    assert ("fever-sustained" in fired(second)) is expected
    assert second.level is (Urgency.URGENT if expected else Urgency.SOON)


@pytest.mark.parametrize(("gap_minutes", "expected"), [(239, True), (240, True), (241, False)])
def test_fever_readings_more_than_four_hours_apart_are_not_one_run(
        timeline: Timeline, gap_minutes: int, expected: bool) -> None:
    rec(timeline, 0, temperature=temp(38.1))
    result = rec(timeline, gap_minutes, temperature=temp(38.1))
    assert ("fever-sustained" in fired(result)) is expected


@pytest.mark.parametrize(("between", "expected"), [(37.9, False), (38.0, True)])
def test_a_normal_reading_breaks_the_run(timeline: Timeline, between: float,
                                         expected: bool) -> None:
    rec(timeline, 0, temperature=temp(38.2))
    rec(timeline, 30, temperature=temp(between))
    result = rec(timeline, 70, temperature=temp(38.2))
    assert ("fever-sustained" in fired(result)) is expected


def test_fever_run_below_threshold_now_does_not_fire(timeline: Timeline) -> None:
    rec(timeline, 0, temperature=temp(38.2))
    result = rec(timeline, 90, temperature=temp(37.99))
    assert "fever-sustained" not in fired(result)


def test_fever_explanation_names_the_earlier_checkins(timeline: Timeline) -> None:
    rec(timeline, 0, temperature=temp(100.4, "F"))  # exactly 38.0 °C
    rec(timeline, 40, temperature=temp(38.2))
    rec(timeline, 50)  # no reading: does not break the run
    result = rec(timeline, 80, temperature=temp(38.1))
    text = finding(result, "fever-sustained").explanation
    assert "for 80 minutes" in text and "at least 60 minutes" in text
    assert "2026-11-25 08:00 UTC (100.4 °F" in text
    assert "2026-11-25 08:40 UTC (38.2 °C" in text
    assert "08:50" not in text


def test_fahrenheit_just_below_38_is_not_raised(timeline: Timeline) -> None:
    rec(timeline, 0, temperature=temp(100.39, "F"))
    result = rec(timeline, 70, temperature=temp(38.0))
    assert "fever-sustained" not in fired(result)


# --- raised temperature with low white cells / chemotherapy reported earlier -----------

@pytest.mark.parametrize(("now", "expected"), [(37.49, False), (37.5, True), (37.99, True),
                                               (38.0, True), (36.0, False), (35.99, True)])
def test_neutropenia_risk_from_an_earlier_checkin(timeline: Timeline, now: float,
                                                  expected: bool) -> None:
    rec(timeline, 0, temperature=temp(37.0), recent_chemotherapy=True)
    result = rec(timeline, 300, temperature=temp(now))
    rule = "raised-temperature-with-neutropenia-risk-in-history"
    assert (rule in fired(result)) is expected
    assert (result.level is Urgency.EMERGENCY) is expected
    if expected:
        assert "08:00 UTC (recent chemotherapy)" in finding(result, rule).explanation


def test_no_neutropenia_risk_reported_means_no_emergency(timeline: Timeline) -> None:
    rec(timeline, 0, temperature=temp(37.0), recent_chemotherapy=False,
        low_white_cell_count=False)
    result = rec(timeline, 300, temperature=temp(38.1))
    assert result.level is Urgency.SOON


def test_sustained_fever_with_low_white_cells_is_an_emergency(timeline: Timeline) -> None:
    rec(timeline, 0, temperature=temp(38.1), low_white_cell_count=True)
    result = rec(timeline, 60, temperature=temp(38.1))
    assert {"fever-sustained", "raised-temperature-with-neutropenia-risk-in-history"} <= \
        fired(result)
    assert result.level is Urgency.EMERGENCY


# --- new raised temperature days after the procedure ----------------------------------

@pytest.mark.parametrize(("hours", "expected"), [(47.99, False), (48, True), (72, True)])
def test_new_fever_days_after_the_procedure(timeline: Timeline, hours: float,
                                            expected: bool) -> None:
    timeline.record("ep-1", {"hours_since_procedure": 20, "temperature": temp(37.2)}, T0)
    result = timeline.record("ep-1", {"hours_since_procedure": hours,
                                      "temperature": temp(38.0)}, T0 + timedelta(hours=30))
    assert ("new-raised-temperature-days-after" in fired(result)) is expected
    assert result.level is (Urgency.URGENT if expected else Urgency.SOON)
    if expected:
        assert "at most 37.2 °C" in finding(result, "new-raised-temperature-days-after") \
            .explanation


@pytest.mark.parametrize(("earlier", "expected"), [(37.99, True), (38.0, False)])
def test_new_fever_needs_earlier_readings_below_38(timeline: Timeline, earlier: float,
                                                   expected: bool) -> None:
    timeline.record("ep-1", {"hours_since_procedure": 20, "temperature": temp(earlier)}, T0)
    result = timeline.record("ep-1", {"hours_since_procedure": 60,
                                      "temperature": temp(38.1)}, T0 + timedelta(hours=40))
    assert ("new-raised-temperature-days-after" in fired(result)) is expected


def test_earlier_maximum_is_cut_not_rounded(timeline: Timeline) -> None:
    timeline.record("ep-1", {"hours_since_procedure": 20,
                             "temperature": temp(100.399, "F")}, T0)  # 37.9994 °C
    result = timeline.record("ep-1", {"hours_since_procedure": 60,
                                      "temperature": temp(38.1)}, T0 + timedelta(hours=40))
    text = finding(result, "new-raised-temperature-days-after").explanation
    assert "at most 37.99 °C, below 38.0 °C" in text


def test_new_fever_needs_an_earlier_reading(timeline: Timeline) -> None:
    timeline.record("ep-1", {"hours_since_procedure": 20, "bleeding": "none"}, T0)
    result = timeline.record("ep-1", {"hours_since_procedure": 60,
                                      "temperature": temp(38.1)}, T0 + timedelta(hours=40))
    assert "new-raised-temperature-days-after" not in fired(result)


# --- bleeding reported again ----------------------------------------------------------

@pytest.mark.parametrize(("earlier", "now", "expected"), [
    ("stops_with_pressure", "stops_with_pressure", True),
    ("soaks_dressing", "stops_with_pressure", True),
    ("spots_on_dressing", "stops_with_pressure", False),
    ("stops_with_pressure", "spots_on_dressing", False),
    ("none", "does_not_stop", False),
])
def test_bleeding_again(timeline: Timeline, earlier: str, now: str, expected: bool) -> None:
    rec(timeline, 0, bleeding=earlier)
    rec(timeline, 60, bleeding="none")
    result = rec(timeline, 24 * 60, bleeding=now)
    assert ("bleeding-again" in fired(result)) is expected
    if expected:
        assert result.level >= Urgency.URGENT
        assert "08:00 UTC (bleeding" in finding(result, "bleeding-again").explanation


def test_out_of_order_checkins_are_weighed_in_time_order(timeline: Timeline) -> None:
    late = rec(timeline, 600, bleeding="stops_with_pressure")
    early = rec(timeline, 0, bleeding="stops_with_pressure")
    assert "bleeding-again" not in fired(late) | fired(early)
    assert [c.at for c in timeline.history("ep-1")] == [T0, T0 + timedelta(minutes=600)]
    later = rec(timeline, 700, bleeding="stops_with_pressure")
    assert "bleeding-again" in fired(later)


def test_episodes_do_not_mix(timeline: Timeline) -> None:
    rec(timeline, 0, episode="a", bleeding="stops_with_pressure")
    result = rec(timeline, 60, episode="b", bleeding="stops_with_pressure")
    assert "bleeding-again" not in fired(result)


# --- site pain rising, or persisting beyond five days ----------------------------------

@pytest.mark.parametrize(("pains", "expected"), [
    ((2, 3), False), ((2, 3, 4), True), ((2, 3, 3), False), ((3, 2, 3, 4), True),
    ((2, None, 3, 4), True), ((4, 3, 2), False), ((1, 2, 1, 2), False),
])
def test_site_pain_rising(timeline: Timeline, pains: tuple[int | None, ...],
                          expected: bool) -> None:
    results = []
    for i, pain in enumerate(pains):
        extra = {} if pain is None else {"site_pain": pain}
        results.append(rec(timeline, i * 180, **extra))
    assert ("site-pain-rising" in fired(results[-1])) is expected
    assert not any("site-pain-rising" in fired(r) for r in results[:-1]) or pains[0] is None
    if expected:
        assert finding(results[-1], "site-pain-rising").level is Urgency.SOON


@pytest.mark.parametrize(("hours", "pain", "expected"), [
    (71.99, 4, False), (72, 1, True), (200, 4, True), (130, 0, False), (336, 6, True),
])
def test_site_pain_beyond_several_days(timeline: Timeline, engine: TriageEngine,
                                       hours: float, pain: int, expected: bool) -> None:
    """Pain still there beyond the pack's "several days" is found by the report rule, so
    one report and a timeline of check-ins agree (it was a timeline-only rule in 1.0)."""
    report = {"hours_since_procedure": hours, "site_pain": pain}
    assert ("site-pain-beyond-several-days" in fired(engine.triage(report))) is expected
    rec(timeline, 0, site_pain=6, hours_since_procedure=24)
    result = timeline.record("ep-1", report, T0 + timedelta(hours=hours - 24))
    assert ("site-pain-beyond-several-days" in fired(result)) is expected
    assert (result.level >= Urgency.SOON) is expected or pain >= 7


# --- combination with the single-report result -----------------------------------------

def test_first_checkin_equals_single_report_triage(timeline: Timeline,
                                                   engine: TriageEngine) -> None:
    report = {"hours_since_procedure": 30, "temperature": temp(101.3, "F"), "site_pain": 3}
    assert timeline.record("ep-1", report, T0) == engine.triage(report)


def test_timeline_and_report_ambers_escalate_together(timeline: Timeline) -> None:
    rec(timeline, 0, site_pain=2)
    rec(timeline, 180, site_pain=3)
    result = rec(timeline, 360, site_pain=4, site_redness=True)
    escalation = finding(result, "multiple-amber-findings")
    assert set(escalation.based_on) == {"site-pain-rising", "site-redness"}
    assert result.level is Urgency.URGENT
    assert result.findings[0].rule_id == "multiple-amber-findings"
    assert result.summary.startswith("Urgent:")


def test_level_is_the_highest_finding(timeline: Timeline, engine: TriageEngine) -> None:
    rec(timeline, 0, bleeding="stops_with_pressure")
    report = {"hours_since_procedure": 40, "bleeding": "does_not_stop",
              "dizziness_or_fainting": True}
    result = timeline.record("ep-1", report, T0 + timedelta(hours=30))
    assert result.level is Urgency.EMERGENCY == engine.triage(report).level
    assert "bleeding-again" in fired(result)
    assert result.level == max(f.level for f in result.findings)
    assert len(result.advice) == len(set(result.advice))


# --- validation, storage, restart, forget, expiry, overdue ------------------------------

def test_invalid_input_is_rejected_and_nothing_is_stored(timeline: Timeline) -> None:
    with pytest.raises(TimelineError, match="no time zone"):
        timeline.record("ep-1", {"hours_since_procedure": 1}, datetime(2026, 11, 25, 8))
    with pytest.raises(TimelineError, match="episode id"):
        timeline.record("bad id", {"hours_since_procedure": 1}, T0)
    # The library's report error (still a pydantic ValidationError), naming the field.
    with pytest.raises(ReportError) as bad_field:
        timeline.record("ep-1", {"hours_since_procedure": 1, "site_pian": 3}, T0)
    assert isinstance(bad_field.value, ValidationError)
    assert [p.field for p in bad_field.value.problems] == ["site_pian"]
    assert timeline.history("ep-1") == []


def test_time_zones_are_normalised(timeline: Timeline) -> None:
    paris = timezone(timedelta(hours=1))
    rec(timeline, 0, temperature=temp(38.1))
    result = timeline.record("ep-1", {"hours_since_procedure": 11,
                                      "temperature": temp(38.1)},
                             datetime(2026, 11, 25, 10, 0, tzinfo=paris))  # 09:00 UTC
    assert "fever-sustained" in fired(result)
    assert timeline.history("ep-1")[-1].at == T0 + timedelta(hours=1)


def test_restart_continues_the_timeline(tmp_path: Path, engine: TriageEngine) -> None:
    path = tmp_path / "t.db"
    with SQLiteStore(path) as store:
        Timeline(store, engine, clock=clock).record(
            "ep-1", {"hours_since_procedure": 10, "temperature": temp(38.1)}, T0)
    with SQLiteStore(path) as store:
        assert isinstance(store, Store)
        timeline = Timeline(store, engine, clock=clock)
        result = timeline.record("ep-1", {"hours_since_procedure": 11,
                                          "temperature": temp(38.1)}, T0 + timedelta(hours=1))
        assert "fever-sustained" in fired(result)
        history = timeline.history("ep-1")
        assert [c.result.level for c in history] == [Urgency.SOON, Urgency.URGENT]
        assert history[1].result == result


def test_forget_erases_the_episode_from_the_files(tmp_path: Path,
                                                  engine: TriageEngine) -> None:
    path = tmp_path / "t.db"
    marker = "episode-to-erase-7f3a"
    with SQLiteStore(path) as store:
        timeline = Timeline(store, engine, clock=clock)
        for minutes in range(0, 300, 60):
            rec(timeline, minutes, episode=marker, temperature=temp(38.1))
        rec(timeline, 0, episode="keep", site_pain=2)
        forgotten = timeline.forget(marker)
        assert (forgotten.count, forgotten.complete) == (5, True)
        assert timeline.history(marker) == []
        assert len(timeline.history("keep")) == 1
        assert timeline.forget(marker).count == 0
        files = [p for p in tmp_path.iterdir() if p.name.startswith("t.db")]
        assert all(marker.encode() not in p.read_bytes() for p in files)


def test_expiry(timeline: Timeline) -> None:
    timeline = Timeline(timeline.store, timeline.engine, expire_after_days=7, clock=clock)
    rec(timeline, 0, episode="old", bleeding="stops_with_pressure")
    rec(timeline, 6 * 24 * 60, episode="recent", site_pain=1)
    now = T0 + timedelta(days=7, minutes=1)
    assert timeline.expire(now) == ["old"]
    assert timeline.history("old") == []
    assert len(timeline.history("recent")) == 1
    # Recording never erases: a check-in after the expiry window keeps the history (and
    # is weighed with it) until expire() runs.
    rec(timeline, 0, episode="again", bleeding="stops_with_pressure")
    result = rec(timeline, 8 * 24 * 60, episode="again", bleeding="stops_with_pressure")
    assert "bleeding-again" in fired(result)
    assert len(timeline.history("again")) == 2
    with pytest.raises(TimelineError):
        timeline.expire(datetime(2026, 12, 1))


def test_overdue(timeline: Timeline) -> None:
    rec(timeline, 0, episode="a", site_pain=1)
    rec(timeline, 0, episode="b", site_pain=1)
    rec(timeline, 600, episode="b", site_pain=1)
    now = T0 + timedelta(hours=13)
    late = timeline.overdue(now, every_hours=12)
    assert [(o.episode_id, o.due_at) for o in late] == [("a", T0 + timedelta(hours=12))]
    assert timeline.overdue(now, every_hours=14) == []
    assert timeline.overdue(T0 + timedelta(days=40), every_hours=12) == []  # expired


# --- rules as data: loader, hash, catalogue --------------------------------------------

def _pack_with(tmp_path: Path, rules_dir: Path, text: str) -> Path:
    target = tmp_path / "pack"
    shutil.copytree(rules_dir, target)
    (target / "timeline.yaml").write_text(text, encoding="utf-8")
    return target


def test_pack_loads_timeline_rules_and_hashes_them(pack: RulePack) -> None:
    ids = {r.id for r in pack.timeline_rules}
    assert ids == {"fever-sustained", "raised-temperature-with-neutropenia-risk-in-history",
                   "infection-signs-with-neutropenia-risk-in-history",
                   "new-raised-temperature-days-after", "bleeding-again", "site-pain-rising"}
    catalogue = render_catalogue(pack)
    assert "## Timeline rules" in catalogue and "## History facts" in catalogue
    assert all(f"`{rule_id}`" in catalogue for rule_id in ids)


def test_timeline_thresholds_are_data(tmp_path: Path, rules_dir: Path,
                                      pack: RulePack) -> None:
    text = (rules_dir / "timeline.yaml").read_text(encoding="utf-8")
    changed = text.replace("raised_temperature_minutes: {at_least: 60}",
                           "raised_temperature_minutes: {at_least: 30}").replace(
        "at least 60 minutes", "at least 30 minutes")
    other = RulePack.from_path(_pack_with(tmp_path, rules_dir, changed))
    assert other.sha256 != pack.sha256
    with SQLiteStore(tmp_path / "t.db") as store:
        timeline = Timeline(store, TriageEngine(other), clock=clock)
        rec(timeline, 0, temperature=temp(38.1))
        assert "fever-sustained" in fired(rec(timeline, 30, temperature=temp(38.1)))


def test_history_settings_are_data(tmp_path: Path, rules_dir: Path, pack: RulePack) -> None:
    """The raised-temperature cut-off and the longest gap live in pack.yaml, not in code."""
    target = tmp_path / "pack"
    shutil.copytree(rules_dir, target)
    meta = (target / "pack.yaml").read_text(encoding="utf-8")
    (target / "pack.yaml").write_text(
        meta.replace("raised_temperature_c: 38.0", "raised_temperature_c: 37.5")
        .replace("raised_run_max_gap_hours: 4", "raised_run_max_gap_hours: 8"),
        encoding="utf-8")
    other = RulePack.from_path(target)
    assert other.sha256 != pack.sha256
    assert other.history is not None and other.history.raised_temperature_c == 37.5
    for candidate, expected in ((pack, False), (other, True)):
        with SQLiteStore(tmp_path / f"{expected}.db") as store:
            timeline = Timeline(store, TriageEngine(candidate), clock=clock)
            rec(timeline, 0, temperature=temp(37.8))
            # 37.8 °C counts as raised only with the lowered cut-off; 5 h apart only
            # joins one run with the longer gap.
            result = rec(timeline, 300, temperature=temp(37.8))
            assert ("fever-sustained" in fired(result)) is expected
            if expected:  # and the explanation states the cut-off it was held against
                text = finding(result, "fever-sustained").explanation
                assert "at or above 37.5 °C for 300 minutes" in text, text
                assert "38.0" not in text


def test_timeline_rules_need_history_settings(tmp_path: Path, rules_dir: Path) -> None:
    target = tmp_path / "pack"
    shutil.copytree(rules_dir, target)
    meta = (target / "pack.yaml").read_text(encoding="utf-8")
    (target / "pack.yaml").write_text(meta[:meta.index("history:")], encoding="utf-8")
    with pytest.raises(RulePackError) as caught:
        RulePack.from_path(target)
    assert "pack.yaml: history: required when the pack has timeline rules" in str(caught.value)


@pytest.mark.parametrize(("text", "field", "message"), [
    ("timeline_rules:\n  - id: x1\n    title: X\n    level: urgent\n"
     "    when: {site_pain_rise: {at_least: 2}}\n    explanation: '{site_pain_rises} 2'\n"
     "    advice: [a]\n    source: {document: cancer-net-bmab, section: s, quote: q}\n",
     "when.site_pain_rise", "did you mean 'site_pain_rises'"),
    ("timeline_rules:\n  - id: x1\n    title: X\n    level: urgent\n"
     "    when: {site_pain_rises: {at_least: 2}}\n    explanation: 'rises {site_pain_rises}'\n"
     "    advice: [a]\n    source: {document: cancer-net-bmab, section: s, quote: q}\n",
     "explanation", "must state the threshold 2"),
    ("timeline_rules:\n  - id: x1\n    title: X\n    level: urgent\n"
     "    when: {site_pain_rises: {at_least: 2}}\n    explanation: 'rises 2'\n"
     "    advice: [a]\n    source: {document: cancer-net-bmab, section: s, quote: q}\n",
     "explanation", "add {site_pain_rises}"),
    ("rules:\n  - id: x1\n    title: X\n    level: urgent\n"
     "    when: {site_pain_rises: {at_least: 2}}\n    explanation: '{site_pain_rises} 2'\n"
     "    advice: [a]\n    source: {document: cancer-net-bmab, section: s, quote: q}\n",
     "when.site_pain_rises", "unknown fact"),
    ("timeline_rule: []\n", "timeline_rule", "did you mean 'timeline_rules'"),
    ("timeline_rules:\n  - id: fever\n    title: X\n    level: urgent\n"
     "    when: {site_pain_rises: {at_least: 2}}\n    explanation: '{site_pain_rises} 2'\n"
     "    advice: [a]\n    source: {document: cancer-net-bmab, section: s, quote: q}\n",
     "id", "duplicate id"),
])
def test_bad_timeline_rules_are_reported(tmp_path: Path, rules_dir: Path, text: str,
                                         field: str, message: str) -> None:
    with pytest.raises(RulePackError) as caught:
        RulePack.from_path(_pack_with(tmp_path, rules_dir, text))
    assert any(p.file.endswith("timeline.yaml") and p.field == field and message in p.message
               for p in caught.value.problems), caught.value.problems


# --- CLI ------------------------------------------------------------------------------

def test_cli_record_show_forget(tmp_path: Path) -> None:
    runner = CliRunner()
    db = str(tmp_path / "cli.db")
    report = tmp_path / "r.json"
    report.write_text('{"hours_since_procedure": 10, "temperature": {"value": 38.1, '
                      '"unit": "C"}}', encoding="utf-8")
    first = runner.invoke(app, ["timeline", "record", "--db", db, "--episode", "ep-1",
                                "--at", "2026-11-25T08:00:00Z", "--now", "2026-11-26T00:00Z",
                                str(report)])
    assert first.exit_code == 0, first.output
    assert first.output.startswith("SOON:")
    second = runner.invoke(app, ["timeline", "record", "--db", db, "--episode", "ep-1",
                                 "--at", "2026-11-25T09:00:00+00:00", "--json", "-",
                                 "--now", "2026-11-26T00:00Z"],
                           input=report.read_text(encoding="utf-8"))
    assert second.exit_code == 0, second.output
    assert TriageResult.model_validate_json(second.output).level is Urgency.URGENT
    shown = runner.invoke(app, ["timeline", "show", "--db", db, "--episode", "ep-1"])
    assert shown.exit_code == 0
    lines = shown.output.splitlines()
    assert "2026-11-25 08:00 UTC  soon" in lines[1]
    assert "2026-11-25 09:00 UTC  urgent" in lines[3]
    late = runner.invoke(app, ["timeline", "overdue", "--db", db, "--every-hours", "6",
                               "--now", "2026-11-25T16:00:00Z"])
    assert late.exit_code == 0 and late.output.startswith("ep-1: last check-in")
    gone = runner.invoke(app, ["timeline", "forget", "--db", db, "--episode", "ep-1"])
    assert gone.exit_code == 0 and "erased 2 check-in(s)" in gone.output
    empty = runner.invoke(app, ["timeline", "show", "--db", db, "--episode", "ep-1"])
    assert "No check-ins" in empty.output


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["--episode", "ep 1", "--at", "2026-11-25T08:00Z", "-"], "{}", "--episode: episode id"),
    (["--episode", "ep-1", "--at", "2026-11-25T08:00", "-"], "{}", "has no time zone"),
    (["--episode", "ep-1", "--at", "yesterday", "-"], "{}", "not an ISO 8601 time"),
    (["--episode", "ep-1", "--at", "2026-11-25T08:00Z", "-"],
     '{"hours_since_procedure": 1, "site_pain": 11}', "site_pain: Input should be less"),
    (["--episode", "ep-1", "--at", "2026-11-25T08:00Z", "missing.json"], "",
     "missing.json: cannot read"),
])
def test_cli_invalid_input_exits_2(tmp_path: Path, args: list[str], stdin: str,
                                   message: str) -> None:
    db = tmp_path / "cli.db"
    result = CliRunner().invoke(app, ["timeline", "record", "--db", str(db), *args],
                                input=stdin)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    if db.exists():
        with SQLiteStore(db) as store:
            assert store.checkins("ep-1") == []


def test_pack_without_timeline_rules_gives_single_report_results(
        tmp_path: Path, rules_dir: Path) -> None:
    target = tmp_path / "plain"
    shutil.copytree(rules_dir, target)
    (target / "timeline.yaml").unlink()
    engine = TriageEngine.from_path(target)
    assert engine.pack.timeline_rules == ()
    with SQLiteStore(tmp_path / "t.db") as store:
        timeline = Timeline(store, engine, clock=clock)
        rec(timeline, 0, temperature=temp(38.1), bleeding="stops_with_pressure")
        report = {"hours_since_procedure": 12, "temperature": temp(38.1),
                  "bleeding": "stops_with_pressure"}
        result = timeline.record("ep-1", report, T0 + timedelta(hours=2))
        assert result == engine.triage(report)


def test_threads_share_one_timeline(timeline: Timeline) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def episode(n: int) -> list[Urgency]:
        levels = []
        for step in range(4):
            result = rec(timeline, step * 70, episode=f"ep-{n}", temperature=temp(38.1),
                         site_pain=step + 1)
            levels.append(result.level)
        return levels

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(episode, range(12)))
    # Each episode: soon, then sustained fever (urgent) from the second check-in on, and
    # from the third the rising pain (soon) plus the borderline reading escalate too.
    assert outcomes == [[Urgency.SOON, Urgency.URGENT, Urgency.URGENT, Urgency.URGENT]] * 12
    assert all(len(timeline.history(f"ep-{n}")) == 4 for n in range(12))


def test_cli_checkin_id_makes_a_retry_return_the_stored_result(tmp_path: Path) -> None:
    runner = CliRunner()
    db = str(tmp_path / "cli.db")
    args = ["timeline", "record", "--db", db, "--episode", "ep-1", "--at",
            "2026-11-25T08:00:00Z", "--now", "2026-11-26T00:00Z", "--checkin-id", "visit-1", "-"]
    report = '{"hours_since_procedure": 10, "temperature": {"value": 38.1, "unit": "C"}}'
    first = runner.invoke(app, args, input=report)
    again = runner.invoke(app, args, input=report)
    assert first.exit_code == again.exit_code == 0, again.output
    assert "was already recorded: its stored result" in again.output
    with SQLiteStore(db) as store:
        assert [c.checkin_id for c in store.checkins("ep-1")] == ["visit-1"]
    other = runner.invoke(app, args, input=report.replace("38.1", "38.4"))
    assert other.exit_code == 2
    assert "--checkin-id: already used for a different check-in" in other.output


@pytest.mark.parametrize("command", [
    ["show", "--episode", "ep-1"],
    ["forget", "--episode", "ep-1"],
    ["overdue", "--every-hours", "4", "--now", "2026-11-25T10:00:00+00:00"],
])
def test_commands_other_than_record_do_not_create_a_database(tmp_path: Path,
                                                             command: list[str]) -> None:
    missing = tmp_path / "missing.db"
    result = CliRunner().invoke(app, ["timeline", *command, "--db", str(missing)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"--db: {missing}: no such timeline database")
    assert list(tmp_path.iterdir()) == []


def test_a_store_opened_without_create_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such timeline database"):
        SQLiteStore(tmp_path / "absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()
    SQLiteStore(tmp_path / "made.db").close()
    with SQLiteStore(tmp_path / "made.db", create=False) as store:
        assert store.checkins("ep-1") == []
