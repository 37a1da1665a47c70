"""Hypothesis strategies for episodes of check-ins that probe the history facts: readings
either side of the pack's raised-temperature cut-off in both units, steps either side of
its longest gap and of an hour, check-ins at the same instant, pain up, down and
unanswered, neutropenia risk answered or not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from marrow_triage import SymptomReport
from marrow_triage.pack.spec import HistorySettings
from marrow_triage.timeline import Reported

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def temperatures(cut_c: float) -> st.SearchStrategy[dict[str, Any]]:
    """Readings at, just below and just above the cut-off, in both units (100.4 °F is
    exactly 38.0 °C), and ordinary ones."""
    celsius = [cut_c - 0.1, cut_c, cut_c + 0.1, 36.8, 39.5]
    fahrenheit = [round(c * 9 / 5 + 32, 1) for c in celsius] + [100.3, 100.4, 100.5]
    return st.one_of(st.sampled_from(celsius).map(lambda v: {"value": v, "unit": "C"}),
                     st.sampled_from(fahrenheit).map(lambda v: {"value": v, "unit": "F"}))


def reports(cut_c: float) -> st.SearchStrategy[dict[str, Any]]:
    # A reading at most check-ins (three in four), so that runs of raised readings form.
    reading = st.one_of(st.none(), temperatures(cut_c), temperatures(cut_c),
                        temperatures(cut_c))
    return st.fixed_dictionaries(
        {"hours_since_procedure": st.sampled_from([1, 47, 48, 119, 120, 150]),
         "temperature": reading},
        optional={
            "bleeding": st.sampled_from(["none", "spots_on_dressing", "stops_with_pressure",
                                         "soaks_dressing", "does_not_stop"]),
            "site_pain": st.integers(0, 10),
            "low_white_cell_count": st.booleans(),
            "recent_chemotherapy": st.booleans(),
        }).map(lambda report: {k: v for k, v in report.items() if v is not None})


def gaps(max_gap_hours: float) -> st.SearchStrategy[timedelta]:
    """Steps between check-ins: none (the same instant), around the hour the fever rule
    counts, and either side of the longest gap of a raised-temperature run."""
    gap = timedelta(hours=max_gap_hours)
    return st.sampled_from([timedelta(0), timedelta(microseconds=1), timedelta(minutes=30),
                            timedelta(minutes=59), timedelta(minutes=60),
                            gap - timedelta(microseconds=1), gap, gap + timedelta(microseconds=1),
                            2 * gap])


@st.composite
def episodes(draw: st.DrawFn, history: HistorySettings) -> list[Reported]:
    steps = draw(st.lists(st.tuples(gaps(history.raised_run_max_gap_hours),
                                    reports(history.raised_temperature_c)),
                          min_size=1, max_size=14))
    at, out = T0, []
    for n, (gap, report) in enumerate(steps):
        at += gap
        out.append(Reported(n, at, SymptomReport.model_validate(report)))
    return out
