"""Patient timeline: follow-up check-ins over days, weighed together with their history.

>>> from datetime import datetime, UTC
>>> from marrow_triage.timeline import SQLiteStore, Timeline
>>> timeline = Timeline(SQLiteStore("checkins.db"))                    # doctest: +SKIP
>>> timeline.record("ep-1", {"hours_since_procedure": 50,
...                          "temperature": {"value": 38.1, "unit": "C"}},
...                 at=datetime(2026, 11, 25, 10, 0, tzinfo=UTC)).level  # doctest: +SKIP
<Urgency.URGENT: 'urgent'>

See docs/timeline.md for the rules and the storage.
"""

from __future__ import annotations

from marrow_triage.timeline.history import Evidence, History, derive
from marrow_triage.timeline.store import CheckIn, SQLiteStore, Store
from marrow_triage.timeline.timeline import (
    Overdue,
    Timeline,
    TimelineError,
    check_episode_id,
    check_time,
)

__all__ = [
    "CheckIn",
    "Evidence",
    "History",
    "Overdue",
    "SQLiteStore",
    "Store",
    "Timeline",
    "TimelineError",
    "check_episode_id",
    "check_time",
    "derive",
]
