"""``marrow-triage timeline``: record, show, forget and expire check-ins of patient episodes.

Exit codes: 0 success, 2 invalid input or a missing database (only ``record`` creates
one; one line per problem on stderr, no traceback), 1 for an internal engine or storage
failure.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

import typer

from marrow_triage.adapters.cli.packs import (
    BaseOption,
    LocaleOption,
    RulesOption,
    load_engine,
    pick_locale,
)
from marrow_triage.adapters.cli.report_input import fail, read_report
from marrow_triage.engine.triage import TriageEngine, default_engine
from marrow_triage.errors import EngineError, StoreError, TimelineError
from marrow_triage.models import TriageResult
from marrow_triage.timeline.history import describe_time
from marrow_triage.timeline.store import Unreadable, open_store
from marrow_triage.timeline.timeline import (
    MAX_EVERY_HOURS,
    Timeline,
    check_checkin_id,
    check_episode_id,
    check_time,
)

__all__ = ["DB_ENV", "timeline_app"]

DB_ENV = "MARROW_TRIAGE_DB"

timeline_app = typer.Typer(
    help=(
        "Follow-up check-ins of a patient episode, weighed with their history and stored "
        "in SQLite (one node) or PostgreSQL (several).\n\n"
        "Example: marrow-triage timeline record --episode ep-1 --at 2026-11-25T10:00Z "
        "report.json"
    ),
    no_args_is_help=True,
)

Episode = Annotated[str, typer.Option("--episode", help="Episode id (letters, digits, ._:@-).")]
Db = Annotated[str, typer.Option(
    "--db", envvar=DB_ENV, show_envvar=True,
    help="Where the timeline is: a SQLite file path, sqlite:///path.db, or "
         "postgresql://user@host/db (needs the [postgres] extra).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Now = Annotated[str | None, typer.Option(
    "--now", help="The current time (ISO 8601 with a zone); default: this machine's clock.")]
DEFAULT_DB = "marrow-timeline.db"
MAX_BATCH = 100_000


def _episode(value: str) -> str:
    try:
        return check_episode_id(value)
    except TimelineError as exc:
        fail([f"--episode: {exc}"])


def _time(value: str, option: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail([f"{option}: {value!r} is not an ISO 8601 time, e.g. 2026-11-25T10:00:00+00:00"])
    try:
        return check_time(parsed, option)
    except TimelineError as exc:
        fail([str(exc)])


def _now(value: str | None) -> datetime:
    return datetime.now(UTC) if value is None else _time(value, "--now")


def _number(text: str, option: str, low: float, high: float, *, whole: bool = False) -> float:
    """``text`` as a number within (low, high] (a whole one within [low, high] if ``whole``);
    else a one-line error, exit 2. Parsed here, not by click, for that one line."""
    kind = "whole number" if whole else "number"
    try:
        value = float(int(text)) if whole else float(text)
    except ValueError:
        value = math.nan
    inside = low <= value <= high if whole else low < value <= high
    if not (math.isfinite(value) and inside):
        bounds = f"from {low:g} to {high:g}" if whole else f"above {low:g} and at most {high:g}"
        fail([f"{option}: {text[:40]!r} is not valid: give a {kind} {bounds}"])
    return value


def _warn(unreadable: Iterable[Unreadable]) -> None:
    for item in unreadable:
        typer.echo(f"warning: {item}; skipped", err=True)


@contextmanager
def _open(db: str, engine: TriageEngine | None = None, *,
          create: bool = False) -> Iterator[Timeline]:
    """The timeline in ``db`` weighed with ``engine``'s pack (the packaged one by
    default), closed when done.

    Only ``record`` creates a missing database: for the others a mistyped path is an
    error (exit 2), not an empty timeline left behind on disk.
    """
    try:
        store = open_store(db, create=create)
    except StoreError as exc:
        fail([f"--db: {p}" for p in exc.problems])
    try:
        yield Timeline(store, engine)
    except StoreError as exc:
        fail([f"--db: {p}" for p in exc.problems], 1)
    finally:
        store.close()


def _result_lines(result: TriageResult) -> list[str]:
    # The level's label in the result's language, as `check` shows it; the level and rule
    # ids in brackets stay the same in every language.
    label = result.level_label or result.level.value
    lines = [f"{label.upper()}: {result.action}", result.summary]
    for finding in result.findings:
        lines.append(f"  - [{finding.level.value}] {finding.rule_id}: {finding.explanation}")
    if result.fallbacks:
        lines.append(f"Shown in English (no {result.locale} text in the pack): "
                     f"{', '.join(result.fallbacks)}")
    return lines


@timeline_app.command()
def record(
    file: Annotated[str, typer.Argument(help="Report JSON file, or - for standard input.",
                                        metavar="FILE|-")],
    episode: Episode,
    at: Annotated[str, typer.Option("--at", help="When the check-in was taken (ISO 8601, "
                                                "with a time zone).")],
    db: Db = DEFAULT_DB,
    checkin_id: Annotated[str | None, typer.Option(
        "--checkin-id", help="Idempotency key: recording it again returns the stored "
                             "result instead of recording twice.")] = None,
    now: Now = None,
    as_json: AsJson = False,
    rules: RulesOption = None,
    base: BaseOption = None,
    locale: LocaleOption = None,
) -> None:
    """Record a check-in and print its result, weighed with the episode's history.

    --rules takes a full pack or a site overlay, and --locale a language of its texts, as
    for ``check``. A time more than a few minutes past the clock, or far from every other
    check-in of the episode, is refused (the limits are the pack's history settings). A
    check-in recorded again with the same --checkin-id prints its stored result, in the
    language it was recorded in.

    Example: marrow-triage timeline record --episode ep-1 --at 2026-11-25T10:00Z
    --locale es report.json
    """
    episode_id = _episode(episode)
    when = _time(at, "--at")
    clock = _now(now)
    if checkin_id is not None:
        try:
            check_checkin_id(checkin_id)
        except TimelineError as exc:
            fail([f"--checkin-id: {exc}"])
    report = read_report(file)
    if base is not None and rules is None:
        fail(["--base: give --rules OVERLAY as well; --base names the pack it extends"])
    engine = load_engine(rules, base) if rules is not None else default_engine()
    chosen = pick_locale(engine, locale)  # before the database is opened or created
    with _open(db, engine, create=True) as timeline:
        try:
            recorded = timeline.record_checkin(episode_id, report, when,
                                               checkin_id=checkin_id, now=clock,
                                               locale=chosen)
        except TimelineError as exc:
            fail([f"--{p.field.replace('_', '-')}: {p.message}" if p.field else p.message
                  for p in exc.problems])
        except EngineError as exc:
            fail([f"internal error: {exc}"], 1)
    _warn(recorded.unreadable)
    result = recorded.checkin.result
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
    else:
        if recorded.replayed:
            typer.echo(f"(check-in {checkin_id} was already recorded: its stored result)")
        typer.echo("\n".join(_result_lines(result)))


@timeline_app.command()
def show(episode: Episode, db: Db = DEFAULT_DB, as_json: AsJson = False) -> None:
    """Print the episode's check-ins in time order with the level given at each."""
    episode_id = _episode(episode)
    with _open(db) as timeline:
        checkins = timeline.history(episode_id)
    _warn(checkins.unreadable)
    if as_json:
        typer.echo(json.dumps([
            {"at": c.at.isoformat(), "seq": c.seq, "checkin_id": c.checkin_id,
             "report": c.report.model_dump(mode="json", exclude_none=True),
             "result": c.result.model_dump(mode="json")} for c in checkins
        ], indent=2, ensure_ascii=False))
        return
    if not checkins:
        typer.echo(f"No check-ins for episode {episode_id}.")
        return
    typer.echo(f"Episode {episode_id}: {len(checkins)} check-in(s)")
    for checkin in checkins:
        hours = checkin.report.hours_since_procedure
        typer.echo(f"{describe_time(checkin.at)}  {checkin.result.level.value:<9}  "
                   f"{hours:g} h after the procedure")
        typer.echo(f"    {checkin.result.summary}")


@timeline_app.command()
def forget(episode: Episode, db: Db = DEFAULT_DB) -> None:
    """Erase every check-in of the episode, and every copy in the database's files."""
    episode_id = _episode(episode)
    with _open(db) as timeline:
        forgotten = timeline.forget(episode_id)
    typer.echo(f"Episode {episode_id}: {forgotten}.")


@timeline_app.command()
def expire(
    before: Annotated[str, typer.Option(
        "--before", help="Erase episodes whose latest check-in is before this time "
                         "(ISO 8601 with a zone).")],
    db: Db = DEFAULT_DB,
    batch: Annotated[str, typer.Option(
        "--batch", help=f"Episodes erased per transaction (1 to {MAX_BATCH}): other "
                        "writers wait for at most one batch.")] = "500",
) -> None:
    """Erase expired episodes in bounded batches (run it from cron: retention)."""
    cutoff = _time(before, "--before")
    size = int(_number(batch, "--batch", 1, MAX_BATCH, whole=True))
    with _open(db) as timeline:
        erased = timeline.expire_before(cutoff, batch=size)
    typer.echo(f"Erased {len(erased)} episode(s) whose latest check-in was before "
               f"{describe_time(cutoff)}.")


@timeline_app.command()
def overdue(
    every_hours: Annotated[str, typer.Option(
        "--every-hours", help=f"Hours between expected check-ins (above 0, at most "
                              f"{MAX_EVERY_HOURS}).")],
    now: Now = None,
    db: Db = DEFAULT_DB,
) -> None:
    """List episodes whose next check-in is overdue."""
    hours = _number(every_hours, "--every-hours", 0, MAX_EVERY_HOURS)
    when = _now(now)
    with _open(db) as timeline:
        late = timeline.overdue(when, hours)
    _warn(late.unreadable)
    for item in late:
        typer.echo(f"{item.episode_id}: last check-in {describe_time(item.last_at)}, "
                   f"due {describe_time(item.due_at)}")
    if not late:
        typer.echo("No check-in is overdue.")
