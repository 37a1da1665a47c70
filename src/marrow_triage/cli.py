"""The ``marrow-triage`` command line: triage a report, check and document a rule pack.

Exit codes: 0 success, 2 invalid input or invalid rule pack (one line per problem on
stderr, never a traceback), 1 for an internal engine failure.
"""

from __future__ import annotations

import enum
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from .catalogue import render_catalogue
from .conditions import suggest
from .engine import EngineError, TriageEngine
from .models import SymptomReport, Temperature, TriageResult, Urgency
from .rules import RulePack, RulePackError
from .timeline.cli import timeline_app

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
app.add_typer(rules_app, name="rules")
app.add_typer(timeline_app, name="timeline")

_STYLES = {
    Urgency.EMERGENCY: "bold white on red",
    Urgency.URGENT: "bold red",
    Urgency.SOON: "bold yellow",
    Urgency.SELF_CARE: "bold green",
}


MAX_ERROR_LINES = 10


def validation_lines(exc: ValidationError, prefix: str = "") -> list[str]:
    """One ``field.path: message`` line per problem in a pydantic validation error.

    Unknown fields get a "did you mean" suggestion; odd keys (empty, spaces, control
    characters) are shown quoted; after ``MAX_ERROR_LINES`` the rest are counted.
    """
    lines = []
    head = tuple(prefix.split(".")) if prefix else ()
    for error in exc.errors(include_url=False, include_input=False):
        loc = ".".join(_shorten(part) if isinstance(part, str) else str(part)
                       for part in (*head, *error["loc"]))
        message = error["msg"]
        if error["type"] == "extra_forbidden" and error["loc"]:
            known = _known_fields(error["loc"][:-1])
            message += suggest(str(error["loc"][-1]), known)
        lines.append(f"{loc or 'input'}: {message}")
    if len(lines) > MAX_ERROR_LINES:
        rest = len(lines) - MAX_ERROR_LINES
        lines = [*lines[:MAX_ERROR_LINES], f"... and {rest} more problem(s)"]
    return lines


def _known_fields(parent: tuple[int | str, ...]) -> tuple[str, ...]:
    if not parent:
        return tuple(SymptomReport.model_fields)
    if parent == ("temperature",):
        return tuple(Temperature.model_fields)
    return ()


def _shorten(name: str, limit: int = 60) -> str:
    """A field name as shown in an error: quoted when odd, cut when long."""
    if len(name) > limit:
        name = f"{name[:limit]}… ({len(name)} characters)"
    if not name.isidentifier():
        name = json.dumps(name, ensure_ascii=True)
    return name


def _fail(lines: list[str], code: int = 2) -> NoReturn:
    for line in lines:
        typer.echo(line, err=True)
    raise typer.Exit(code)


def _engine(rules: Path | None) -> TriageEngine:
    try:
        pack = RulePack.default() if rules is None else RulePack.from_path(rules)
    except RulePackError as exc:
        _fail([f"rule pack: {p}" for p in exc.problems])
    return TriageEngine(pack)


def _read_input(source: str) -> bytes:
    try:
        if source == "-":
            return sys.stdin.buffer.read()
        return Path(source).read_bytes()
    except OSError as exc:
        _fail([f"{source}: cannot read: {exc.strerror or exc}"])


def parse_report(data: bytes) -> SymptomReport:
    """Validate report JSON bytes; exits 2 with one line per bad field when invalid."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        _fail([f"input: not UTF-8 text (byte {exc.start}: {exc.reason})"])
    try:
        return SymptomReport.model_validate_json(text)
    except ValidationError as exc:
        _fail(validation_lines(exc))


RulesOption = Annotated[
    Path | None,
    typer.Option(
        "--rules",
        help="Directory of another rule pack (default: the packaged pack).",
        file_okay=False,
        dir_okay=True,
    ),
]


@app.command()
def check(
    file: Annotated[
        str, typer.Argument(help="Report JSON file, or - to read standard input.", metavar="FILE|-")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print only the result as JSON (machine-readable).")
    ] = False,
    rules: RulesOption = None,
) -> None:
    """Triage one symptom report and explain the result.

    Example: marrow-triage check examples/fever-101F.json

    Example: echo '{"hours_since_procedure": 20}' | marrow-triage check - --json
    """
    report = parse_report(_read_input(file))
    engine = _engine(rules)
    try:
        result = engine.triage(report)
    except EngineError as exc:
        _fail([f"internal error: {exc}"], code=1)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    print_result(result, Console(highlight=False))


def print_result(result: TriageResult, console: Console) -> None:
    """Write a readable result: level banner, action, findings with sources, advice."""
    style = _STYLES[result.level]
    console.print(
        Panel(Text(f"{result.level.label.upper()}: {result.action}", style=style), style=style)
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
    console.print()
    info = result.ruleset
    console.print(
        Text(f"Rule pack {info.name} {info.version} (sha256 {info.sha256[:12]}). "
             "This supports, and does not replace, clinical judgement.", style="dim")
    )


@rules_app.command("check")
def rules_check(
    directory: Annotated[Path, typer.Argument(help="Directory holding pack.yaml and rule files.")],
) -> None:
    """Validate a rule pack: every problem with its file, rule id and field.

    Example: marrow-triage rules check rules/
    """
    try:
        pack = RulePack.from_path(directory)
        TriageEngine(pack)  # compiles into durable_rules definitions as well
    except RulePackError as exc:
        _fail([str(p) for p in exc.problems])
    typer.echo(
        f"OK: {pack.name} {pack.version}, {len(pack.rules)} rules, "
        f"{len(pack.questions)} questions, sha256 {pack.sha256}"
    )


@rules_app.command("docs")
def rules_docs(
    output: Annotated[
        str, typer.Option("--output", "-o", help="Where to write the catalogue; - for stdout.")
    ] = "docs/rules.md",
    rules: RulesOption = None,
) -> None:
    """Write the rule catalogue (Markdown) generated from a rule pack.

    Example: marrow-triage rules docs --output docs/rules.md
    """
    try:
        pack = RulePack.default() if rules is None else RulePack.from_path(rules)
    except RulePackError as exc:
        _fail([f"rule pack: {p}" for p in exc.problems])
    text = render_catalogue(pack)
    if output == "-":
        sys.stdout.write(text)
        return
    target = Path(output)
    try:
        _write_atomic(target, text)
    except OSError as exc:
        _fail([f"{output}: cannot write: {exc.strerror or exc}"])
    typer.echo(f"wrote {target} ({len(pack.rules)} rules)", err=True)


def _write_atomic(target: Path, text: str) -> None:
    """Write whole or not at all: a temporary file renamed over the target."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
) -> None:
    """Run the HTTP service (needs the "service" extra).

    /v1 needs the bearer token in MARROW_TRIAGE_API_TOKEN; CDS Hooks clients are read from
    the JSON file named by MARROW_TRIAGE_CDS_CLIENTS.

    Example: marrow-triage serve --port 8000   (after export MARROW_TRIAGE_API_TOKEN=...)
    """
    try:
        import uvicorn

        from .service import create_app
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        _fail([f"the service needs the [service] extra: {exc}"])
    if host not in ("127.0.0.1", "::1", "localhost"):
        typer.echo(f"warning: listening on {host}, beyond this machine; reports are health "
                   "data: put TLS in front of the service", err=True)
    engine = _engine(rules)
    try:
        application = create_app(engine)
    except ValueError as exc:
        _fail([f"configuration: {exc}"])
    uvicorn.run(application, host=host, port=port, log_level="info")


def main() -> None:
    """Entry point of the ``marrow-triage`` script."""
    app()
