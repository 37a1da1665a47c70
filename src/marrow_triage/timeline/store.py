"""Where check-ins live: a small store interface and its SQLite implementation.

A :class:`Store` keeps, per episode, the check-ins in the order of their time ``at``, each
with the result the patient was given. It holds nothing per episode in memory. Another
backend (PostgreSQL, say) implements the same five methods; see docs/timeline.md.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol, runtime_checkable

from marrow_triage.models import SymptomReport, TriageResult

__all__ = ["CheckIn", "SQLiteStore", "Store", "from_micros", "to_micros"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(at: datetime) -> int:
    """An aware datetime as whole microseconds since the Unix epoch (UTC)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at.isoformat()} has no time zone; give an aware datetime")
    return (at - _EPOCH) // timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    """The UTC datetime ``micros`` microseconds after the Unix epoch."""
    return _EPOCH + timedelta(microseconds=micros)


@dataclass(frozen=True)
class CheckIn:
    """One stored check-in: when, what was reported, and what the patient was told."""

    episode_id: str
    seq: int
    """Store-assigned number, increasing in the order check-ins were recorded."""
    at: datetime
    report: SymptomReport
    result: TriageResult


@runtime_checkable
class Store(Protocol):
    """Durable storage of check-ins. Every method is safe to call from several threads."""

    def add(self, episode_id: str, at: datetime, report: SymptomReport,
            result: TriageResult) -> int:
        """Store a check-in durably (committed, synced) and return its ``seq``."""
        ...

    def checkins(self, episode_id: str) -> list[CheckIn]:
        """The episode's check-ins ordered by ``at`` (then ``seq``); empty if unknown."""
        ...

    def forget(self, episode_id: str) -> int:
        """Erase the episode; return how many check-ins were erased."""
        ...

    def expire(self, before: datetime) -> list[str]:
        """Erase every episode whose latest check-in is before ``before``; return their ids."""
        ...

    def latest(self) -> Iterator[tuple[str, datetime]]:
        """Each episode with the time of its latest check-in, ordered by episode id."""
        ...

    def close(self) -> None:
        """Release the store's resources."""
        ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkins (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    episode_id TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    report TEXT NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS checkins_by_episode ON checkins (episode_id, at_us, seq);
"""


class SQLiteStore:
    """Check-ins in one SQLite file (WAL journal, ``synchronous=FULL``, secure delete).

    A check-in is committed and synced to disk before :meth:`add` returns, so a process
    killed at any point loses no check-in whose result was returned. Forgotten episodes
    are overwritten in the database file and the WAL is truncated.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=30.0)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error:
            self._db.close()
            raise

    def add(self, episode_id: str, at: datetime, report: SymptomReport,
            result: TriageResult) -> int:
        """Store a check-in durably and return its ``seq``."""
        row = (episode_id, to_micros(at), report.model_dump_json(exclude_none=True),
               result.model_dump_json())
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO checkins (episode_id, at_us, report, result) VALUES (?, ?, ?, ?)",
                row)
            seq = cursor.lastrowid
        assert seq is not None
        return seq

    def checkins(self, episode_id: str) -> list[CheckIn]:
        """The episode's check-ins ordered by ``at`` then ``seq``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, at_us, report, result FROM checkins WHERE episode_id = ? "
                "ORDER BY at_us, seq", (episode_id,)).fetchall()
        return [
            CheckIn(episode_id=episode_id, seq=seq, at=from_micros(at_us),
                    report=SymptomReport.model_validate_json(report),
                    result=TriageResult.model_validate_json(result))
            for seq, at_us, report, result in rows
        ]

    def forget(self, episode_id: str) -> int:
        """Erase the episode from the database file and its WAL."""
        with self._lock:
            count = self._db.execute("DELETE FROM checkins WHERE episode_id = ?",
                                     (episode_id,)).rowcount
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return count

    def expire(self, before: datetime) -> list[str]:
        """Erase every episode whose latest check-in is before ``before``."""
        cutoff = to_micros(before)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                ids = [row[0] for row in self._db.execute(
                    "SELECT episode_id FROM checkins GROUP BY episode_id "
                    "HAVING MAX(at_us) < ? ORDER BY episode_id", (cutoff,))]
                self._db.executemany("DELETE FROM checkins WHERE episode_id = ?",
                                     [(i,) for i in ids])
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            if ids:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return ids

    def latest(self) -> Iterator[tuple[str, datetime]]:
        """Each episode with the time of its latest check-in."""
        with self._lock:
            rows = self._db.execute("SELECT episode_id, MAX(at_us) FROM checkins "
                                    "GROUP BY episode_id ORDER BY episode_id").fetchall()
        for episode_id, at_us in rows:
            yield episode_id, from_micros(at_us)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
