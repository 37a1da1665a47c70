"""The Store contract, run unchanged against SQLite and a real PostgreSQL server.

Every test takes ``store_url`` (a fresh database of each backend) and opens it with
``open_store``, as the CLI and the service do. PostgreSQL comes from the throwaway cluster
of conftest.py (or MARROW_TRIAGE_TEST_PG_URL); without a server these skip on a developer's
machine and fail under CI.
"""

from __future__ import annotations

import itertools
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from history_strategies import episodes
from marrow_triage import (
    RulePack,
    StoreError,
    TimelineError,
    TriageEngine,
    Urgency,
    default_engine,
)
from marrow_triage.models import SymptomReport, TriageResult
from marrow_triage.timeline import (
    SCHEMA_VERSION,
    CheckIn,
    Recorded,
    Reported,
    SQLiteStore,
    Store,
    Timeline,
    open_store,
)
from marrow_triage.timeline.history import HistoryState, state_key
from marrow_triage.timeline.store import (
    MAX_AT,
    MIN_AT,
    Evaluate,
    Weighed,
    Weighing,
    to_micros,
)

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
REPORT = SymptomReport.model_validate({"hours_since_procedure": 10, "site_pain": 2})


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'contract.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def result(engine: TriageEngine) -> TriageResult:
    return engine.triage(REPORT)


def _fixed(result: TriageResult) -> Callable[[Sequence[Reported]], TriageResult]:
    """An evaluation that always gives ``result`` (the contract is about storage)."""
    def evaluate(_episode: Sequence[Reported]) -> TriageResult:
        return result
    return evaluate


def test_is_a_store(store: Store) -> None:
    assert isinstance(store, Store)
    assert "://" in store.url


def test_record_and_read_back_in_time_order(store: Store, result: TriageResult) -> None:
    for minutes, cid in ((60, "b"), (0, None), (60, "c"), (30, "a")):
        store.record("ep-1", T0 + timedelta(minutes=minutes), REPORT, _fixed(result), cid)
    store.record("ep-2", T0, REPORT, _fixed(result))
    read = store.checkins("ep-1")
    assert [(c.at - T0, c.checkin_id) for c in read] == [
        (timedelta(0), None), (timedelta(minutes=30), "a"), (timedelta(minutes=60), "b"),
        (timedelta(minutes=60), "c")]  # same time: in the order recorded
    assert all(c.report == REPORT and c.result == result for c in read)
    assert read.unreadable == ()
    assert store.checkins("unknown") == []


def test_evaluate_sees_the_episode_in_time_order(store: Store, result: TriageResult) -> None:
    seen: list[list[datetime]] = []

    def evaluate(episode: Sequence[Reported]) -> TriageResult:
        seen.append([c.at for c in episode])
        return result

    for minutes in (50, 10, 30):
        store.record("ep-1", T0 + timedelta(minutes=minutes), REPORT, evaluate)
    assert seen[-1] == [T0 + timedelta(minutes=10), T0 + timedelta(minutes=50)]


@pytest.mark.parametrize("at", [MIN_AT, MAX_AT - timedelta(days=1, microseconds=1),
                                datetime(2026, 3, 29, 1, 59, 59, 999_999, tzinfo=UTC)])
def test_times_round_trip_to_the_microsecond(store: Store, result: TriageResult,
                                             at: datetime) -> None:
    recorded = store.record("ep-1", at, REPORT, _fixed(result))
    [read] = store.checkins("ep-1")
    assert read.at == at == recorded.checkin.at
    assert read.at.utcoffset() == timedelta(0)


def test_a_failing_evaluation_writes_nothing(store: Store) -> None:
    def refuse(_episode: Sequence[Reported]) -> TriageResult:
        raise TimelineError("no")

    with pytest.raises(TimelineError):
        store.record("ep-1", T0, REPORT, refuse)
    assert store.checkins("ep-1") == []


