"""A hypothesis state machine drives check-ins, restarts and forgets against a model.

The model is a plain dict of episode -> check-ins. After each step the stored histories
must equal the model's; each result must be at least the single-report level, and the
fever and bleeding timeline rules must fire exactly when a brute-force reading of their
definition over the model's check-ins says they should.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from itertools import pairwise
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from marrow_triage import SymptomReport, default_engine
from marrow_triage.timeline import SQLiteStore, Timeline
from marrow_triage.units import celsius

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
EPISODES = ("ep-a", "ep-b", "ep-c")
BAD_BLEEDING = {"stops_with_pressure", "soaks_dressing", "does_not_stop"}

reports = st.fixed_dictionaries(
    {"hours_since_procedure": st.integers(0, 200)},
    optional={
        "temperature": st.sampled_from([36.8, 37.9, 38.0, 38.2, 38.6]).map(
            lambda v: {"value": v, "unit": "C"}),
        "bleeding": st.sampled_from(["none", "spots_on_dressing", "stops_with_pressure",
                                     "soaks_dressing", "does_not_stop"]),
        "site_pain": st.integers(0, 6),
    },
)


def expected_fever_sustained(earlier: list[tuple[datetime, SymptomReport]],
                             report: SymptomReport, at: datetime) -> bool:
    """Some earlier reading ≥ 38.0 °C an hour or more ago starts an unbroken run to now."""
    if report.temperature is None or celsius(report.temperature) < 38:
        return False
    # In time order, check-ins at the same instant in the order they were recorded: the
    # store's order (at, then sequence), not the order of the readings' values.
    readings = sorted(((when, celsius(r.temperature)) for when, r in earlier
                       if r.temperature is not None and when <= at), key=lambda w: w[0])
    readings.append((at, celsius(report.temperature)))
    for index, (start, value) in enumerate(readings[:-1]):
        if value < 38 or at - start < timedelta(minutes=60):
            continue
        window = readings[index:]
        gaps_ok = all(b[0] - a[0] <= timedelta(hours=4) for a, b in pairwise(window))
        if gaps_ok and all(v >= Fraction(38) for _, v in window):
            return True
    return False


def expected_bleeding_again(earlier: list[tuple[datetime, SymptomReport]],
                            report: SymptomReport, at: datetime) -> bool:
    if report.bleeding is None or report.bleeding.value not in BAD_BLEEDING:
        return False
    return any(r.bleeding is not None and r.bleeding.value in BAD_BLEEDING and when <= at
               for when, r in earlier)


def expected_site_pain_rising(earlier: list[tuple[datetime, SymptomReport]],
                              report: SymptomReport, at: datetime) -> bool:
    """The last three answered site pain scores, in time order, strictly increase."""
    if report.site_pain is None:
        return False
    ordered = sorted(((when, r) for when, r in earlier if when <= at), key=lambda i: i[0])
    pains = [r.site_pain for _, r in ordered if r.site_pain is not None] + [report.site_pain]
    return len(pains) >= 3 and pains[-3] < pains[-2] < pains[-1]


class TimelineMachine(RuleBasedStateMachine):
    """Random check-ins, restarts and forgets against a dict of lists."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="timeline-sm-"))
        self.engine = default_engine()
        self.store = SQLiteStore(self.dir / "t.db")
        self.timeline = Timeline(self.store, self.engine, clock=lambda: T0 + timedelta(days=60))
        self.model: dict[str, list[tuple[datetime, SymptomReport]]] = {}

    @rule(episode=st.sampled_from(EPISODES), minutes=st.integers(0, 3 * 24 * 60),
          data=reports)
    def record(self, episode: str, minutes: int, data: dict[str, Any]) -> None:
        self._record(episode, T0 + timedelta(minutes=minutes), data)

    @rule(episode=st.sampled_from(EPISODES), minutes=st.integers(0, 300), data=reports)
    def record_follow_up(self, episode: str, minutes: int, data: dict[str, Any]) -> None:
        """A check-in shortly after the episode's latest one, where the windows are."""
        latest = max((at for at, _ in self.model.get(episode, [])), default=T0)
        self._record(episode, latest + timedelta(minutes=minutes), data)

    def _record(self, episode: str, at: datetime, data: dict[str, Any]) -> None:
        report = SymptomReport.model_validate(data)
        result = self.timeline.record(episode, report, at)
        earlier = self.model.setdefault(episode, [])
        ids = {f.rule_id for f in result.findings}
        assert result.level >= self.engine.triage(report).level
        assert result.level == max((f.level for f in result.findings), default=result.level)
        assert ("fever-sustained" in ids) == expected_fever_sustained(earlier, report, at)
        assert ("bleeding-again" in ids) == expected_bleeding_again(earlier, report, at)
        assert ("site-pain-rising" in ids) == expected_site_pain_rising(earlier, report, at)
        earlier.append((at, report))

    @rule()
    def restart(self) -> None:
        self.store.close()
        self.store = SQLiteStore(self.dir / "t.db")
        self.timeline = Timeline(self.store, self.engine, clock=lambda: T0 + timedelta(days=60))

    @precondition(lambda self: bool(self.model))
    @rule(episode=st.sampled_from(EPISODES))
    def forget(self, episode: str) -> None:
        assert self.timeline.forget(episode).count == len(self.model.pop(episode, []))

    @invariant()
    def histories_match_the_model(self) -> None:
        for episode in EPISODES:
            stored = [(c.at, c.report) for c in self.timeline.history(episode)]
            # sorted() is stable: check-ins at the same time keep their recording order.
            expected = sorted(self.model.get(episode, []), key=lambda item: item[0])
            assert stored == expected

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)


TimelineMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40,
                                             deadline=None)
TestTimelineMachine = TimelineMachine.TestCase
