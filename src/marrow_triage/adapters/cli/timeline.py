"""``marrow-triage timeline``: record, show and forget check-ins of a patient episode.

Exit codes: 0 success, 2 invalid input (one line per problem on stderr, no traceback),
1 for an internal engine or storage failure.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from marrow_triage.adapters.cli.packs import BaseOption, RulesOption, load_engine
from marrow_triage.adapters.cli.report_input import fail, read_report
from marrow_triage.engine.triage import EngineError
from marrow_triage.models import TriageResult
from marrow_triage.timeline.history import describe_time
from marrow_triage.timeline.store import SQLiteStore
from marrow_triage.timeline.timeline import Timeline, TimelineError, check_episode_id, check_time

__all__ = ["timeline_app"]

timeline_app = typer.Typer(
    help=(
        "Follow-up check-ins of a patient episode, weighed with their history and stored "
        "in SQLite.\n\n"
        "Example: marrow-triage timeline record --episode ep-1 --at 2026-11-25T10:00Z "
        "report.json"
    ),
    no_args_is_help=True,
)

Episode = Annotated[str, typer.Option("--episode", help="Episode id (letters, digits, ._:@-).")]
Db = Annotated[Path, typer.Option("--db", help="SQLite file holding the timeline.",
                                  dir_okay=False)]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
DEFAULT_DB = Path("marrow-timeline.db")


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


@contextmanager
def _open(db: Path, rules: Path | None = None, base: Path | None = None) -> Iterator[Timeline]:
    """The timeline in ``db`` weighed with the pack asked for, closed when done."""
    engine = load_engine(rules, base) if rules is not None else None
    try:
        store = SQLiteStore(db)
    except sqlite3.Error as exc:
        fail([f"--db {db}: cannot open: {exc}"])
    try:
        yield Timeline(store, engine)
    finally:
        store.close()


def _result_lines(result: TriageResult) -> list[str]:
    lines = [f"{result.level.value.upper()}: {result.action}", result.summary]
    for finding in result.findings:
        lines.append(f"  - [{finding.level.value}] {finding.rule_id}: {finding.explanation}")
    return lines


@timeline_app.command()
def record(
    file: Annotated[str, typer.Argument(help="Report JSON file, or - for standard input.",
                                        metavar="FILE|-")],
    episode: Episode,
    at: Annotated[str, typer.Option("--at", help="When the check-in was taken (ISO 8601, "
                                                "with a time zone).")],
    db: Db = DEFAULT_DB,
    as_json: AsJson = False,
    rules: RulesOption = None,
    base: BaseOption = None,
) -> None:
    """Record a check-in and print its result, weighed with the episode's history.

    --rules takes a full pack or a site overlay, as for ``check``.
    """
    episode_id = _episode(episode)
    when = _time(at, "--at")
    report = read_report(file)
    if base is not None and rules is None:
        fail(["--base: give --rules OVERLAY as well; --base names the pack it extends"])
    with _open(db, rules, base) as timeline:
        try:
            result = timeline.record(episode_id, report, when)
        except EngineError as exc:
            fail([f"internal error: {exc}"], 1)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
    else:
        typer.echo("\n".join(_result_lines(result)))


@timeline_app.command()
def show(episode: Episode, db: Db = DEFAULT_DB, as_json: AsJson = False) -> None:
    """Print the episode's check-ins in time order with the level given at each."""
    episode_id = _episode(episode)
    with _open(db) as timeline:
        checkins = timeline.history(episode_id)
    if as_json:
        typer.echo(json.dumps([
            {"at": c.at.isoformat(), "seq": c.seq,
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
    """Erase every check-in of the episode."""
    episode_id = _episode(episode)
    with _open(db) as timeline:
        count = timeline.forget(episode_id)
    typer.echo(f"Erased {count} check-in(s) of episode {episode_id}.")


@timeline_app.command()
def overdue(
    every_hours: Annotated[float, typer.Option("--every-hours", min=0.01,
                                               help="Hours between expected check-ins.")],
    now: Annotated[str, typer.Option("--now", help="The current time (ISO 8601).")],
    db: Db = DEFAULT_DB,
) -> None:
    """List episodes whose next check-in is overdue."""
    when = _time(now, "--now")
    with _open(db) as timeline:
        late = timeline.overdue(when, every_hours)
    for item in late:
        typer.echo(f"{item.episode_id}: last check-in {describe_time(item.last_at)}, "
                   f"due {describe_time(item.due_at)}")
    if not late:
        typer.echo("No check-in is overdue.")