def test_a_retry_returns_the_stored_result_and_records_once(store: Store,
                                                            result: TriageResult,
                                                            engine: TriageEngine) -> None:
    first = store.record("ep-1", T0, REPORT, _fixed(result), "visit-1")
    other = engine.triage({"hours_since_procedure": 1, "chest_pain": True})
    again = store.record("ep-1", T0, REPORT, _fixed(other), "visit-1")
    assert (first.replayed, again.replayed) == (False, True)
    assert again.checkin == first.checkin  # the stored result, not a new evaluation
    assert len(store.checkins("ep-1")) == 1
    # The same id in another episode is another check-in.
    assert not store.record("ep-2", T0, REPORT, _fixed(result), "visit-1").replayed
    # The same id with another time or report is refused, and nothing is written.
    for at, report in ((T0 + timedelta(minutes=1), REPORT),
                       (T0, SymptomReport(hours_since_procedure=10, site_pain=3))):
        with pytest.raises(TimelineError, match="checkin_id 'visit-1' was already recorded"):
            store.record("ep-1", at, report, _fixed(result), "visit-1")
    assert len(store.checkins("ep-1")) == 1


def test_records_of_one_episode_are_serialised(store_url: str, result: TriageResult) -> None:
    """Writers on separate connections, all at once: each is weighed with every check-in
    committed before it, so the history sizes they saw are 0, 1, ..., n-1."""
    writers, each = 4, 6
    seen: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def evaluate(episode: Sequence[Reported]) -> TriageResult:
        with lock:
            seen.append(len(episode))
        return result

    def write(n: int) -> None:
        own = open_store(store_url)
        try:
            barrier.wait()
            for i in range(each):
                own.record("same", T0, REPORT, evaluate, f"w{n}-{i}")
        except BaseException as exc:  # reported below, with the others' results
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert sorted(seen) == list(range(writers * each))
    with open_store(store_url) as check:
        assert len(check.checkins("same")) == writers * each


def test_forget_erases_every_checkin_of_the_episode(store: Store, result: TriageResult) -> None:
    for minutes in range(3):
        store.record("gone", T0 + timedelta(minutes=minutes), REPORT, _fixed(result))
    store.record("kept", T0, REPORT, _fixed(result))
    forgotten = store.forget("gone")
    assert (forgotten.count, forgotten.complete) == (3, True)
    assert store.checkins("gone") == []
    assert len(store.checkins("kept")) == 1
    assert store.forget("gone").count == 0


def test_expire_erases_whole_episodes_in_bounded_batches(store: Store,
                                                         result: TriageResult) -> None:
    for n in range(5):
        store.record(f"old-{n}", T0 + timedelta(hours=n), REPORT, _fixed(result))
    store.record("mixed", T0, REPORT, _fixed(result))
    store.record("mixed", T0 + timedelta(days=10), REPORT, _fixed(result))
    cutoff = T0 + timedelta(days=1)
    assert store.expire(cutoff, 2) == ["old-0", "old-1"]
    assert store.expire(cutoff, 2) == ["old-2", "old-3"]
    assert store.expire(cutoff, 2) == ["old-4"]
    assert store.expire(cutoff, 2) == []
    assert len(store.checkins("mixed")) == 2  # its latest check-in is recent


def test_latest_lists_each_episode_once(store: Store, result: TriageResult) -> None:
    store.record("b", T0, REPORT, _fixed(result))
    store.record("a", T0 + timedelta(hours=2), REPORT, _fixed(result))
    store.record("a", T0 + timedelta(hours=1), REPORT, _fixed(result))
    assert list(store.latest()) == [("a", T0 + timedelta(hours=2)), ("b", T0)]


def test_load_imports_checkins_as_they_are(store: Store, result: TriageResult) -> None:
    rows = [CheckIn(f"ep-{n % 7}", 0, T0 + timedelta(minutes=n), REPORT, result,
                    f"id-{n}" if n % 2 else None) for n in range(70)]
    assert store.load(iter(rows)) == 70
    read = store.checkins("ep-3")
    assert [c.at for c in read] == [r.at for r in rows if r.episode_id == "ep-3"]
    assert len({c.seq for c in read}) == 10
    # The imported checkin_id guards retries like a recorded one.
    assert store.record("ep-1", T0 + timedelta(minutes=1), REPORT, _fixed(result),
                        "id-1").replayed


