"""Worked examples for every timeline rule: check-in sequences and exactly what the last
check-in gives (level and rules), each threshold tried at and either side of it.

Data, not tests: tests/test_timeline_examples.py checks them against the packaged pack,
tests/test_mutation.py against mutated copies of it, and `marrow-triage rules trace`
cites them in docs/safety/traceability.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from marrow_triage import SymptomReport, TriageEngine, TriageResult, Urgency
from marrow_triage.pack.facts import FactValue, report_facts
from marrow_triage.timeline import SQLiteStore, Timeline
from marrow_triage.timeline.history import derive
from marrow_triage.timeline.store import CheckIn

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Scenario:
    """Check-ins of one episode (minutes after T0, report); the last one is judged."""

    name: str
    checkins: tuple[tuple[float, dict[str, Any]], ...]
    level: Urgency
    rules: frozenset[str]


def C(value: float) -> dict[str, Any]:
    return {"value": value, "unit": "C"}


def at(minutes: float, **report: Any) -> tuple[float, dict[str, Any]]:
    report.setdefault("hours_since_procedure", 10 + minutes / 60)
    return minutes, report


def sc(name: str, level: str, rules: tuple[str, ...], *checkins: tuple[float, dict[str, Any]]
       ) -> Scenario:
    return Scenario(name, tuple(checkins), Urgency(level), frozenset(rules))


SUSTAINED = ("borderline-temperature", "fever-sustained")
IN_HISTORY = ("borderline-temperature", "raised-temperature-with-neutropenia-risk-in-history")
NEW_RAISED = ("borderline-temperature", "new-raised-temperature-days-after")

TIMELINE_EXAMPLES = [
    # --- fever-sustained: 38.0 °C for 60 minutes (IDSA) --------------------------------
    sc("38.0 C for 59.99 minutes", "soon", ("borderline-temperature",),
       at(0, temperature=C(38.0)), at(59.99, temperature=C(38.0))),
    sc("38.0 C for 60 minutes", "urgent", SUSTAINED,
       at(0, temperature=C(38.0)), at(60, temperature=C(38.0))),
    sc("38.0 C for 60.01 minutes", "urgent", SUSTAINED,
       at(0, temperature=C(38.0)), at(60.01, temperature=C(38.0))),
    sc("37.99 C then 38.0 C an hour later", "soon", ("borderline-temperature",),
       at(0, temperature=C(37.99)), at(60, temperature=C(38.0))),
    sc("38.01 C for an hour", "urgent", SUSTAINED,
       at(0, temperature=C(38.01)), at(60, temperature=C(38.01))),
    sc("raised readings 4 hours apart are one run", "urgent", SUSTAINED,
       at(0, temperature=C(38.1)), at(240, temperature=C(38.1))),
    sc("raised readings 3.99 hours apart are one run", "urgent", SUSTAINED,
       at(0, temperature=C(38.1)), at(239.4, temperature=C(38.1))),
    sc("raised readings 4.01 hours apart are two runs", "soon", ("borderline-temperature",),
       at(0, temperature=C(38.1)), at(240.6, temperature=C(38.1))),
    # --- temperature outside 36.0-37.5 °C with neutropenia risk reported earlier --------
    sc("chemotherapy earlier, 37.49 C now", "self_care", (),
       at(0, temperature=C(37.0), recent_chemotherapy=True), at(300, temperature=C(37.49))),
    sc("chemotherapy earlier, 37.5 C now", "emergency", (IN_HISTORY[1],),
       at(0, temperature=C(37.0), recent_chemotherapy=True), at(300, temperature=C(37.5))),
    sc("low white cells earlier, 37.51 C now", "emergency", (IN_HISTORY[1],),
       at(0, temperature=C(37.0), low_white_cell_count=True), at(300, temperature=C(37.51))),
    sc("chemotherapy earlier, 38.0 C now", "emergency", IN_HISTORY,
       at(0, temperature=C(37.0), recent_chemotherapy=True), at(300, temperature=C(38.0))),
    sc("chemotherapy earlier, 36.0 C now", "self_care", (),
       at(0, temperature=C(37.0), recent_chemotherapy=True), at(300, temperature=C(36.0))),
    sc("chemotherapy earlier, 35.99 C now", "emergency", (IN_HISTORY[1],),
       at(0, temperature=C(37.0), recent_chemotherapy=True), at(300, temperature=C(35.99))),
    sc("no risk earlier, 38.0 C now", "soon", ("borderline-temperature",),
       at(0, temperature=C(37.0), recent_chemotherapy=False, low_white_cell_count=False),
       at(300, temperature=C(38.0))),
    # --- shivering or feeling unwell with neutropenia risk reported earlier -------------
    sc("chemotherapy earlier, shivering now at 37.0 C", "emergency",
       ("chills", "infection-signs-with-neutropenia-risk-in-history"),
       at(0, temperature=C(37.0), recent_chemotherapy=True),
       at(300, temperature=C(37.0), chills=True)),
    sc("no risk earlier, shivering now at 37.0 C", "soon", ("chills",),
       at(0, temperature=C(37.0), recent_chemotherapy=False, low_white_cell_count=False),
       at(300, temperature=C(37.0), chills=True)),
    # --- new raised temperature 48 hours or more after the procedure ----------------
    sc("new 38.0 C at 47.99 hours", "soon", ("borderline-temperature",),
       at(0, temperature=C(37.2), hours_since_procedure=20),
       at(1679.4, temperature=C(38.0), hours_since_procedure=47.99)),
    sc("new 38.0 C at 48 hours", "urgent", NEW_RAISED,
       at(0, temperature=C(37.2), hours_since_procedure=20),
       at(1680, temperature=C(38.0), hours_since_procedure=48)),
    sc("new 38.0 C at 48.01 hours", "urgent", NEW_RAISED,
       at(0, temperature=C(37.2), hours_since_procedure=20),
       at(1680.6, temperature=C(38.0), hours_since_procedure=48.01)),
    sc("37.99 C at 60 hours after 37.2 C", "self_care", (),
       at(0, temperature=C(37.2), hours_since_procedure=20),
       at(2400, temperature=C(37.99), hours_since_procedure=60)),
    sc("38.01 C at 60 hours after 37.99 C", "urgent", NEW_RAISED,
       at(0, temperature=C(37.99), hours_since_procedure=20),
       at(2400, temperature=C(38.01), hours_since_procedure=60)),
    sc("38.1 C at 60 hours after 38.0 C", "soon", ("borderline-temperature",),
       at(0, temperature=C(38.0), hours_since_procedure=20),
       at(2400, temperature=C(38.1), hours_since_procedure=60)),
    sc("38.1 C at 60 hours after 38.01 C", "soon", ("borderline-temperature",),
       at(0, temperature=C(38.01), hours_since_procedure=20),
       at(2400, temperature=C(38.1), hours_since_procedure=60)),
    # --- bleeding again -----------------------------------------------------------
    sc("bleeding that stops with pressure, twice", "urgent",
       ("bleeding-again", "bleeding-stopped-with-pressure"),
       at(0, bleeding="stops_with_pressure"), at(60, bleeding="none"),
       at(1440, bleeding="stops_with_pressure")),
    sc("spots earlier, bleeding that stops with pressure now", "self_care",
       ("bleeding-stopped-with-pressure",),
       at(0, bleeding="spots_on_dressing"), at(1440, bleeding="stops_with_pressure")),
    # --- site pain rising at consecutive check-ins --------------------------------
    sc("site pain rising once", "self_care", ("site-soreness",),
       at(0, site_pain=2), at(180, site_pain=3)),
    sc("site pain rising twice", "soon", ("site-soreness", "site-pain-rising"),
       at(0, site_pain=2), at(180, site_pain=3), at(360, site_pain=4)),
    sc("site pain rising three times", "soon", ("site-soreness", "site-pain-rising"),
       at(0, site_pain=1), at(180, site_pain=2), at(360, site_pain=3), at(540, site_pain=4)),
]


def run_scenario(engine: TriageEngine, scenario: Scenario
                 ) -> tuple[TriageResult, dict[str, FactValue]]:
    """The last check-in's result, and its facts (report and history), with ``engine``."""
    store = SQLiteStore(":memory:")
    try:
        timeline = Timeline(store, engine)
        earlier: list[CheckIn] = []
        result: TriageResult | None = None
        facts: dict[str, FactValue] = {}
        for number, (minutes, data) in enumerate(scenario.checkins):
            when = T0 + timedelta(minutes=minutes)
            report = SymptomReport.model_validate(data)
            result = timeline.evaluate(earlier, report, when)
            if engine.pack.history is not None:
                facts = {**report_facts(report),
                         **derive(earlier, report, when, engine.pack.history).facts}
            earlier.append(CheckIn("scenario", number, when, report, result))
        assert result is not None
        return result, facts
    finally:
        store.close()


def scenario_problems(engine: TriageEngine, scenario: Scenario) -> list[str]:
    """How the pack's answer differs from the scenario's (empty when it agrees)."""
    result, _ = run_scenario(engine, scenario)
    problems = []
    fired = {f.rule_id for f in result.findings}
    if fired != scenario.rules:
        problems.append(f"rules {sorted(fired)}, expected {sorted(scenario.rules)}")
    if result.level is not scenario.level:
        problems.append(f"level {result.level}, expected {scenario.level}")
    for finding in result.findings:
        rule = _rule_level(engine, finding.rule_id)
        if finding.level is not rule:
            problems.append(f"{finding.rule_id} at {finding.level}, its rule says {rule}")
    return problems


def _rule_level(engine: TriageEngine, rule_id: str) -> Urgency:
    try:
        return engine.pack.rule(rule_id).level
    except KeyError:
        return engine.pack.timeline_rule(rule_id).level
