"""Structure-aware fuzzing of the timeline: sequences of check-ins at hostile times.

Each input is a sequence of operations on one SQLite-backed ``Timeline`` (a fresh
database per input): record a report for one of a few episodes at a time chosen to be
hostile (year 1 and year 9999, offsets of ±14 hours, microseconds, the same instant twice,
out of order, years apart, far in the future), list an episode's history, list what is
overdue, expire, forget. ``record`` must store the check-in and return a result, or raise
``TimelineError`` (or a validation error for a bad report); ``expire`` and ``overdue``
may refuse a time as ``TimelineError``; every reader must then still work for every
episode. Any other exception is a finding (issue 13 item 1: one bad time used to poison
the database for every reader).

    python fuzz/fuzz_timeline.py -atheris_runs=300       # as in `make test`
    python fuzz/fuzz_timeline.py -atheris_runs=50000     # as in `make fuzz`
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import atheris
from _libfuzzer import with_defaults
from pydantic import ValidationError

with atheris.instrument_imports(include=["marrow_triage"]):
    from marrow_triage import ReportError, TriageEngine, TriageResult
    from marrow_triage.timeline import SQLiteStore, Timeline, TimelineError

ENGINE = TriageEngine.default()
WORK = Path(tempfile.mkdtemp(prefix="marrow-fuzz-timeline-"))
EPISODES = ["ep-1", "ep-2", "ep-3"]
BASE = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
REPORTS = [
    {"hours_since_procedure": 20, "temperature": {"value": 37.2, "unit": "C"},
     "low_white_cell_count": True},
    {"hours_since_procedure": 44, "temperature": {"value": 38.1, "unit": "C"}},
    {"hours_since_procedure": 60, "temperature": {"value": 100.6, "unit": "F"}, "site_pain": 6,
     "bleeding": "stops_with_pressure"},
    {"hours_since_procedure": 130, "site_pain": 5},
    {"hours_since_procedure": -1},
]
HOSTILE = [
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-12))),
    datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2027, 11, 26, 8, 0, tzinfo=UTC),  # a year typo
    datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=1, minutes=30))),
]


def _time(fdp: atheris.FuzzedDataProvider) -> datetime:
    if fdp.ConsumeIntInRange(0, 3) == 0:
        return fdp.PickValueInList(HOSTILE)
    offset = timedelta(minutes=fdp.ConsumeIntInRange(-14 * 60, 14 * 60))
    try:
        return (BASE + timedelta(minutes=fdp.ConsumeIntInRange(-10**7, 10**7),
                                 microseconds=fdp.ConsumeIntInRange(0, 999_999))
                ).astimezone(timezone(offset))
    except (OverflowError, ValueError):  # the time itself, before the library sees it
        return BASE


def test_one_input(data: bytes) -> None:
    """The fuzz target: one sequence of operations on a fresh database."""
    fdp = atheris.FuzzedDataProvider(data)
    path = WORK / "timeline.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    with SQLiteStore(path) as store:
        timeline = Timeline(store, ENGINE)
        for _ in range(fdp.ConsumeIntInRange(1, 8)):
            episode = fdp.PickValueInList(EPISODES)
            op = fdp.ConsumeIntInRange(0, 5)
            if op <= 2:
                try:
                    result = timeline.record(episode, fdp.PickValueInList(REPORTS), _time(fdp))
                except (TimelineError, ReportError) as exc:
                    assert exc.problems, exc
                except ValidationError:  # Timeline.record validates a dict with pydantic
                    pass
                else:
                    assert isinstance(result, TriageResult)
            elif op == 3:
                try:
                    timeline.expire(_time(fdp))
                except TimelineError as exc:  # a "now" outside the storable range
                    assert exc.problems, exc
            elif op == 4:
                timeline.forget(episode)
            # After every step, every reader works for every episode.
            for name in EPISODES:
                timeline.history(name)
            try:
                timeline.overdue(_time(fdp), fdp.PickValueInList([0.5, 1, 24, 1e6]))
            except TimelineError as exc:
                assert exc.problems, exc


def main(argv: list[str]) -> None:
    atheris.Setup(with_defaults(argv), test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
