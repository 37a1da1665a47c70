"""Reading a report for the command line: one clear line per problem, exit code 2.

Shared by ``marrow-triage check`` and ``marrow-triage timeline record``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NoReturn

import typer
from pydantic import ValidationError

from marrow_triage.errors import MAX_LISTED_PROBLEMS
from marrow_triage.models import SymptomReport, Temperature, listed_errors
from marrow_triage.pack.conditions import suggest

__all__ = ["MAX_ERROR_LINES", "fail", "parse_report", "read_input", "read_report",
           "validation_lines"]

MAX_ERROR_LINES = MAX_LISTED_PROBLEMS


def validation_lines(exc: ValidationError, prefix: str = "") -> list[str]:
    """One ``field.path: message`` line per problem in a pydantic validation error.

    Unknown fields get a "did you mean" suggestion; odd keys (empty, spaces, control
    characters) are shown quoted; after ``MAX_ERROR_LINES`` the rest are counted.
    """
    lines = []
    head = tuple(prefix.split(".")) if prefix else ()
    # Suggestions are computed for the listed errors only: one per key of 50,000
    # unknown keys took 3.5 s.
    listed, rest = listed_errors(exc.errors(include_url=False, include_input=False),
                                 MAX_ERROR_LINES)
    for error in listed:
        loc = ".".join(_shorten(part) if isinstance(part, str) else str(part)
                       for part in (*head, *error["loc"]))
        message = error["msg"]
        if error["type"] == "extra_forbidden" and error["loc"]:
            known = _known_fields(tuple(error["loc"][:-1]))
            message += suggest(str(error["loc"][-1]), known)
        lines.append(f"{loc or 'input'}: {message}")
    if rest:
        lines.append(f"... and {rest} more problem(s)")
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


def fail(lines: list[str], code: int = 2) -> NoReturn:
    """Print each line on stderr and exit with ``code`` (2: invalid input)."""
    for line in lines:
        typer.echo(line, err=True)
    raise typer.Exit(code)


def read_input(source: str) -> bytes:
    """The bytes of a file, or of stdin for ``-``; exits 2 when unreadable."""
    try:
        if source == "-":
            return sys.stdin.buffer.read()
        return Path(source).read_bytes()
    except OSError as exc:
        fail([f"{source}: cannot read: {exc.strerror or exc}"])


def parse_report(data: bytes) -> SymptomReport:
    """Validate report JSON bytes; exits 2 with one line per bad field when invalid."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        fail([f"input: not UTF-8 text (byte {exc.start}: {exc.reason})"])
    try:
        return SymptomReport.model_validate_json(text)
    except ValidationError as exc:
        fail(validation_lines(exc))




def read_report(source: str) -> SymptomReport:
    """Read and validate a report from a file or ``-``; exits 2 when invalid."""
    return parse_report(read_input(source))
