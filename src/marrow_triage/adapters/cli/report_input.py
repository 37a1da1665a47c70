"""Reading a report for the command line: one clear line per problem, exit code 2.

Shared by ``marrow-triage check`` and ``marrow-triage timeline record``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

import typer
from pydantic import ValidationError

from marrow_triage._json import checked_text
from marrow_triage.errors import MAX_LISTED_PROBLEMS, Problem, ReportError
from marrow_triage.models import SymptomReport, invalid_report

__all__ = ["MAX_ERROR_LINES", "fail", "parse_report", "problem_lines", "read_input",
           "read_report", "report_from_json", "validation_lines"]

MAX_ERROR_LINES = MAX_LISTED_PROBLEMS


def problem_lines(problems: Iterable[Problem], label: str = "", unlisted: int = 0) -> list[str]:
    """One line per problem: ``field: message``, a rule-pack problem with its file and
    rule; ``label`` starts every line, and ``unlisted`` more problems are counted."""
    lines = [f"{label}{p}" if p.field or p.file else f"{label}input: {p.message}"
             for p in problems]
    if unlisted:
        lines.append(f"... and {unlisted} more problem(s)")
    return lines


def validation_lines(exc: ValidationError, prefix: str = "") -> list[str]:
    """:func:`problem_lines` of an invalid report's pydantic error: at most
    ``MAX_ERROR_LINES`` problems, unknown fields with a "did you mean"; ``prefix`` is put
    before every field path."""
    error = invalid_report(exc)
    problems = error.problems
    if prefix:
        problems = tuple(replace(p, field=f"{prefix}.{p.field}" if p.field else prefix)
                         for p in problems)
    return problem_lines(problems, unlisted=error.unlisted)


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
    """Validate report JSON bytes; exits 2 with one line per bad field when invalid.

    A key given twice is refused (naming it), and a UTF-8 byte-order mark is accepted.
    """
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        fail([f"input: not UTF-8 text (byte {exc.start}: {exc.reason})"])
    try:
        return report_from_json(data)
    except ReportError as exc:
        fail(problem_lines(exc.problems))
    except ValidationError as exc:
        fail(validation_lines(exc))


def report_from_json(data: bytes) -> SymptomReport:
    """The report in JSON bytes, read strictly (see :mod:`marrow_triage._json`).

    Raises :class:`~marrow_triage.errors.DuplicateKeyError` for a key given twice, or
    pydantic's ``ValidationError`` (not UTF-8, not JSON, or an invalid report).
    """
    return SymptomReport.model_validate_json(checked_text(data))


def read_report(source: str) -> SymptomReport:
    """Read and validate a report from a file or ``-``; exits 2 when invalid."""
    return parse_report(read_input(source))