def test_the_timeline_gives_the_same_answers_on_every_store(store: Store,
                                                           engine: TriageEngine) -> None:
    timeline = Timeline(store, engine, clock=lambda: T0 + timedelta(days=2))
    fever = {"hours_since_procedure": 50, "temperature": {"value": 38.1, "unit": "C"}}
    paris = timezone(timedelta(hours=1))
    assert timeline.record("ep-1", {**fever, "low_white_cell_count": False}, T0).level \
        is Urgency.SOON
    second = timeline.record("ep-1", fever, datetime(2026, 11, 25, 10, 5, tzinfo=paris))
    assert second.level is Urgency.URGENT
    assert "fever-sustained" in {f.rule_id for f in second.findings}
    assert [c.result for c in timeline.history("ep-1")][1] == second


def test_a_newer_schema_is_refused(store_url: str) -> None:
    open_store(store_url).close()
    _execute(store_url, f"INSERT INTO marrow_schema (version) VALUES ({SCHEMA_VERSION + 1})")
    with pytest.raises(StoreError, match=f"schema is version {SCHEMA_VERSION + 1}, newer than"):
        open_store(store_url)


def test_reopening_keeps_the_data_and_the_schema(store_url: str, result: TriageResult) -> None:
    with open_store(store_url) as first:
        first.record("ep-1", T0, REPORT, _fixed(result))
    with open_store(store_url) as again:
        assert len(again.checkins("ep-1")) == 1
    assert _query(store_url, "SELECT version FROM marrow_schema") == [(SCHEMA_VERSION,)]


# --- the episode's history state: recording cost flat in the episode's length -----------

