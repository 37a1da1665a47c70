"""Where check-ins live: the :class:`Store` contract, what it returns, and :func:`open_store`.

A store keeps, per episode, the check-ins in the order of their time ``at``, each with the
result the patient was given. It holds nothing per episode in memory. Two backends
implement the contract: :class:`~marrow_triage.timeline.SQLiteStore` (one node, standard
library only) and :class:`~marrow_triage.timeline.PostgresStore` (several replicas; the
``[postgres]`` extra). A URL chooses one: see :func:`open_store`.

Recording is one transaction per check-in, serialised per episode: the store reads the
episode's check-ins, hands them to the caller's ``evaluate`` and writes what it returns
before any other check-in of that episode can be read, so two check-ins arriving at once
(on two threads, processes or replicas) are each weighed with the one committed first.

With a :class:`Weighing` instead of a plain ``evaluate``, the store also keeps, per
episode, the caller's derived *state* (the running values the history facts need), written
in the same transaction as the check-in. A check-in at or after the episode's latest is
then weighed from that state alone, without reading the episode's check-ins: the cost of
recording stops growing with the episode's length. Any doubt (no state, a state for other
settings, one not written with the latest check-in, a check-in earlier than the latest)
falls back to reading every check-in, and the state is rebuilt.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import unquote, urlsplit

from pydantic import TypeAdapter, ValidationError

from marrow_triage.engine.triage import default_engine
from marrow_triage.errors import CheckInConflictError, Problem, StoreError
from marrow_triage.models import SymptomReport, TriageResult
from marrow_triage.timeline.history import HistoryState, state_key

__all__ = [
    "MAX_AT",
    "MIN_AT",
    "SCHEMA_VERSION",
    "CheckIn",
    "CheckIns",
    "Evaluate",
    "Forgotten",
    "LatestCheckIns",
    "Recorded",
    "Reported",
    "Store",
    "Unreadable",
    "Weighed",
    "Weighing",
    "from_micros",
    "open_store",
    "to_micros",
]

_log = logging.getLogger("marrow_triage.timeline")

SCHEMA_VERSION = 3
"""The store schema this code writes. 1 was the unversioned table of 0.1, 2 added
``checkin_id`` and the version table, 3 the episodes' history states; a database with a
newer version than this is refused (a newer marrow-triage wrote it)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Every time in this range can be shown in any time zone (a day's margin below year 9999),
# stored as microseconds in 64 bits (SQLite) or as timestamptz (PostgreSQL), and read back
# unchanged. Nothing earlier is a check-in after a procedure done with today's software.
MIN_AT = _EPOCH
MAX_AT = datetime(9999, 12, 30, tzinfo=UTC)


def to_micros(at: datetime) -> int:
    """An aware datetime as whole microseconds since the Unix epoch (UTC)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at.isoformat()} has no time zone; give an aware datetime")
    return (at - _EPOCH) // timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    """The UTC datetime ``micros`` microseconds after the Unix epoch."""
    return _EPOCH + timedelta(microseconds=micros)


MIN_AT_US = to_micros(MIN_AT)
MAX_AT_US = to_micros(MAX_AT)


@dataclass(frozen=True)
class CheckIn:
    """One stored check-in: when, what was reported, and what the patient was told."""

    episode_id: str
    seq: int
    """Store-assigned number, increasing in the order check-ins were recorded."""
    at: datetime
    report: SymptomReport
    result: TriageResult
    checkin_id: str | None = None
    """The caller's idempotency key, if it gave one."""


@dataclass(frozen=True)
class Unreadable:
    """A stored row that cannot be decoded (written by another version, or damaged).

    Readers skip it and report it here; ``reason`` never quotes the row's content.
    """

    episode_id: str
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"episode {self.episode_id} check-in #{self.seq} cannot be read: {self.reason}"


class CheckIns(list[CheckIn]):
    """An episode's readable check-ins in time order; ``unreadable`` lists rows skipped."""

    def __init__(self, checkins: Sequence[CheckIn] = (),
                 unreadable: Sequence[Unreadable] = ()) -> None:
        super().__init__(checkins)
        self.unreadable: tuple[Unreadable, ...] = tuple(unreadable)


class LatestCheckIns(list[tuple[str, datetime]]):
    """Each episode with the time of its latest readable check-in, by episode id;
    ``unreadable`` lists rows whose time cannot be read."""

    def __init__(self, latest: Sequence[tuple[str, datetime]] = (),
                 unreadable: Sequence[Unreadable] = ()) -> None:
        super().__init__(latest)
        self.unreadable: tuple[Unreadable, ...] = tuple(unreadable)


@dataclass(frozen=True)
class Recorded:
    """What :meth:`Store.record` stored, or found already stored under the ``checkin_id``."""

    checkin: CheckIn
    replayed: bool = False
    """True when the ``checkin_id`` was recorded before and this is that stored result."""
    unreadable: tuple[Unreadable, ...] = ()
    """Earlier rows of the episode that could not be read and were not weighed (found when
    the record read the episode's check-ins; one weighed from the history state reads
    none)."""


@dataclass(frozen=True)
class Forgotten:
    """What :meth:`Store.forget` erased, and whether copies may remain for a while."""

    count: int
    pending: str | None = None
    """None when every copy is gone; else where copies remain and until when."""

    @property
    def complete(self) -> bool:
        """True when no copy of the episode's data remains in the store's files."""
        return self.pending is None

    def __str__(self) -> str:
        text = f"erased {self.count} check-in(s)"
        return text if self.pending is None else f"{text} from the database, {self.pending}"


@dataclass(frozen=True)
class Reported:
    """A stored check-in's time and report: what weighing a new check-in reads."""

    seq: int
    at: datetime
    report: SymptomReport


Evaluate = Callable[[Sequence[Reported]], TriageResult]
"""Given the episode's stored check-ins (all of them, by time), the result of the one being
recorded. It runs inside the store's transaction, under the episode's lock; raising aborts
the record and nothing is written."""


@dataclass(frozen=True)
class Weighed:
    """A new check-in's result, and the episode's state once it is added."""

    result: TriageResult
    state: str


@dataclass(frozen=True)
class Weighing:
    """How the caller weighs a new check-in, from the episode's stored state when it can.

    Both callables run inside the store's transaction, under the episode's lock; raising
    aborts the record and nothing is written.
    """

    key: str
    """What the state depends on; a state stored under another key is not used."""
    from_state: Callable[[str | None], Weighed | None]
    """Given the state stored with the episode's latest check-in (None: the episode has no
    check-in), when the new one is at or after that latest; None when it cannot use it."""
    from_checkins: Callable[[Sequence[Reported]], Weighed]
    """Given every readable stored check-in of the episode, by time (as ``Evaluate``)."""


@dataclass(frozen=True)
class StoredState:
    """An episode's stored state row, with the latest check-in it was written with (its
    time as the backend stores it, and its ``seq``)."""

    key: str
    state: str
    last_at: Any
    last_seq: int


def weigh(evaluate: Evaluate | Weighing, at: Any, latest: tuple[Any, int] | None,
          stored: StoredState | None,
          read: Callable[[], Sequence[Reported]]
          ) -> tuple[TriageResult, tuple[str, str] | None]:
    """The new check-in's result and the episode's state to store, with its key (None:
    drop the stored one).

    ``at`` and ``latest`` (the episode's latest row's time and ``seq``, None if it has
    none) are in the backend's own form; ``read`` reads and decodes every row.
    """
    if not isinstance(evaluate, Weighing):
        # A caller that keeps no state: whatever is stored no longer covers the episode.
        return evaluate(read()), None
    weighed = None
    if latest is None:
        weighed = evaluate.from_state(None)
    elif (stored is not None and stored.key == evaluate.key
          # Written with the very row that is latest now: nothing was added or removed
          # around the state since (a bulk load or an import drops the state).
          and (stored.last_at, stored.last_seq) == latest and at >= latest[0]):
        weighed = evaluate.from_state(stored.state)
    if weighed is None:
        weighed = evaluate.from_checkins(read())
    return weighed.result, (evaluate.key, weighed.state)


def migrated_states(rows: Iterable[tuple[str, int, Any, str]]
                    ) -> Iterator[tuple[str, str, str, Any, int]]:
    """The history states of existing episodes, for the migration that adds them.

    ``rows`` are every check-in's ``(episode_id, seq, at, report)`` ordered by episode, then
    time, then ``seq``; yields ``(episode_id, key, state, last_at, last_seq)``. The states
    are folded with the packaged pack's history settings: a timeline on a pack with other
    settings finds another key and rebuilds each episode's state at its next record.
    Rows that cannot be read are left out, as a record reading the episode leaves them.
    """
    rows = iter(rows)
    first = next(rows, None)
    if first is None:  # a new database: no need to load the pack
        return
    settings = default_engine().pack.history
    if settings is None:
        return
    key = state_key(settings)
    for episode_id, group in itertools.groupby(itertools.chain([first], rows),
                                               key=lambda row: row[0]):
        episode = list(group)
        decoder = RowDecoder(episode_id)
        reported = decode_reports([(seq, at, report) for _, seq, at, report in episode],
                                  decoder)
        _, last_seq, last_at, _ = episode[-1]
        yield (episode_id, key, HistoryState.of(reported, settings).dumps(), last_at,
               last_seq)


def latest_after(latest: tuple[Any, int] | None, at: Any, seq: int) -> tuple[Any, int]:
    """The episode's latest row once the row ``(at, seq)`` is added after ``latest``."""
    if latest is None or (at, seq) > latest:
        return at, seq
    return latest


@runtime_checkable
class Store(Protocol):
    """Durable storage of check-ins. Every method is safe to call from several threads,
    and from several processes sharing the database."""

    url: str
    """Where the store is, without credentials (for messages)."""

    def record(self, episode_id: str, at: datetime, report: SymptomReport,
               evaluate: Evaluate | Weighing, checkin_id: str | None = None) -> Recorded:
        """Store a check-in durably with the result ``evaluate`` gives for the episode's
        stored check-ins, in one transaction under the episode's lock; with a
        :class:`Weighing`, also the episode's new state (see the module's docstring).

        With a ``checkin_id`` that the episode already has: the stored check-in, with
        ``replayed`` set, if ``at`` and ``report`` are the same; else :class:`TimelineError`.
        """
        ...

    def load(self, checkins: Iterable[CheckIn]) -> int:
        """Import stored check-ins as they are, results included, in bulk (moving a
        timeline from one store to another, or filling a benchmark); their ``seq`` is
        assigned anew. Not a way to record: nothing is weighed, and the states of the
        episodes imported into are dropped (the next record rebuilds them). Run it while
        nothing records into those episodes: it does not take their locks, so a record
        meeting the import could keep a state without the imported rows. Returns how
        many."""
        ...

    def checkins(self, episode_id: str) -> CheckIns:
        """The episode's check-ins ordered by ``at`` (then ``seq``); empty if unknown."""
        ...

    def forget(self, episode_id: str) -> Forgotten:
        """Erase every copy of the episode's check-ins and of its state."""
        ...

    def expire(self, before: datetime, limit: int) -> list[str]:
        """Erase at most ``limit`` episodes (check-ins and state) whose latest check-in is
        before ``before``, in one transaction (PostgreSQL: one per 500 episodes), each
        episode checked again under its lock so that a check-in being recorded into it is
        never erased; return their ids (fewer than ``limit``: none is left)."""
        ...

    def latest(self) -> LatestCheckIns:
        """Each episode with the time of its latest check-in, ordered by episode id."""
        ...

    def close(self) -> None:
        """Release the store's resources."""
        ...


def open_store(url: str | Path, *, pool_size: int = 10, create: bool = True) -> Store:
    """The store a URL names (with ``create=False`` a missing SQLite file is a
    :class:`StoreError`, not a new empty database: for commands that only read).

    ``sqlite:///relative.db``, ``sqlite:////absolute/path.db`` or a plain path: a
    :class:`~marrow_triage.timeline.SQLiteStore`. ``postgresql://user@host:port/db?...``
    (libpq's URL form; ``postgres://`` too): a :class:`~marrow_triage.timeline.PostgresStore`
    with a pool of at most ``pool_size`` connections (needs the ``[postgres]`` extra).
    Anything else is a :class:`StoreError`.
    """
    text = str(url)
    if not text.strip():
        raise StoreError("the database URL is empty: give a file path, sqlite:///path.db "
                         "or postgresql://...")
    scheme = urlsplit(text).scheme.lower() if "://" in text else ""
    if scheme in ("postgresql", "postgres"):
        from marrow_triage.timeline.postgres import PostgresStore

        return PostgresStore(text, pool_size=pool_size)
    if scheme == "sqlite":
        path = unquote(text.split("://", 1)[1])
        if not path.startswith("/") or path == "/":
            raise StoreError(f"{_redact(text)}: give sqlite:///relative.db or "
                             "sqlite:////absolute/path.db")
        path = path[1:]
    elif scheme:
        raise StoreError(f"{_redact(text)}: unknown database scheme {scheme!r}; use a file "
                         "path, sqlite:///path.db or postgresql://...")
    else:
        path = text
    from marrow_triage.timeline.sqlite import SQLiteStore

    return SQLiteStore(path, create=create)


def _redact(url: str) -> str:
    """``url`` without a password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


# --- decoding rows, shared by the backends -------------------------------------------

_REPORTS = TypeAdapter(list[SymptomReport])


@dataclass
class RowDecoder:
    """Decodes an episode's rows, skipping (and logging) those that cannot be read."""

    episode_id: str
    unreadable: list[Unreadable] = field(default_factory=list)

    def skip(self, seq: int, reason: str) -> None:
        item = Unreadable(self.episode_id, seq, reason)
        # The id and the row number only: never the row's content.
        _log.warning("%s", item)
        self.unreadable.append(item)

    def at(self, seq: int, at: datetime | int) -> datetime | None:
        if isinstance(at, datetime):
            return at.astimezone(UTC)
        if not MIN_AT_US <= at <= MAX_AT_US:
            self.skip(seq, "its time is outside the range a check-in can take")
            return None
        return from_micros(at)

    def checkin(self, seq: int, at: datetime | int, report: str | bytes | object,
                result: str | bytes | object, checkin_id: str | None) -> CheckIn | None:
        when = self.at(seq, at)
        if when is None:
            return None
        try:
            return CheckIn(self.episode_id, seq, when, _model(SymptomReport, report),
                           _model(TriageResult, result), checkin_id)
        except (ValidationError, ValueError, TypeError) as exc:
            self.skip(seq, f"its stored report or result does not decode "
                           f"({type(exc).__name__})")
            return None


_M = TypeVar("_M", SymptomReport, TriageResult)


def _model(model: type[_M], value: object) -> _M:
    if isinstance(value, str | bytes):
        return model.model_validate_json(value)
    return model.model_validate(value)


def decode_reports(rows: Sequence[tuple[int, datetime | int, str]],
                   decoder: RowDecoder) -> list[Reported]:
    """``(seq, at, report)`` rows decoded; the reports in one pass when every row is
    readable (the common case, several times faster than one by one)."""
    times = [(seq, decoder.at(seq, at), report) for seq, at, report in rows]
    good = [(seq, at, report) for seq, at, report in times if at is not None]
    if not good:
        return []
    try:
        reports = _REPORTS.validate_json("[" + ",".join(r for _, _, r in good) + "]")
    except (ValidationError, ValueError):
        decoded = []
        for seq, at, report in good:
            try:
                decoded.append(Reported(seq, at, SymptomReport.model_validate_json(report)))
            except (ValidationError, ValueError):
                decoder.skip(seq, "its stored report does not decode")
        return decoded
    return [Reported(seq, at, report)
            for (seq, at, _), report in zip(good, reports, strict=True)]


def replay(decoder: RowDecoder, row: Sequence[Any], at: datetime, report: SymptomReport,
           checkin_id: str) -> Recorded:
    """The stored check-in ``row`` (seq, at, report, result) found under ``checkin_id``,
    returned for a retry that carries the same time and report; else
    :class:`CheckInConflictError`."""
    stored = decoder.checkin(row[0], row[1], row[2], row[3], checkin_id)
    if stored is None:
        raise StoreError(f"check-in {checkin_id!r} of episode {decoder.episode_id} is stored "
                         "but cannot be read")
    if stored.at != at or stored.report != report:
        raise CheckInConflictError(
            f"checkin_id {checkin_id!r} was already recorded for this episode with a "
            "different time or report; a retry must send the same check-in, a new check-in "
            "a new id", [Problem("checkin_id", "already used for a different check-in")])
    return Recorded(stored, replayed=True)


def report_json(report: SymptomReport) -> str:
    """The stored form of a report."""
    return report.model_dump_json(exclude_none=True)


def dumps(value: object) -> str:
    """Compact JSON for rows."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
