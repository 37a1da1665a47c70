"""The timeline in PostgreSQL, shared by several service replicas (the ``[postgres]`` extra).

Each record is one transaction that first takes a transaction-scoped advisory lock on the
episode (``pg_advisory_xact_lock``): check-ins of one episode are serialised across every
connection and replica, other episodes never wait, and no table is locked. Commits wait for
the WAL flush (``synchronous_commit = on``), so an acknowledged check-in survives a crash.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from marrow_triage.errors import StoreError
from marrow_triage.models import SymptomReport
from marrow_triage.timeline.store import (
    MAX_AT,
    MIN_AT,
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
    _redact,
    decode_reports,
    latest_after,
    migrated_states,
    replay,
    report_json,
    weigh,
)

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

__all__ = ["PostgresStore"]

EXTRA_MESSAGE = ("PostgreSQL needs the [postgres] extra: pip install 'marrow-triage[postgres]'")
# The first key of the two-key advisory locks this library takes ("MaTr"), so that its
# locks never collide with another application's single-key locks on the same database.
_LOCK_CLASS = 0x4D615472
_MIGRATION_LOCK = 0

_TABLES = f"""
CREATE TABLE checkins (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    episode_id text NOT NULL,
    at timestamptz NOT NULL
        CHECK (at >= '{MIN_AT.isoformat()}' AND at < '{MAX_AT.isoformat()}'),
    report jsonb NOT NULL,
    result jsonb NOT NULL,
    checkin_id text
);
CREATE INDEX checkins_by_episode ON checkins (episode_id, at, seq);
CREATE UNIQUE INDEX checkins_by_checkin_id ON checkins (episode_id, checkin_id)
    WHERE checkin_id IS NOT NULL;
