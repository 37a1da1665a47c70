"""The ``marrow-triage`` command line: triage a report, check and document a rule pack.

Exit codes: 0 success, 2 invalid input or invalid rule pack (one line per problem on
stderr, never a traceback; with ``check --ndjson``: any line that could not be triaged),
1 for an internal engine failure.
"""

from __future__ import annotations

import enum
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from marrow_triage._version import __version__
from marrow_triage.adapters.cli.change import rules_diff, rules_release, rules_trace
from marrow_triage.adapters.cli.files import write_atomic
from marrow_triage.adapters.cli.ndjson import triage_lines
from marrow_triage.adapters.cli.packs import (
    BaseOption,
    LocaleOption,
    RulesOption,
    load_engine,
    load_pack,
    pick_locale,
)
from marrow_triage.adapters.cli.report_input import (
    MAX_ERROR_LINES,
    fail,
    problem_lines,
    read_report,
    validation_lines,
)
from marrow_triage.adapters.cli.timeline import timeline_app
from marrow_triage.engine.triage import EngineError, TriageEngine, compile_everything
from marrow_triage.errors import InstallError, RulePackError, StoreError
from marrow_triage.models import SymptomReport, TriageResult, Urgency
from marrow_triage.pack.catalogue import render_catalogue
from marrow_triage.pack.loader import default_rules_path
from marrow_triage.pack.spec import RulePack
from marrow_triage.pack.versions import check_versions
from marrow_triage.timeline.store import open_store
from marrow_triage.timeline.timeline import Timeline

__all__ = ["app", "main", "validation_lines"]

app = typer.Typer(
    name="marrow-triage",
    help=(
        "Explained urgency triage of symptoms reported after a bone marrow aspiration "
        "or biopsy. It supports, and does not replace, clinical judgement.\n\n"
        "Example: marrow-triage check examples/fever-101F.json"
    ),
    no_args_is_help=True,
    add_completion=False,
    # A traceback with locals could print a patient's report: never show one.
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
)
rules_app = typer.Typer(
    help=(
        "Validate a rule pack and generate its catalogue.\n\n"
        "Example: marrow-triage rules check rules/"
    ),
    no_args_is_help=True,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"marrow-triage {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the version of marrow-triage and exit.")] = False,
) -> None:
    pass


app.add_typer(rules_app, name="rules")
rules_app.command("diff")(rules_diff)
rules_app.command("release")(rules_release)
rules_app.command("trace")(rules_trace)
app.add_typer(timeline_app, name="timeline")

_STYLES = {
    Urgency.EMERGENCY: "bold white on red",
    Urgency.URGENT: "bold red",
    Urgency.SOON: "bold yellow",
    Urgency.SELF_CARE: "bold green",
}


@app.command()
def check(
    file: Annotated[
        str, typer.Argument(help="Report JSON file, or - to read standard input.", metavar="FILE|-")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print only the result as JSON (machine-readable).")
    ] = False,
    ndjson: Annotated[
        bool, typer.Option(
            "--ndjson",
            help="FILE holds one report per line (NDJSON): write one result per line, in "
                 "order, and for a line that cannot be triaged an error line with its line "
                 "number and problems, without stopping. Exit status 2 if any line failed.")
    ] = False,
    jobs: Annotated[
        int | None, typer.Option(
            "--jobs", min=1,
            help="With --ndjson: worker processes triaging chunks of lines (default: one "
                 "per CPU this process may use, at most 8; 1: all in this process). The "
                 "output is the same whatever the number.")
    ] = None,
    rules: RulesOption = None,
    base: BaseOption = None,
    locale: LocaleOption = None,
) -> None:
    """Triage one symptom report and explain the result.

    Example: marrow-triage check examples/fever-101F.json

    Example: echo '{"hours_since_procedure": 20}' | marrow-triage check - --json

    Example: marrow-triage check --rules examples/overlays/uk-site --locale es report.json
    Example: marrow-triage check --ndjson examples/nurse-line-calls.ndjson > results.ndjson
    """
    if ndjson:
        engine = load_engine(rules, base)
        _check_ndjson(file, engine, pick_locale(engine, locale),
                      jobs if jobs is not None else _usable_cpus())
        return
    report = read_report(file)
    engine = load_engine(rules, base)
    chosen = pick_locale(engine, locale)
    try:
        result = engine.triage(report, chosen)
    except EngineError as exc:
        fail([f"internal error: {exc}"], code=1)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    print_result(result, Console(highlight=False))


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity, where the OS says), at most 8."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every OS
        count = os.cpu_count() or 1
    return max(1, min(count, 8))


