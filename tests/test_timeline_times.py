"""Times the timeline must not trust (issue 13, items 1 to 4), each as a user meets it.

1. A time the store cannot represent is refused on the way in; a row that cannot be
   decoded (written before that check, or damaged) is skipped and reported by every
   reader, never crashing ``show``, ``record`` or ``overdue`` for anyone.
2. A year typo is refused (future beyond the clock-skew allowance, or far from the
   episode's other check-ins), and recording never erases a patient's history.
3. ``forget`` says so when a reader keeps the WAL from being checkpointed.
4. Numeric options take a range and fail in one line.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from marrow_triage import TriageEngine, Urgency
from marrow_triage.adapters.cli.main import app
from marrow_triage.timeline import SQLiteStore, Timeline, TimelineError

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
NOW = "2026-11-26T09:00:00Z"
LOW_WBC_37_2 = '{"hours_since_procedure": 20, "temperature": {"value": 37.2, "unit": "C"}, ' \
               '"low_white_cell_count": true}'
FEVER_38_1 = '{"hours_since_procedure": 45, "temperature": {"value": 38.1, "unit": "C"}}'


def cli(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["timeline", *args], input=stdin)
    return result.exit_code, result.output


def record(db: Path, at: str, report: str, episode: str = "ep-1",
           now: str = NOW) -> tuple[int, str]:
    return cli("record", "--db", str(db), "--episode", episode, "--at", at, "--now", now,
               "--json", "-", stdin=report)


# --- 1. times the store cannot represent ----------------------------------------------

@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00",
                                "0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z"])
def test_unrepresentable_times_are_refused_and_nothing_is_stored(tmp_path: Path,
                                                                 at: str) -> None:
    db = tmp_path / "t.db"
    code, output = record(db, at, FEVER_38_1)
    assert code == 2, output
    assert "outside the times a check-in can take" in output
    assert "Traceback" not in output
    with SQLiteStore(db) as store:
        assert store.checkins("ep-1") == []
        assert store.latest() == []


def test_library_refuses_them_too(tmp_path: Path, engine: TriageEngine) -> None:
    with SQLiteStore(tmp_path / "t.db") as store:
        timeline = Timeline(store, engine, clock=lambda: T0)
        edge = datetime.fromisoformat("0001-01-01T00:00:00+14:00")
        with pytest.raises(TimelineError, match="outside the times") as caught:
            timeline.record("ep-1", {"hours_since_procedure": 1}, edge)
        assert caught.value.problems[0].field == "at"
        with pytest.raises(TimelineError, match="outside the times"):
            timeline.overdue(edge, every_hours=12)


def _plant(db: Path, episode: str, at_us: int, report: str = '{"hours_since_procedure": 1}',
           result: str | None = None) -> None:
    """A row as an older version (no range check) or a damaged file could have left it."""
    if result is None:
        with SQLiteStore(db) as store:
            ok = Timeline(store, clock=lambda: T0).engine.triage({"hours_since_procedure": 1})
        result = ok.model_dump_json()
    with sqlite3.connect(db) as raw:
        raw.execute("INSERT INTO checkins (episode_id, at_us, report, result) "
                    "VALUES (?, ?, ?, ?)", (episode, at_us, report, result))


@pytest.mark.parametrize(("at_us", "report"), [
    (-62135596800 * 10**6 - 14 * 3600 * 10**6, '{"hours_since_procedure": 1}'),  # year 0
    (253402300799 * 10**6 + 12 * 3600 * 10**6, '{"hours_since_procedure": 1}'),  # year 10000
    (1_795_000_000 * 10**6, '{"hours_since_procedure": 1, "no_such_field": 2}'),  # old schema
    (1_795_000_000 * 10**6, "not json"),  # damaged
])
def test_every_reader_survives_a_row_it_cannot_decode(tmp_path: Path, at_us: int,
                                                      report: str) -> None:
    db = tmp_path / "t.db"
    assert record(db, "2026-11-25T08:00:00Z", LOW_WBC_37_2, episode="bad")[0] == 0
    assert record(db, "2026-11-25T08:00:00Z", FEVER_38_1, episode="other")[0] == 0
    _plant(db, "bad", at_us, report)

    code, output = cli("show", "--db", str(db), "--episode", "bad")
    assert code == 0, output
    assert "cannot be read" in output and "Episode bad: 1 check-in(s)" in output
    assert "Traceback" not in output

    # Recording for that episode still works, weighed with what can be read (the
    # earlier low white cell count makes the fever an emergency).
    code, output = record(db, "2026-11-26T08:00:00Z", FEVER_38_1, episode="bad")
    assert code == 0, output
    assert '"level": "emergency"' in output

    # overdue lists every other patient and reports the row it skipped.
    code, output = cli("overdue", "--db", str(db), "--every-hours", "12", "--now", NOW)
    assert code == 0, output
    assert "other: last check-in 2026-11-25 08:00 UTC" in output
    assert "Traceback" not in output


# --- 2. a year typo -------------------------------------------------------------------

def test_a_year_typo_is_refused_and_erases_nothing(tmp_path: Path) -> None:
    """The red-team case: 37.2 °C with low white cells, then 38.1 °C typed as next year."""
    db = tmp_path / "t.db"
    assert record(db, "2026-11-25T08:00:00Z", LOW_WBC_37_2)[0] == 0
    code, output = record(db, "2027-11-26T08:00:00Z", FEVER_38_1)
    assert code == 2
    assert "--at: 2027-11-26 08:00 UTC is 364 day(s)" in output
    assert "more than 5 minutes ahead of it is refused" in output
    code, output = cli("show", "--db", str(db), "--episode", "ep-1", "--json")
    assert output.count('"at"') == 1  # nothing erased, nothing added
    # The corrected time is weighed with the history: febrile neutropenia, an emergency.
    code, output = record(db, "2026-11-26T08:00:00Z", FEVER_38_1)
    assert code == 0
    assert '"level": "emergency"' in output


def test_a_time_far_from_the_episode_is_refused(tmp_path: Path,
                                                engine: TriageEngine) -> None:
    with SQLiteStore(tmp_path / "t.db") as store:
        timeline = Timeline(store, engine, clock=lambda: T0 + timedelta(days=400))
        timeline.record("ep-1", {"hours_since_procedure": 20, "low_white_cell_count": True},
                        T0)
        limit = engine.pack.history.checkin_max_days_from_episode  # type: ignore[union-attr]
        for days in (-(limit + 1), limit + 1, 365):  # a year typo either way, a month's
            with pytest.raises(TimelineError, match="from the episode's nearest") as caught:
                timeline.record("ep-1", {"hours_since_procedure": 45}, T0 + timedelta(days))
            assert caught.value.problems[0].field == "at"
        # At the limit is still the same episode.
        timeline.record("ep-1", {"hours_since_procedure": 45}, T0 + timedelta(days=limit))
        assert len(timeline.history("ep-1")) == 2


def test_the_clock_skew_allowance_comes_from_the_pack(tmp_path: Path,
                                                      engine: TriageEngine) -> None:
    ahead = engine.pack.history.checkin_ahead_of_clock_minutes  # type: ignore[union-attr]
    with SQLiteStore(tmp_path / "t.db") as store:
        timeline = Timeline(store, engine, clock=lambda: T0)
        timeline.record("ep-1", {"hours_since_procedure": 1}, T0 + timedelta(minutes=ahead))
        with pytest.raises(TimelineError, match="ahead of it is refused"):
            timeline.record("ep-1", {"hours_since_procedure": 1},
                            T0 + timedelta(minutes=ahead, seconds=1))
        # The caller's "now" wins over the clock.
        timeline.record("ep-1", {"hours_since_procedure": 2}, T0 + timedelta(hours=1),
                        now=T0 + timedelta(hours=1))
        assert len(timeline.history("ep-1")) == 2


def test_recording_never_erases_history(tmp_path: Path, engine: TriageEngine) -> None:
    """Before, ``record`` forgot an episode whose latest check-in had expired."""
    with SQLiteStore(tmp_path / "t.db") as store:
        timeline = Timeline(store, engine, expire_after_days=7,
                            clock=lambda: T0 + timedelta(days=60))
        timeline.record("ep-1", {"hours_since_procedure": 20, "low_white_cell_count": True},
                        T0)
        result = timeline.record(
            "ep-1", {"hours_since_procedure": 200, "temperature": {"value": 38.1, "unit": "C"}},
            T0 + timedelta(days=8))
        assert result.level is Urgency.EMERGENCY
        assert len(timeline.history("ep-1")) == 2
        # Only expire() erases, and only whole episodes past the expiry.
        assert timeline.expire(T0 + timedelta(days=14)) == []
        assert timeline.expire(T0 + timedelta(days=16)) == ["ep-1"]


def test_cli_expire_runs_in_bounded_batches(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    for n in range(5):
        assert record(db, f"2026-11-2{n}T08:00:00Z", FEVER_38_1, episode=f"ep-{n}")[0] == 0
    code, output = cli("expire", "--db", str(db), "--before", "2026-11-23T00:00:00Z",
                       "--batch", "1")
    assert code == 0, output
    assert "Erased 3 episode(s) whose latest check-in was before 2026-11-23 00:00 UTC" in output
    with SQLiteStore(db) as store:
        assert [e for e, _ in store.latest()] == ["ep-3", "ep-4"]


# --- 3. forget while a reader holds a snapshot ----------------------------------------

def test_forget_says_when_copies_wait_for_a_reader(tmp_path: Path,
                                                   engine: TriageEngine) -> None:
    path = tmp_path / "t.db"
    marker = "episode-to-erase-c0ffee"
    with SQLiteStore(path, checkpoint_deadline_s=0.3) as store:
        timeline = Timeline(store, engine, clock=lambda: T0 + timedelta(days=1))
        for minutes in range(0, 180, 60):
            timeline.record(marker, {"hours_since_procedure": 10, "site_pain": 3},
                            T0 + timedelta(minutes=minutes))
        reader = sqlite3.connect(path)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM checkins").fetchone()  # holds a snapshot
        try:
            forgotten = timeline.forget(marker)
            assert forgotten.count == 3
            assert not forgotten.complete
            assert "pending in the WAL until readers finish" in str(forgotten)
            assert timeline.history(marker) == []  # erased from the database
        finally:
            reader.close()
        # Once the reader is gone, the next forget (even of nothing) completes the job.
        again = timeline.forget(marker)
        assert (again.count, again.complete) == (0, True)
        files = [p for p in tmp_path.iterdir() if p.name.startswith("t.db")]
        assert all(marker.encode() not in p.read_bytes() for p in files)


# --- 4. numeric options ---------------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    (["overdue", "--every-hours", "1e308", "--now", NOW], "--every-hours: '1e308' is not valid"),
    (["overdue", "--every-hours", "nan", "--now", NOW], "--every-hours: 'nan' is not valid"),
    (["overdue", "--every-hours", "0", "--now", NOW], "above 0 and at most 8784"),
    (["overdue", "--every-hours", "-3", "--now", NOW], "above 0 and at most 8784"),
    (["overdue", "--every-hours", "twelve", "--now", NOW], "'twelve' is not valid"),
    (["expire", "--before", NOW, "--batch", "0"], "--batch: '0' is not valid"),
    (["expire", "--before", NOW, "--batch", "1e9"], "--batch: '1e9' is not valid"),
    (["expire", "--before", "0001-01-01T00:00:00+14:00"], "outside the times"),
])
def test_numeric_options_fail_in_one_line(tmp_path: Path, args: list[str],
                                          message: str) -> None:
    code, output = cli(*args, "--db", str(tmp_path / "t.db"))
    assert code == 2
    assert message in output
    assert len(output.strip().splitlines()) == 1, output
    assert "Traceback" not in output


def test_library_every_hours_has_a_range(tmp_path: Path, engine: TriageEngine) -> None:
    with SQLiteStore(tmp_path / "t.db") as store:
        timeline = Timeline(store, engine)
        for bad in (1e308, float("nan"), 0, -1, float("inf")):
            with pytest.raises(TimelineError, match="every_hours"):
                timeline.overdue(T0, every_hours=bad)
