"""Patient timeline: follow-up check-ins over days, weighed together with their history.

>>> from datetime import datetime, UTC
>>> from marrow_triage.timeline import Timeline, open_store
>>> timeline = Timeline(open_store("sqlite:///checkins.db"))             # doctest: +SKIP
>>> timeline.record("ep-1", {"hours_since_procedure": 50,
...                          "temperature": {"value": 38.1, "unit": "C"}},
...                 at=datetime(2026, 11, 25, 10, 0, tzinfo=UTC)).level  # doctest: +SKIP
<Urgency.SOON: 'soon'>

See docs/timeline.md for the rules and the storage, docs/deployment.md for PostgreSQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from marrow_triage.errors import StoreError
from marrow_triage.timeline.history import Evidence, History, derive
from marrow_triage.timeline.sqlite import SQLiteStore
from marrow_triage.timeline.store import (
    SCHEMA_VERSION,
    CheckIn,
    CheckIns,
    Forgotten,
    LatestCheckIns,
    Recorded,
    Reported,
    Store,
    Unreadable,
    open_store,
)
from marrow_triage.timeline.timeline import (
    Overdue,
    OverdueList,
    Timeline,
    TimelineError,
    check_checkin_id,
    check_episode_id,
    check_every_hours,
    check_time,
)

if TYPE_CHECKING:
    from marrow_triage.timeline.postgres import PostgresStore

__all__ = [
    "SCHEMA_VERSION",
    "CheckIn",
    "CheckIns",
    "Evidence",
    "Forgotten",
    "History",
    "LatestCheckIns",
    "Overdue",
    "OverdueList",
    "PostgresStore",
    "Recorded",
    "Reported",
    "SQLiteStore",
    "Store",
    "StoreError",
    "Timeline",
    "TimelineError",
    "Unreadable",
    "check_checkin_id",
    "check_episode_id",
    "check_every_hours",
    "check_time",
    "derive",
    "open_store",
]


def __getattr__(name: str) -> Any:
    # PostgresStore imports psycopg only when asked for: the extra is optional.
    if name == "PostgresStore":
        from marrow_triage.timeline.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
