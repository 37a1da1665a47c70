"""``/v1/episodes``: the patient timeline over HTTP (record, read, forget an episode).

The store is chosen by URL (``MARROW_TRIAGE_DB``: a SQLite path or ``sqlite:///...`` for
one node, ``postgresql://...`` for several replicas sharing one database). Every replica
gives the answer one process would: records of one episode are serialised by the store.
Like ``/v1/triage``: bearer token, size limit, 422 naming the field, and neither reports
nor error messages that could quote one reach the logs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from marrow_triage.adapters.service.language import AcceptLanguage, negotiate_locale
from marrow_triage.errors import CheckInConflictError, StoreError, TimelineError
from marrow_triage.models import SymptomReport, TriageResult
from marrow_triage.timeline.store import CheckIn, Store, open_store
from marrow_triage.timeline.timeline import EPISODE_ID, Timeline, check_time

__all__ = ["DB_ENV", "DB_POOL_ENV", "TimelineService", "timeline_router"]

DB_ENV = "MARROW_TRIAGE_DB"
DB_POOL_ENV = "MARROW_TRIAGE_DB_POOL_SIZE"

_log = logging.getLogger("marrow_triage.adapters.service.timeline")

_ID = EPISODE_ID.pattern
EpisodeId = Annotated[str, Path(pattern=_ID, max_length=128,
                                description="Episode id: 1 to 128 letters, digits or ._:@-.")]


class CheckInRequest(BaseModel):
    """A check-in to record: the report, when it was taken, and an optional retry key."""

    model_config = ConfigDict(extra="forbid")

    report: SymptomReport
    at: AwareDatetime = Field(description="When the check-in was taken, with a time zone "
                                          "(e.g. 2026-11-25T08:00:00Z).")
    checkin_id: str | None = Field(
        default=None, pattern=_ID, max_length=128,
        description="Idempotency key: a retry with the same key returns the stored result.")


class CheckInResult(BaseModel):
    """A recorded check-in and the result weighed with the episode's history."""

    episode_id: str
    seq: int = Field(description="Store-assigned number, increasing as check-ins are recorded.")
    at: datetime
    checkin_id: str | None
    replayed: bool = Field(description="True when this checkin_id was recorded before and "
                                       "this is its stored result.")
    result: TriageResult


class StoredCheckIn(BaseModel):
    """One check-in of an episode, with the result the patient was given."""

    seq: int
    at: datetime
    checkin_id: str | None
    report: SymptomReport
    result: TriageResult


class Episode(BaseModel):
    """An episode's check-ins in time order."""

    episode_id: str
    checkins: list[StoredCheckIn]
    unreadable: int = Field(description="Stored rows that could not be read (skipped).")


class Erasure(BaseModel):
    """A forget whose copies have not all gone yet."""

    erased: int
    pending: str


class _Problem(BaseModel):
    detail: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": _Problem, "description": "The body is not parseable JSON."},
    401: {"model": _Problem, "description": "Missing or wrong credentials."},
    413: {"model": _Problem, "description": "Request body too large."},
    503: {"model": _Problem, "description": "Authentication or the timeline store is not "
                                            "configured, or the store is unavailable."},
}


class TimelineService:
    """The timeline the endpoints use, opened on first use from ``MARROW_TRIAGE_DB``."""

    def __init__(self, factory: Callable[[], Timeline] | None) -> None:
        self._factory = factory
        self._timeline: Timeline | None = None

    @classmethod
    def from_environment(cls, make: Callable[[Store], Timeline]) -> TimelineService:
        """The store named by ``$MARROW_TRIAGE_DB`` (none configured: endpoints answer 503)."""
        url = os.environ.get(DB_ENV)
        if not url:
            return cls(None)
        pool = os.environ.get(DB_POOL_ENV, "10")
        if not pool.isdigit() or not 1 <= int(pool) <= 1000:
            raise ValueError(f"{DB_POOL_ENV}={pool[:20]!r}: give a whole number from 1 to 1000")
        size = int(pool)
        return cls(lambda: make(open_store(url, pool_size=size)))

    def get(self) -> Timeline:
        if self._timeline is None:
            if self._factory is None:
                raise StoreError(f"the timeline store is not configured: set {DB_ENV}")
            self._timeline = self._factory()
        return self._timeline

    def close(self) -> None:
        if self._timeline is not None:
            self._timeline.store.close()