class PathSpy:
    """A store that notes which way each record was weighed: ``state`` (the stored state,
    no check-in read) or ``checkins`` (every check-in read)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.paths: list[str] = []

    def record(self, episode_id: str, at: datetime, report: SymptomReport,
               evaluate: Evaluate | Weighing, checkin_id: str | None = None) -> Recorded:
        assert isinstance(evaluate, Weighing)

        def from_state(state: str | None) -> Weighed | None:
            self.paths.append("state")
            return evaluate.from_state(state)

        def from_checkins(episode: Sequence[Reported]) -> Weighed:
            self.paths.append("checkins")
            return evaluate.from_checkins(episode)

        return self.store.record(episode_id, at, report,
                                 Weighing(evaluate.key, from_state, from_checkins), checkin_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def _spied(store: Store, engine: TriageEngine) -> tuple[Timeline, PathSpy]:
    spy = PathSpy(store)
    return Timeline(spy, engine, clock=lambda: T0 + timedelta(days=60)), spy


def _state(url: str, episode_id: str) -> list[tuple[object, ...]]:
    return _query(url, "SELECT state_key, state FROM episode_states "
                       f"WHERE episode_id = '{episode_id}'")


_EPISODES = itertools.count()


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_weighing_from_the_state_gives_what_reading_every_checkin_gives(
        store_url: str, store: Store, engine: TriageEngine, data: st.DataObject) -> None:
    """Random check-ins recorded in a random order (some later than the latest stored,
    some at the same instant, some earlier): each result is byte for byte the result of
    weighing every check-in stored before it in time, as one process recording them in
    ``at`` order gives; only check-ins earlier than the latest read the episode; the
    stored state is the one folded over the whole episode in time order."""
    assert engine.pack.history is not None
    history = engine.pack.history
    episode = data.draw(episodes(history))
    order = list(range(len(episode)))
    for i in data.draw(st.lists(st.integers(0, max(0, len(order) - 2)), max_size=4)):
        if i + 1 < len(order):  # a check-in that arrives after a later one
            order[i], order[i + 1] = order[i + 1], order[i]
    timeline, spy = _spied(store, engine)
    episode_id = f"prop-{next(_EPISODES)}"
    stored: list[Reported] = []  # in time order, then recording order
    for n in order:
        checkin = episode[n]
        latest = stored[-1].at if stored else None
        earlier = [c for c in stored if c.at <= checkin.at]
        expected = timeline.evaluate(earlier, checkin.report, checkin.at)
        result = timeline.record(episode_id, checkin.report, checkin.at)
        assert result.model_dump_json() == expected.model_dump_json()
        assert spy.paths[-1] == ("state" if latest is None or checkin.at >= latest
                                 else "checkins")
        stored.insert(len(earlier), checkin)
    assert [(c.at, c.report) for c in timeline.history(episode_id)] == [
        (c.at, c.report) for c in stored]
    assert _state(store_url, episode_id) == [
        (state_key(history), HistoryState.of(stored, history).dumps())]


def test_a_checkin_in_order_reads_no_earlier_checkin(store: Store,
                                                      engine: TriageEngine) -> None:
    """Recording at or after the latest check-in is weighed from the state alone (the
    cost does not grow with the episode); an earlier one reads the episode, after which
    the rebuilt state serves again."""
    timeline, spy = _spied(store, engine)
    fever = {"hours_since_procedure": 50, "temperature": {"value": 38.1, "unit": "C"}}
    for minutes in (0, 30, 30, 90):
        timeline.record("ep-1", fever, T0 + timedelta(minutes=minutes))
    late = timeline.record("ep-1", {**fever, "low_white_cell_count": True},
                           T0 + timedelta(minutes=10))
    after = timeline.record("ep-1", fever, T0 + timedelta(minutes=120))
    assert spy.paths == ["state", "state", "state", "state", "checkins", "state"]
    assert late.level is Urgency.EMERGENCY  # weighed with the earlier raised reading
    # The late low white cell count is in the state: the next fever is an emergency too.
    assert after.level is Urgency.EMERGENCY
    assert "2026-11-25 08:10 UTC (low white cell count)" in " ".join(
        f.explanation for f in after.findings)


def test_a_state_for_other_settings_or_damaged_is_rebuilt(
        store_url: str, store: Store, engine: TriageEngine, pack: RulePack,
        pack_copy: Path) -> None:
    """A pack with another raised-temperature cut-off must not read a state folded with
    the old one; nor is a damaged state trusted."""
    assert pack.history is not None
    timeline, spy = _spied(store, engine)
    reading = {"hours_since_procedure": 50, "temperature": {"value": 37.8, "unit": "C"}}
    timeline.record("ep-1", reading, T0)
    meta = (pack_copy / "pack.yaml").read_text(encoding="utf-8")
    (pack_copy / "pack.yaml").write_text(
        meta.replace("raised_temperature_c: 38.0", "raised_temperature_c: 37.5"),
        encoding="utf-8")
    lowered = RulePack.from_path(pack_copy)
    assert lowered.history is not None and lowered.history.raised_temperature_c == 37.5
    other, other_spy = _spied(store, TriageEngine(lowered))
    result = other.record("ep-1", reading, T0 + timedelta(minutes=90))
    assert other_spy.paths == ["checkins"]
    assert "fever-sustained" in {f.rule_id for f in result.findings}  # 37.8 is raised now
    assert _state(store_url, "ep-1")[0][0] == state_key(lowered.history)
    _execute(store_url, "UPDATE episode_states SET state = '{\"n\": 1}'")
    timeline.record("ep-1", reading, T0 + timedelta(minutes=100))
    assert spy.paths == ["state", "checkins"]
    [(key, state)] = _state(store_url, "ep-1")
    assert key == state_key(pack.history)
    assert HistoryState.loads(str(state)).count == 3


def test_forget_expire_load_and_plain_evaluations_drop_the_state(
        store_url: str, store: Store, engine: TriageEngine, result: TriageResult) -> None:
    """Nothing of a forgotten or expired episode remains, its state included; a bulk
    import or a caller that keeps no state leaves no state that misses check-ins."""
    timeline, spy = _spied(store, engine)
    for episode_id in ("gone", "old", "loaded", "plain"):
        timeline.record(episode_id, REPORT, T0)
        assert len(_state(store_url, episode_id)) == 1
    assert store.forget("gone").count == 1
    assert store.expire(T0 + timedelta(days=1), 10) == ["loaded", "old", "plain"]
    assert _query(store_url, "SELECT count(*) FROM episode_states") == [(0,)]
    assert _query(store_url, "SELECT count(*) FROM checkins") == [(0,)]

    timeline.record("loaded", REPORT, T0)
    store.load([CheckIn("loaded", 0, T0 + timedelta(minutes=5), REPORT, result)])
    assert _state(store_url, "loaded") == []
    timeline.record("plain", REPORT, T0)
    store.record("plain", T0 + timedelta(minutes=5), REPORT, _fixed(result))
    assert _state(store_url, "plain") == []
    # A row written around the library (a restore, a hand-made import) is not the one
    # the state was written with: the state is not trusted either.
    timeline.record("raw", REPORT, T0)
    _insert_raw(store_url, "raw", T0 + timedelta(minutes=5), REPORT, result)
    del spy.paths[:]
    for episode_id in ("loaded", "plain", "raw"):
        timeline.record(episode_id, REPORT, T0 + timedelta(minutes=10))
        [(_, state)] = _state(store_url, episode_id)
        assert HistoryState.loads(str(state)).count == 3
    assert spy.paths == ["checkins", "checkins", "checkins"]


def test_expire_waits_for_a_checkin_being_recorded(store_url: str, store: Store,
                                                   engine: TriageEngine) -> None:
    """An expiry that meets a check-in being recorded into an expired episode waits for
    it, then finds the episode recent: the acknowledged check-in is not erased, and the
    stored state covers exactly the check-ins that remain."""
    timeline = Timeline(store, engine, clock=lambda: T0 + timedelta(days=60))
    timeline.record("ep-1", REPORT, T0)
    later = T0 + timedelta(days=10)
    inside, release = threading.Event(), threading.Event()

    class Waiting:
        def record(self, episode_id: str, at: datetime, report: SymptomReport,
                   evaluate: Evaluate | Weighing, checkin_id: str | None = None) -> Recorded:
            assert isinstance(evaluate, Weighing)

            def from_state(state: str | None) -> Weighed | None:
                inside.set()
                assert release.wait(30)
                return evaluate.from_state(state)

            return store.record(episode_id, at, report,
                                Weighing(evaluate.key, from_state, evaluate.from_checkins),
                                checkin_id)

    waiting = Timeline(Waiting(), engine,  # type: ignore[arg-type]
                       clock=lambda: T0 + timedelta(days=60))
    recorded: list[TriageResult] = []
    writer = threading.Thread(target=lambda: recorded.append(
        waiting.record("ep-1", REPORT, later)))
    expired: list[list[str]] = []
    with open_store(store_url) as other:  # opened first: opening SQLite takes its lock
        writer.start()
        assert inside.wait(30)
        expirer = threading.Thread(target=lambda: expired.append(
            other.expire(T0 + timedelta(days=1), 10)))
        expirer.start()
        expirer.join(0.5)  # it waits for the episode's lock
        release.set()
        writer.join(60)
        expirer.join(60)
    assert recorded and expired == [[]]
    assert [c.at for c in store.checkins("ep-1")] == [T0, later]
    [(_, state)] = _state(store_url, "ep-1")
    assert HistoryState.loads(str(state)).count == 2


def test_a_version_2_database_is_migrated(store_url: str, engine: TriageEngine,
                                          result: TriageResult) -> None:
    """A database written before the history states: the migration folds each stored
    episode's state (with the packaged pack's settings), so the next record is weighed
    from it; and it gives what reading the episode gives."""
    fever = {"hours_since_procedure": 50, "temperature": {"value": 38.1, "unit": "C"}}
    with open_store(store_url) as first:
        timeline = Timeline(first, engine, clock=lambda: T0 + timedelta(days=1))
        for minutes, report in ((0, {**fever, "recent_chemotherapy": True}), (20, REPORT),
                                (40, fever)):
            timeline.record("ep-1", report, T0 + timedelta(minutes=minutes))
        timeline.record("ep-2", REPORT, T0)
        before = {e: _state(store_url, e) for e in ("ep-1", "ep-2")}
        # Enough episodes that the migration writes their states in several batches.
        first.load(CheckIn(f"bulk-{n}", 0, T0, REPORT, result) for n in range(1200))
    _execute(store_url, "DROP TABLE episode_states")
    _execute(store_url, "UPDATE marrow_schema SET version = 2")
    with open_store(store_url) as again:
        assert _query(store_url, "SELECT version FROM marrow_schema") == [(SCHEMA_VERSION,)]
        assert {e: _state(store_url, e) for e in ("ep-1", "ep-2")} == before
        assert _query(store_url, "SELECT count(*) FROM episode_states") == [(1202,)]
        timeline, spy = _spied(again, engine)
        recorded = timeline.record("ep-1", fever, T0 + timedelta(minutes=70))
        expected = timeline.evaluate(again.checkins("ep-1")[:-1], SymptomReport(**fever),
                                     T0 + timedelta(minutes=70))
    packaged = engine.pack.history == default_engine().pack.history
    assert spy.paths == ["state" if packaged else "checkins"]
    assert recorded.model_dump_json() == expected.model_dump_json()
    assert recorded.level is Urgency.EMERGENCY  # the chemotherapy 70 minutes before


def _execute(url: str, sql: str) -> None:
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.split("///", 1)[1]) as raw:
            raw.execute(sql)
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


def _insert_raw(url: str, episode_id: str, at: datetime, report: SymptomReport,
                result: TriageResult) -> None:
    """A check-in row written straight into the table, not through a store."""
    row = (episode_id, report.model_dump_json(), result.model_dump_json())
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.split("///", 1)[1]) as raw:
            raw.execute("INSERT INTO checkins (episode_id, report, result, at_us) "
                        "VALUES (?, ?, ?, ?)", (*row, to_micros(at)))
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO checkins (episode_id, report, result, at) "
                     "VALUES (%s, %s, %s, %s)", (*row, at))


def _query(url: str, sql: str) -> list[tuple[object, ...]]:
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.split("///", 1)[1]) as raw:
            return raw.execute(sql).fetchall()
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


# --- SQLite only: the 0.1 file format, and URLs ----------------------------------------

def test_a_version_1_sqlite_file_is_migrated(tmp_path: Path, result: TriageResult) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as raw:
        raw.executescript("""
            CREATE TABLE checkins (seq INTEGER PRIMARY KEY AUTOINCREMENT, episode_id TEXT
                NOT NULL, at_us INTEGER NOT NULL, report TEXT NOT NULL, result TEXT NOT NULL);
            CREATE INDEX checkins_by_episode ON checkins (episode_id, at_us, seq);""")
        raw.execute("INSERT INTO checkins (episode_id, at_us, report, result) VALUES "
                    "('ep-1', ?, ?, ?)", (int(T0.timestamp() * 10**6),
                                           REPORT.model_dump_json(), result.model_dump_json()))
    with SQLiteStore(path) as store:
        [old] = store.checkins("ep-1")
        assert (old.at, old.report, old.checkin_id) == (T0, REPORT, None)
        assert store.record("ep-1", T0, REPORT, _fixed(result), "new").checkin.seq == 2
    assert _query(f"sqlite:///{path}", "SELECT version FROM marrow_schema") == [
        (SCHEMA_VERSION,)]


@pytest.mark.parametrize("form", ["plain", "relative", "absolute"])
def test_sqlite_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str) -> None:
    monkeypatch.chdir(tmp_path)
    url = {"plain": "t.db", "relative": "sqlite:///t.db",
           "absolute": f"sqlite:///{tmp_path / 't.db'}"}[form]
    with open_store(url) as store:
        assert isinstance(store, SQLiteStore)
        assert store.path.resolve() == tmp_path / "t.db"


@pytest.mark.parametrize(("url", "message"), [
    ("", "the database URL is empty"),
    ("mysql://h/db", "unknown database scheme 'mysql'"),
    ("sqlite://", "give sqlite:///relative.db"),
    ("sqlite:///nonexistent-dir/x/t.db", "cannot open"),
])
def test_bad_urls_are_store_errors(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        open_store(url)


def test_a_missing_postgres_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(StoreError) as caught:
        open_store("postgresql://u@127.0.0.1:1/db")
    assert str(caught.value) == ("PostgreSQL needs the [postgres] extra: "
                                 "pip install 'marrow-triage[postgres]'")


def test_a_password_never_appears_in_messages() -> None:
    with pytest.raises(StoreError) as caught:
        open_store("postgresql://u:hunter2-secret@127.0.0.1:1/db?connect_timeout=1")
    assert "hunter2-secret" not in str(caught.value)
    assert "cannot connect" in str(caught.value)


def test_postgres_forget_says_when_an_older_transaction_keeps_copies(
        postgres_url: str, result: TriageResult) -> None:
    import psycopg

    with open_store(postgres_url) as store:
        for minutes in range(3):
            store.record("gone", T0 + timedelta(minutes=minutes), REPORT, _fixed(result))
        with psycopg.connect(postgres_url) as reader:
            reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            reader.execute("SELECT count(*) FROM checkins").fetchone()  # holds a snapshot
            forgotten = store.forget("gone")
            assert forgotten.count == 3 and not forgotten.complete
            assert "older transaction(s) finish" in str(forgotten)
            assert store.checkins("gone") == []
            reader.rollback()
        store.record("other", T0, REPORT, _fixed(result))
        assert store.forget("other").complete