def _check_ndjson(file: str, engine: TriageEngine, locale: str | None, jobs: int) -> None:
    """``check --ndjson``: exit 0 when every line was triaged, 2 when any was not."""
    try:
        source: BinaryIO = sys.stdin.buffer if file == "-" else open(file, "rb")  # noqa: SIM115
    except OSError as exc:
        fail([f"{file}: cannot read: {exc.strerror or exc}"])
    total = None if file == "-" else os.fstat(source.fileno()).st_size
    with source, _progress(total) as progress:
        try:
            summary = triage_lines(engine, source, sys.stdout.write, progress, locale, jobs)
        except EngineError as exc:
            fail([f"internal error: {exc}"], code=1)
        except OSError as exc:
            fail([f"{file}: cannot read: {exc.strerror or exc}"])
    sys.stdout.flush()
    if summary.failed:
        shown = ", ".join(map(str, summary.failed[:MAX_ERROR_LINES]))
        more = f" and {len(summary.failed) - MAX_ERROR_LINES} more" if (
            len(summary.failed) > MAX_ERROR_LINES) else ""
        word = "line" if len(summary.failed) == 1 else "lines"
        fail([f"{len(summary.failed)} of {summary.lines} line(s) could not be triaged "
              f"({word} {shown}{more}): see their error lines in the output"])