CREATE TABLE marrow_schema (version integer NOT NULL);
"""
# Version 3: each episode's history state, written in the check-in's transaction with the
# latest check-in it covers; the migration folds it for the episodes already stored.
_TO_VERSION_3 = """
CREATE TABLE episode_states (
    episode_id text PRIMARY KEY,
    state_key text NOT NULL,
    state text NOT NULL,
    last_at timestamptz NOT NULL,
    last_seq bigint NOT NULL
);
"""
# Episodes one expiry transaction locks at most (each lock takes a slot of the server's
# lock table, max_locks_per_transaction per connection).
_EXPIRE_CHUNK = 500
# What forget and expire vacuum: every table that holds an episode's data.
_EPISODE_TABLES = "checkins, episode_states"


def _episode_key(episode_id: str) -> int:
    """A stable signed 32-bit key for the episode's advisory lock.

    Two episodes may share a key (they then wait for each other briefly); correctness
    only needs one episode to always map to the same key, on every replica.
    """
    digest = hashlib.blake2b(episode_id.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresStore:
    """Check-ins in a PostgreSQL database, through a pool of at most ``pool_size``
    connections (psycopg 3). The schema is created, or migrated, on first use.

    ``forget`` deletes the rows and vacuums the tables, so the dead tuples are removed from
    the tables' pages too; the server's WAL segments and backups are the database's own
    and are recycled by its retention settings (docs/deployment.md).
    """

    def __init__(self, url: str, *, pool_size: int = 10, timeout_s: float = 30.0) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError:
            raise StoreError(EXTRA_MESSAGE) from None
        if not 1 <= pool_size <= 1000:
            raise StoreError(f"pool size must be from 1 to 1000, not {pool_size}")
        self.url = _redact(url)
        self._psycopg = psycopg
        self._vacuum_lock = threading.Lock()
        try:
            # One direct connection first: a wrong URL or a server that is down fails now,
            # with the server's reason, instead of after the pool's retries time out.
            psycopg.connect(url, connect_timeout=max(1, int(timeout_s))).close()
            self._pool: ConnectionPool[Any] = ConnectionPool(
                url, min_size=1, max_size=pool_size, timeout=timeout_s, open=False,
                kwargs={"autocommit": False}, configure=self._configure)
            self._pool.open(wait=True, timeout=timeout_s)
        except (psycopg.Error, Exception) as exc:
            raise StoreError(f"{self.url}: cannot connect: {_first_line(exc)}") from None
        try:
            self._migrate()
        except BaseException:
            self._pool.close()
            raise

    @staticmethod
    def _configure(conn: psycopg.Connection[Any]) -> None:
        conn.autocommit = True
        conn.execute("SET synchronous_commit = on")
        conn.execute("SET TIME ZONE 'UTC'")
        conn.autocommit = False

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._pool.connection() as conn, conn.transaction():
                yield conn
        except self._psycopg.Error as exc:
            raise StoreError(f"{self.url}: {_first_line(exc)}") from None

    def _migrate(self) -> None:
        with self._transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK_CLASS, _MIGRATION_LOCK))
            tables = {row[0] for row in conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()")}
            if "marrow_schema" in tables:
                row = conn.execute("SELECT MAX(version) FROM marrow_schema").fetchone()
                version = (row[0] if row else None) or 0
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.url}: its timeline schema is version {version}, newer than "
                        f"this marrow-triage knows ({SCHEMA_VERSION}); upgrade marrow-triage")
                if version == SCHEMA_VERSION:
                    return
            elif "checkins" in tables:
                raise StoreError(f"{self.url}: has a checkins table but no marrow_schema "
                                 "table: not a marrow-triage database, or a damaged one")
            else:
                _script(conn, _TABLES)
                conn.execute("INSERT INTO marrow_schema (version) VALUES (2)")
            # Version 2 (the first on PostgreSQL) to 3.
            _script(conn, _TO_VERSION_3)
            # Streamed through a server-side cursor, one episode at a time: a large
            # timeline is never held in memory.
            with conn.cursor(name="marrow_migrate_states") as rows, conn.cursor() as insert:
                rows.execute("SELECT episode_id, seq, at, report::text FROM checkins "
                             "ORDER BY episode_id, at, seq")
                states = migrated_states(rows)
                # In batches: executemany pipelines, and the server-side cursor cannot
                # fetch while a pipeline is open.
                while batch := list(itertools.islice(states, 500)):
                    insert.executemany(
                        "INSERT INTO episode_states (episode_id, state_key, state, last_at, "
                        "last_seq) VALUES (%s, %s, %s, %s, %s)", batch)
            conn.execute("UPDATE marrow_schema SET version = %s", (SCHEMA_VERSION,))

    def record(self, episode_id: str, at: datetime, report: SymptomReport,
               evaluate: Evaluate | Weighing, checkin_id: str | None = None) -> Recorded:
        """Store a check-in with the result ``evaluate`` gives, under the episode's lock."""
        decoder = RowDecoder(episode_id)
        with self._transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                         (_LOCK_CLASS, _episode_key(episode_id)))
            if checkin_id is not None:
                row = conn.execute(
                    "SELECT seq, at, report::text, result::text FROM checkins "
                    "WHERE episode_id = %s AND checkin_id = %s", (episode_id, checkin_id)
                ).fetchone()
                if row is not None:
                    return replay(decoder, row, at, report, checkin_id)
            latest = conn.execute(
                "SELECT at, seq FROM checkins WHERE episode_id = %s "
                "ORDER BY at DESC, seq DESC LIMIT 1", (episode_id,)).fetchone()
            stored = conn.execute(
                "SELECT state_key, state, last_at, last_seq FROM episode_states "
                "WHERE episode_id = %s", (episode_id,)).fetchone()

            def read() -> list[Reported]:
                rows = conn.execute(
                    "SELECT seq, at, report::text FROM checkins WHERE episode_id = %s "
                    "ORDER BY at, seq", (episode_id,)).fetchall()
                return decode_reports(rows, decoder)

            result, state = weigh(evaluate, at, None if latest is None else tuple(latest),
                                  None if stored is None else StoredState(*stored), read)
            inserted = conn.execute(
                "INSERT INTO checkins (episode_id, at, report, result, checkin_id) "
                "VALUES (%s, %s, %s, %s, %s) RETURNING seq",
                (episode_id, at, report_json(report), result.model_dump_json(), checkin_id)
            ).fetchone()
            assert inserted is not None
            if state is None:
                conn.execute("DELETE FROM episode_states WHERE episode_id = %s",
                             (episode_id,))
            else:
                last_at, last_seq = latest_after(
                    None if latest is None else tuple(latest), at, inserted[0])
                conn.execute(
                    "INSERT INTO episode_states (episode_id, state_key, state, last_at, "
                    "last_seq) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (episode_id) DO UPDATE "
                    "SET state_key = excluded.state_key, state = excluded.state, "
                    "last_at = excluded.last_at, last_seq = excluded.last_seq",
                    (episode_id, *state, last_at, last_seq))
        return Recorded(CheckIn(episode_id, inserted[0], at, report, result, checkin_id),
                        unreadable=tuple(decoder.unreadable))

    def load(self, checkins: Iterable[CheckIn]) -> int:
        """Import stored check-ins in bulk with COPY, in one transaction."""
        count = 0
        episodes: set[str] = set()
        with self._transaction() as conn:
            with conn.cursor() as cursor, cursor.copy(
                    "COPY checkins (episode_id, at, report, result, checkin_id) FROM STDIN"
            ) as copy:
                for c in checkins:
                    copy.write_row((c.episode_id, c.at, report_json(c.report),
                                    c.result.model_dump_json(), c.checkin_id))
                    episodes.add(c.episode_id)
                    count += 1
            # The imported rows are not in those episodes' states: the next record of each
            # rebuilds it from the check-ins.
            conn.execute("DELETE FROM episode_states WHERE episode_id = ANY(%s)",
                         (sorted(episodes),))
        return count

    def checkins(self, episode_id: str) -> CheckIns:
        """The episode's check-ins ordered by ``at`` then ``seq``."""
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT seq, at, report::text, result::text, checkin_id FROM checkins "
                "WHERE episode_id = %s ORDER BY at, seq", (episode_id,)).fetchall()
        decoder = RowDecoder(episode_id)
        read = [decoder.checkin(*row) for row in rows]
        return CheckIns([c for c in read if c is not None], decoder.unreadable)

    def forget(self, episode_id: str) -> Forgotten:
        """Delete the episode's rows and state, then vacuum so no dead copy stays behind.

        VACUUM keeps the dead rows that an older transaction may still read (another
        connection in a long REPEATABLE READ transaction, say): then the result says so.
        """
        with self._transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                         (_LOCK_CLASS, _episode_key(episode_id)))
            count = conn.execute("DELETE FROM checkins WHERE episode_id = %s",
                                 (episode_id,)).rowcount
            conn.execute("DELETE FROM episode_states WHERE episode_id = %s", (episode_id,))
            row = conn.execute("SELECT mod(txid_current(), 4294967296)").fetchone()
        assert row is not None
        pending = self._vacuum(int(row[0]))
        return Forgotten(count, pending if count else None)

    def _vacuum(self, deleted_by: int | None = None) -> str | None:
        """VACUUM the tables (outside a transaction), removing the deleted rows' dead copies
        from its pages; what remains, and why, when it could not remove them all (checked
        against the transaction ``deleted_by``, when given)."""
        # One VACUUM at a time from this process: concurrent ones on a table only queue.
        with self._vacuum_lock:
            try:
                with self._pool.connection() as conn:
                    conn.autocommit = True
                    try:
                        conn.execute(f"VACUUM {_EPISODE_TABLES}")
                        if deleted_by is None:
                            return None
                        # Backends whose snapshot predates the delete still see the rows,
                        # so VACUUM had to keep them.
                        older = conn.execute(
                            "SELECT count(*) FROM pg_stat_activity "
                            "WHERE pid <> pg_backend_pid() AND backend_xmin IS NOT NULL "
                            "AND age(backend_xmin) >= age(%s::text::xid)",
                            (str(deleted_by),)).fetchone()
                    finally:
                        conn.autocommit = False
            except self._psycopg.Error as exc:
                return f"pending in dead rows until the next VACUUM ({_first_line(exc)})"
        if older and older[0]:
            return (f"pending in dead rows until {older[0]} older transaction(s) finish and "
                    "the next VACUUM (autovacuum, or the next forget) runs")
        return None

    def expire(self, before: datetime, limit: int) -> list[str]:
        """Erase at most ``limit`` episodes whose latest check-in is before ``before``, in
        transactions of at most ``_EXPIRE_CHUNK`` episodes, each holding their locks.

        Under the episodes' locks, so that a check-in being recorded into one of them
        meanwhile is neither erased (it was acknowledged) nor stored with a history state
        that still holds the erased check-ins: the episode is checked again once locked.
        """
        ids: list[str] = []
        while len(ids) < limit:
            chunk = min(limit - len(ids), _EXPIRE_CHUNK)
            with self._transaction() as conn:
                candidates = [row[0] for row in conn.execute(
                    "SELECT episode_id FROM checkins GROUP BY episode_id HAVING MAX(at) < %s "
                    "ORDER BY episode_id LIMIT %s", (before, chunk))]
                # In key order: two expiries never wait for each other in a cycle.
                for key in sorted({_episode_key(e) for e in candidates}):
                    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK_CLASS, key))
                expired = [row[0] for row in conn.execute(
                    "SELECT episode_id FROM checkins WHERE episode_id = ANY(%s) "
                    "GROUP BY episode_id HAVING MAX(at) < %s ORDER BY episode_id",
                    (candidates, before))]
                if expired:
                    conn.execute("DELETE FROM checkins WHERE episode_id = ANY(%s)", (expired,))
                    conn.execute("DELETE FROM episode_states WHERE episode_id = ANY(%s)",
                                 (expired,))
            ids += expired
            if len(candidates) < chunk:
                break
        if ids:
            self._vacuum()
        return ids

    def latest(self) -> LatestCheckIns:
        """Each episode with the time of its latest check-in."""
        with self._transaction() as conn:
            rows = conn.execute("SELECT episode_id, MAX(at) FROM checkins "
                                "GROUP BY episode_id ORDER BY episode_id").fetchall()
        return LatestCheckIns([(episode_id, at) for episode_id, at in rows])

    def close(self) -> None:
        """Close the pool's connections."""
        self._pool.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _script(conn: psycopg.Connection[Any], statements: str) -> None:
    for statement in statements.split(";"):
        if statement.strip():
            conn.execute(statement)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
