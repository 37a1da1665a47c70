"""The timeline in one SQLite file: standard library only, for one node."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from marrow_triage.errors import StoreError
from marrow_triage.models import SymptomReport
from marrow_triage.timeline.store import (
    MAX_AT_US,
    MIN_AT_US,
    SCHEMA_VERSION,
    CheckIn,
    CheckIns,
    Evaluate,
    Forgotten,
    LatestCheckIns,
    Recorded,
    Reported,
    RowDecoder,
    StoredState,
    Weighing,
    decode_reports,
    from_micros,
    latest_after,
    migrated_states,
    replay,
    report_json,
    to_micros,
    weigh,
)

__all__ = ["SQLiteStore"]

_TABLES = """
CREATE TABLE checkins (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    episode_id TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    report TEXT NOT NULL,
    result TEXT NOT NULL,
    checkin_id TEXT
);
CREATE INDEX checkins_by_episode ON checkins (episode_id, at_us, seq);
"""
# Version 1 (0.1) had the table without checkin_id and no version table.
_TO_VERSION_2 = """
CREATE UNIQUE INDEX checkins_by_checkin_id ON checkins (episode_id, checkin_id)
    WHERE checkin_id IS NOT NULL;
CREATE TABLE marrow_schema (version INTEGER NOT NULL);
"""
# Version 3: each episode's history state, written in the check-in's transaction with the
# latest check-in it covers; the migration folds it for the episodes already stored.
_TO_VERSION_3 = """
CREATE TABLE episode_states (
    episode_id TEXT PRIMARY KEY,
    state_key TEXT NOT NULL,
    state TEXT NOT NULL,
    last_at_us INTEGER NOT NULL,
    last_seq INTEGER NOT NULL
) WITHOUT ROWID;
"""
_BUSY_TIMEOUT_MS = 30_000
_CHECKPOINT_POLL_S = 0.05


class SQLiteStore:
    """Check-ins in one SQLite file (WAL journal, ``synchronous=FULL``, secure delete).

    A check-in is committed and synced to disk before :meth:`record` returns, so a process
    killed at any point loses no check-in whose result was returned. Each record is one
    ``BEGIN IMMEDIATE`` transaction (SQLite's write lock), so processes sharing the file
    weigh each check-in with every one committed before it. Forgotten episodes are
    overwritten in the database file and the WAL is truncated; :meth:`forget` waits up to
    ``checkpoint_deadline_s`` for readers that keep old copies alive, then says so.
    """

    def __init__(self, path: str | Path, *, checkpoint_deadline_s: float = 5.0,
                 create: bool = True) -> None:
        """Open the timeline in ``path``; with ``create=False`` a missing file is a
        :class:`StoreError` instead of a new, empty timeline (for reading commands, where
        a mistyped path must not look like an episode with no check-ins)."""
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.checkpoint_deadline_s = checkpoint_deadline_s
        self._lock = threading.Lock()
        # mode=rw: SQLite itself refuses a missing file, with no window between a check
        # and the open in which the file could appear or vanish.
        target = self.path if create else f"{self.path.resolve().as_uri()}?mode=rw"
        try:
            self._db = sqlite3.connect(target, uri=not create, isolation_level=None,
                                       check_same_thread=False, timeout=_BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            if not create and not self.path.exists():
                raise StoreError(f"{self.path}: no such timeline database") from None
            raise StoreError(f"{self.path}: cannot open: {exc}") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA secure_delete=ON")
            self._migrate()
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(f"{self.path}: cannot open: {exc}") from None
        except BaseException:
            self._db.close()
            raise

    def _migrate(self) -> None:
        with self._transaction():
            names = {row[0] for row in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = 0
            if "marrow_schema" in names:
                row = self._db.execute("SELECT MAX(version) FROM marrow_schema").fetchone()
                version = row[0] or 0
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path}: its timeline schema is version {version}, newer than "
                        f"this marrow-triage knows ({SCHEMA_VERSION}); upgrade marrow-triage")
                if version == SCHEMA_VERSION:
                    return
            elif "checkins" not in names:
                self._script(_TABLES)
            else:  # version 1
                self._db.execute("ALTER TABLE checkins ADD COLUMN checkin_id TEXT")
            if version < 2:
                self._script(_TO_VERSION_2)
                self._db.execute("INSERT INTO marrow_schema (version) VALUES (2)")
            self._script(_TO_VERSION_3)
            # Streamed, one episode at a time: a large timeline is never held in memory.
            rows = self._db.execute("SELECT episode_id, seq, at_us, report FROM checkins "
                                    "ORDER BY episode_id, at_us, seq")
            self._db.executemany("INSERT INTO episode_states (episode_id, state_key, state, "
                                 "last_at_us, last_seq) VALUES (?, ?, ?, ?, ?)",
                                 migrated_states(rows))
            self._db.execute("UPDATE marrow_schema SET version = ?", (SCHEMA_VERSION,))

    def _script(self, statements: str) -> None:
        for statement in statements.split(";"):
            if statement.strip():
                self._db.execute(statement)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding SQLite's write lock from its first statement."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def record(self, episode_id: str, at: datetime, report: SymptomReport,
               evaluate: Evaluate | Weighing, checkin_id: str | None = None) -> Recorded:
        """Store a check-in with the result ``evaluate`` gives, in one transaction."""
        at_us = to_micros(at)
        decoder = RowDecoder(episode_id)
        with self._lock, self._transaction() as db:
            if checkin_id is not None:
                row = db.execute(
                    "SELECT seq, at_us, report, result FROM checkins "
                    "WHERE episode_id = ? AND checkin_id = ?", (episode_id, checkin_id)
                ).fetchone()
                if row is not None:
                    return replay(decoder, row, at, report, checkin_id)
            latest = db.execute(
                "SELECT at_us, seq FROM checkins WHERE episode_id = ? "
                "ORDER BY at_us DESC, seq DESC LIMIT 1", (episode_id,)).fetchone()
            stored = db.execute(
                "SELECT state_key, state, last_at_us, last_seq FROM episode_states "
                "WHERE episode_id = ?", (episode_id,)).fetchone()

            def read() -> list[Reported]:
                rows = db.execute("SELECT seq, at_us, report FROM checkins "
                                  "WHERE episode_id = ? ORDER BY at_us, seq",
                                  (episode_id,)).fetchall()
                return decode_reports(rows, decoder)

            result, state = weigh(evaluate, at_us, latest,
                                  None if stored is None else StoredState(*stored), read)
            cursor = db.execute(
                "INSERT INTO checkins (episode_id, at_us, report, result, checkin_id) "
                "VALUES (?, ?, ?, ?, ?)",
                (episode_id, at_us, report_json(report), result.model_dump_json(), checkin_id))
            seq = cursor.lastrowid
            assert seq is not None
            if state is None:
                db.execute("DELETE FROM episode_states WHERE episode_id = ?", (episode_id,))
            else:
                last_at, last_seq = latest_after(latest, at_us, seq)
                db.execute(
                    "INSERT INTO episode_states (episode_id, state_key, state, last_at_us, "
                    "last_seq) VALUES (?, ?, ?, ?, ?) ON CONFLICT (episode_id) DO UPDATE SET "
                    "state_key = excluded.state_key, state = excluded.state, "
                    "last_at_us = excluded.last_at_us, last_seq = excluded.last_seq",
                    (episode_id, *state, last_at, last_seq))
        return Recorded(CheckIn(episode_id, seq, from_micros(at_us), report, result, checkin_id),
                        unreadable=tuple(decoder.unreadable))

    def load(self, checkins: Iterable[CheckIn]) -> int:
        """Import stored check-ins in bulk, in one transaction."""
        episodes: set[str] = set()

        def rows() -> Iterator[tuple[str, int, str, str, str | None]]:
            for c in checkins:
                episodes.add(c.episode_id)
                yield (c.episode_id, to_micros(c.at), report_json(c.report),
                       c.result.model_dump_json(), c.checkin_id)

        with self._lock, self._transaction() as db:
            before = db.total_changes
            db.executemany("INSERT INTO checkins (episode_id, at_us, report, result, "
                           "checkin_id) VALUES (?, ?, ?, ?, ?)", rows())
            count = db.total_changes - before
            # The imported rows are not in those episodes' states: the next record of each
            # rebuilds it from the check-ins.
            db.executemany("DELETE FROM episode_states WHERE episode_id = ?",
                           [(e,) for e in sorted(episodes)])
            return count

    def checkins(self, episode_id: str) -> CheckIns:
        """The episode's check-ins ordered by ``at`` then ``seq``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, at_us, report, result, checkin_id FROM checkins "
                "WHERE episode_id = ? ORDER BY at_us, seq", (episode_id,)).fetchall()
        decoder = RowDecoder(episode_id)
        read = [decoder.checkin(*row) for row in rows]
        return CheckIns([c for c in read if c is not None], decoder.unreadable)

    def forget(self, episode_id: str) -> Forgotten:
        """Erase the episode from the database file and its WAL."""
        with self._lock, self._transaction() as db:
            count = db.execute("DELETE FROM checkins WHERE episode_id = ?",
                               (episode_id,)).rowcount
            db.execute("DELETE FROM episode_states WHERE episode_id = ?", (episode_id,))
        if not self._checkpoint():
            return Forgotten(count, "pending in the WAL until readers finish (another "
                             f"connection kept reading for {self.checkpoint_deadline_s:g} s)")
        return Forgotten(count)

    def _checkpoint(self) -> bool:
        """Copy the WAL into the database and truncate it; False if readers kept it busy
        until the deadline (their snapshots still need the old pages)."""
        deadline = time.monotonic() + self.checkpoint_deadline_s
        while True:
            with self._lock:
                self._db.execute("PRAGMA busy_timeout = 0")
                try:
                    busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                finally:
                    self._db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            if not busy:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(_CHECKPOINT_POLL_S)

    def expire(self, before: datetime, limit: int) -> list[str]:
        """Erase at most ``limit`` episodes whose latest check-in is before ``before``."""
        cutoff = to_micros(before)
        with self._lock, self._transaction() as db:
            ids = [row[0] for row in db.execute(
                "SELECT episode_id FROM checkins GROUP BY episode_id "
                "HAVING MAX(at_us) < ? ORDER BY episode_id LIMIT ?", (cutoff, limit))]
            db.executemany("DELETE FROM checkins WHERE episode_id = ?", [(i,) for i in ids])
            db.executemany("DELETE FROM episode_states WHERE episode_id = ?",
                           [(i,) for i in ids])
        if ids:
            self._checkpoint()
        return ids

    def latest(self) -> LatestCheckIns:
        """Each episode with the time of its latest readable check-in."""
        with self._lock:
            rows = self._db.execute(
                "SELECT episode_id, MAX(at_us) FROM checkins WHERE at_us BETWEEN ? AND ? "
                "GROUP BY episode_id ORDER BY episode_id", (MIN_AT_US, MAX_AT_US)).fetchall()
            bad = self._db.execute(
                "SELECT episode_id, seq FROM checkins WHERE at_us NOT BETWEEN ? AND ? "
                "ORDER BY episode_id, seq", (MIN_AT_US, MAX_AT_US)).fetchall()
        unreadable = []
        for episode_id, seq in bad:
            decoder = RowDecoder(episode_id)
            decoder.skip(seq, "its time is outside the range a check-in can take")
            unreadable.extend(decoder.unreadable)
        return LatestCheckIns([(e, from_micros(at_us)) for e, at_us in rows], unreadable)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