@contextmanager
def _progress(total_bytes: int | None) -> Iterator[Callable[[int, int], None] | None]:
    """Progress on stderr while a long input is triaged; none unless stderr is a terminal
    (a nurse line's log file must not fill with redraws)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import (  # only here: it would slow every command's start
        BarColumn,
        Progress,
        ProgressColumn,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    columns: list[ProgressColumn] = [SpinnerColumn(), TextColumn("{task.description}")]
    if total_bytes:
        columns += [BarColumn(), TaskProgressColumn(), TimeRemainingColumn()]
    # redirect_stdout=False: results go to stdout as they are, not through the progress display.
    # auto_refresh=False: redrawn after each chunk, with no refresh thread running when
    # worker processes are forked.
    with Progress(*columns, console=Console(stderr=True), transient=True, auto_refresh=False,
                  redirect_stdout=False, redirect_stderr=False) as bar:
        task = bar.add_task("triaging", total=total_bytes or None)

        def update(lines: int, done_bytes: int) -> None:
            bar.update(task, completed=done_bytes, description=f"{lines:,} line(s) triaged")
            bar.refresh()

        yield update


def print_result(result: TriageResult, console: Console) -> None:
    """Write a readable result: level banner, action, findings with sources, advice."""
    style = _STYLES[result.level]
    console.print(
        Panel(Text(f"{(result.level_label or result.level.label).upper()}: {result.action}",
                   style=style), style=style)
    )
    console.print(result.summary)
    if result.findings:
        console.print()
        console.print(Text("Findings", style="bold underline"))
        for finding in result.findings:
            console.print(
                Text.assemble(
                    ("- ", ""), (finding.level.label, _STYLES[finding.level]),
                    (f" [{finding.rule_id}] ", "dim"), (finding.explanation, ""),
                )
            )
            src = finding.source
            kind = "" if src.verbatim else " (paraphrased)"
            console.print(
                Text(f'    Source: {src.title}, "{src.section}"{kind}: "{src.quote}"', style="dim")
            )
            for reason in finding.acknowledged_downgrades:
                console.print(Text(f"    Site policy, less cautious than the base pack: {reason}",
                                   style="yellow"))
    for title, items in (("Advice", result.advice), ("Reassurance", result.reassurance)):
        if items:
            console.print()
            console.print(Text(title, style="bold underline"))
            for item in items:
                console.print(Text(f"- {item}"))
    if result.questions:
        console.print()
        console.print(Text("Questions still to answer", style="bold underline"))
        for question in result.questions:
            console.print(Text(f"- {question.text} ({question.field})"))
    if result.fallbacks:
        console.print()
        console.print(Text(f"Shown in English (no {result.locale} text in the pack): "
                           f"{', '.join(result.fallbacks)}", style="dim"))
    console.print()
    info = result.ruleset
    chain = " on ".join(f"{ref.name} {ref.version}" for ref in reversed(info.chain[:-1]))
    console.print(
        Text(f"Rule pack {info.name} {info.version}{f' on {chain}' if chain else ''} "
             f"(sha256 {info.sha256[:12]}). "
             "This supports, and does not replace, clinical judgement.", style="dim")
    )


@rules_app.command("check")
def rules_check(
    directory: Annotated[Path, typer.Argument(help="Directory holding pack.yaml and rule "
                                              "files: a full pack or an overlay.")],
    base: BaseOption = None,
) -> None:
    """Validate a rule pack or overlay: every problem with its file, rule id and field.

    Also lists, per locale, the texts not yet translated (shown in English until they are),
    and checks the version history (changes: in pack.yaml): the current version must be
    recorded (marrow-triage rules release --record DIR), the content must be what was
    recorded for it, and a version that lowers a level must be a new major one. Exit 2: the
    pack does not load; 1: it loads but its version record fails.

    Example: marrow-triage rules check rules/

    Example: marrow-triage rules check examples/overlays/uk-site
    """
    try:
        pack = RulePack.from_path(directory, base=base)
        compile_everything(pack)  # what durable_rules refuses only shows when compiled
    except RulePackError as exc:
        fail(problem_lines(exc.problems))
    version_problems = check_versions(
        pack, str(directory) if base is None else f"{directory} --base {base}")
    if version_problems:  # the pack loads: a failed release check (1), not bad input (2)
        fail(problem_lines(version_problems, label=f"{directory.name}/"), code=1)
    chain = " on ".join(f"{ref.name} {ref.version}" for ref in reversed(pack.chain[:-1]))
    # Past the check, the version is recorded; an overlay's record is of its own files.
    recorded = " (recorded)" if len(pack.chain) < 2 else \
        f" (merged; its own files {pack.chain[-1].sha256}, recorded)"
    typer.echo(
        f"OK: {pack.name} {pack.version}{f' on {chain}' if chain else ''}, "
        f"{len(pack.rules)} rules, {len(pack.questions)} questions, sha256 {pack.sha256}"
        f"{recorded}"
    )
    for code, translation in pack.translations.items():
        if translation.missing:
            typer.echo(f"locale {code}: {len(translation.missing)} text(s) not translated "
                       "(shown in English):")
            for key in translation.missing:
                typer.echo(f"  {key}")
        else:
            typer.echo(f"locale {code}: every text translated")
        for line in translation.unused:
            typer.echo(f"warning: {line} (never shown)")


@rules_app.command("docs")
def rules_docs(
    output: Annotated[
        str, typer.Option("--output", "-o", help="Where to write the catalogue; - for stdout.")
    ] = "docs/rules.md",
    rules: RulesOption = None,
    base: BaseOption = None,
) -> None:
    """Write the rule catalogue (Markdown) generated from a rule pack.

    For an overlay, the catalogue is of the merged pack, marking what the overlay changed.

    Example: marrow-triage rules docs --output docs/rules.md

    Example: marrow-triage rules docs --rules examples/overlays/uk-site -o uk-site.md
    """
    pack = load_pack(rules, base)
    text = render_catalogue(pack)
    if output == "-":
        sys.stdout.write(text)
        return
    target = Path(output)
    try:
        write_atomic(target, text)
    except OSError as exc:
        fail([f"{output}: cannot write: {exc.strerror or exc}"])
    typer.echo(f"wrote {target} ({len(pack.rules)} rules)", err=True)


@rules_app.command("export")
def rules_export(
    directory: Annotated[Path, typer.Argument(help="Where to write the packaged pack; must "
                                              "not exist yet, or be empty.",
                                              file_okay=False)],
) -> None:
    """Write the packaged rule pack out, to read it or to start an overlay against it.

    Example: marrow-triage rules export marrow-aftercare-pack/
    """
    source = default_rules_path()
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        fail([f"{directory}: exists and is not an empty directory; nothing was written"])
    files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml"))
    try:  # written whole or not at all: staged beside the target, then renamed
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    except OSError as exc:
        fail([f"{directory}: cannot write: {exc.strerror or exc}"])
    try:
        for file in files:
            target = staging / file.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file.read_bytes())
        if directory.exists():
            directory.rmdir()
        os.replace(staging, directory)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        fail([f"{directory}: cannot write: {exc.strerror or exc}"])
    pack = RulePack.default()
    typer.echo(f"wrote {pack.name} {pack.version} ({len(files)} files, sha256 {pack.sha256}) "
               f"to {directory}", err=True)


class SchemaName(enum.StrEnum):
    """Which JSON Schema to print."""

    report = "report"
    result = "result"


@app.command()
def schema(
    name: Annotated[SchemaName, typer.Argument(help="report (the input) or result (the output).")],
) -> None:
    """Print the JSON Schema of a report or of a result.

    Example: marrow-triage schema report > report.schema.json
    """
    model = SymptomReport if name is SchemaName.report else TriageResult
    typer.echo(json.dumps(model.model_json_schema(), indent=2, sort_keys=True))


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Interface to bind; loopback unless you mean to expose it.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=0, max=65535)] = 8000,
    rules: RulesOption = None,
    request_timeout: Annotated[float, typer.Option(
        help="Seconds a client has to send a whole request (headers and body).",
        min=0.1, max=600)] = 10.0,
    max_connections: Annotated[int, typer.Option(
        help="Open connections at most; more are answered 503 and closed.",
        min=1, max=100_000)] = 200,
    forwarded_allow_ips: Annotated[str | None, typer.Option(
        help="Proxies (comma-separated addresses) whose X-Forwarded-* headers are "
             "believed; by default nobody's.",
        envvar="MARROW_TRIAGE_FORWARDED_ALLOW_IPS")] = None,
    base: BaseOption = None,
    db: Annotated[str | None, typer.Option(
        "--db", envvar="MARROW_TRIAGE_DB", show_envvar=True,
        help="The timeline store behind /v1/episodes: a SQLite path or sqlite:///path.db "
             "(one node), postgresql://... (several replicas). Unset: those answer 503.")] = None,
    db_pool_size: Annotated[int, typer.Option(
        "--db-pool-size", envvar="MARROW_TRIAGE_DB_POOL_SIZE",
        help="PostgreSQL connections per process.", min=1, max=1000)] = 10,
) -> None:
    """Run the HTTP service (needs the "service" extra).

    /v1 needs the bearer token in MARROW_TRIAGE_API_TOKEN (32 characters or more); CDS
    Hooks clients are read from the JSON file named by MARROW_TRIAGE_CDS_CLIENTS, and
    the service's public URL from MARROW_TRIAGE_PUBLIC_URL.

    Example: marrow-triage serve --port 8000   (after export MARROW_TRIAGE_API_TOKEN=...)
    """
    try:
        import uvicorn

        from marrow_triage.adapters.service.app import create_app
        from marrow_triage.adapters.service.server import server_config
    except InstallError as exc:
        fail([str(exc)])
    except ImportError as exc:  # uvicorn itself: one line naming the extra, no traceback
        fail([str(InstallError.missing_extra("marrow-triage serve", "service", exc))])
    if host not in ("127.0.0.1", "::1", "localhost"):
        typer.echo(f"warning: listening on {host}, beyond this machine; reports are health "
                   "data: put TLS in front of the service", err=True)
    engine = load_engine(rules, base)
    timeline = None
    if db:  # opened now, so a wrong URL or a database that is down stops the start
        try:
            timeline = Timeline(open_store(db, pool_size=db_pool_size), engine)
        except StoreError as exc:
            fail([f"--db: {p}" for p in exc.problems])
    try:
        application = create_app(engine, timeline=timeline)
    except ValueError as exc:
        fail([f"configuration: {exc}"])
    if application.state.problems:  # it would start, and refuse every /v1 call
        fail([f"configuration: {problem}" for problem in application.state.problems])
    config = server_config(application, host=host, port=port, request_timeout=request_timeout,
                           max_connections=max_connections,
                           forwarded_allow_ips=forwarded_allow_ips)
    uvicorn.Server(config).run()


def main() -> None:
    """Entry point of the ``marrow-triage`` script."""
    app()