def _unavailable(exc: StoreError) -> JSONResponse:
    # The store's message names the database (never a password) and the reason, no report.
    _log.error("timeline store: %s", exc)
    text = str(exc) if "not configured" in str(exc) else "the timeline store is unavailable"
    return JSONResponse({"detail": text}, status_code=503)


def _invalid(exc: TimelineError) -> RequestValidationError:
    return RequestValidationError([
        {"loc": ["body", p.field] if p.field else ["body"], "msg": p.message,
         "type": "value_error"} for p in exc.problems])


def _stored(checkin: CheckIn) -> StoredCheckIn:
    return StoredCheckIn(seq=checkin.seq, at=checkin.at, checkin_id=checkin.checkin_id,
                         report=checkin.report, result=checkin.result)


def timeline_router(service: TimelineService) -> APIRouter:
    """The ``/v1/episodes`` routes over ``service``'s timeline."""
    router = APIRouter(prefix="/v1/episodes", tags=["timeline"], responses=_ERRORS)

    @router.post("/{episode_id}/checkins", response_model=CheckInResult,
                 responses={409: {"model": _Problem, "description": "checkin_id already "
                                  "recorded with another time or report."}})
    async def record_checkin(episode_id: EpisodeId, body: CheckInRequest, response: Response,
                             accept_language: AcceptLanguage = None) -> Any:
        """Record a check-in and return its result, weighed with the episode's history.

        The result's texts are in the best language of ``Accept-Language`` the rule pack
        has (English otherwise), as for ``/v1/triage``, and stored so; a retry with the
        same ``checkin_id`` returns the stored result in the language it was recorded in.
        ``Content-Language`` names the language of the result returned.

        ``at`` more than the pack's clock-skew allowance past the server's clock, or far
        from every other check-in of the episode, is refused (422, field ``at``).
        """
        try:
            at = check_time(body.at)
            timeline = service.get()
            locale = negotiate_locale(accept_language, timeline.engine.pack.locales)
            recorded = await run_in_threadpool(
                timeline.record_checkin, episode_id, body.report, at,
                checkin_id=body.checkin_id, locale=locale)
        except CheckInConflictError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=409)
        except TimelineError as exc:
            raise _invalid(exc) from None
        except StoreError as exc:
            return _unavailable(exc)
        checkin = recorded.checkin
        response.headers["Content-Language"] = checkin.result.locale
        return CheckInResult(episode_id=episode_id, seq=checkin.seq, at=checkin.at,
                             checkin_id=checkin.checkin_id, replayed=recorded.replayed,
                             result=checkin.result)

    @router.get("/{episode_id}", response_model=Episode,
                responses={404: {"model": _Problem, "description": "No check-ins."}})
    async def read_episode(episode_id: EpisodeId) -> Any:
        """The episode's check-ins in time order, each with the result given at the time."""
        try:
            timeline = service.get()
            checkins = await run_in_threadpool(timeline.history, episode_id)
        except StoreError as exc:
            return _unavailable(exc)
        if not checkins and not checkins.unreadable:
            return JSONResponse({"detail": "no check-ins for this episode"}, status_code=404)
        return Episode(episode_id=episode_id, checkins=[_stored(c) for c in checkins],
                       unreadable=len(checkins.unreadable))

    @router.delete("/{episode_id}", status_code=204, response_class=Response,
                   responses={202: {"model": Erasure, "description": "Erased from the "
                                    "database; copies remain until readers finish."}})
    async def forget_episode(episode_id: EpisodeId) -> Response:
        """Forget the episode: every check-in, and every copy in the store's files (204).

        202 with a body when the database could not yet drop every copy (SQLite: a reader
        keeps the WAL busy); they go when it finishes.
        """
        try:
            timeline = service.get()
            forgotten = await run_in_threadpool(timeline.forget, episode_id)
        except StoreError as exc:
            return _unavailable(exc)
        if forgotten.pending is not None:
            body = Erasure(erased=forgotten.count, pending=forgotten.pending)
            return JSONResponse(body.model_dump(), status_code=202)
        return Response(status_code=204)

    return router
