"""``marrow-triage check --ndjson``: a nurse line's batch, one report per line.

Line *n* of the output answers line *n* of the input: the result JSON (as ``check
--json``, on one line), or for a line that cannot be triaged an error object::

    {"line": 3, "error": "invalid report", "problems": [{"field": "site_pain", "message": "..."}]}

A bad line never stops the rest. Valid reports are triaged with ``triage_many`` in chunks
(its staged evaluation is the fastest path), and each chunk's output is written before
the next chunk is read, so a long input streams.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pydantic import ValidationError

from marrow_triage.adapters.cli.report_input import report_from_json
from marrow_triage.engine.triage import TriageEngine
from marrow_triage.errors import Problem, ReportError
from marrow_triage.models import SymptomReport, invalid_report

__all__ = ["CHUNK_LINES", "NdjsonSummary", "triage_lines"]

# Large enough that triage_many's staging pays off, small enough to stream and to keep
# a chunk's results (~2 KB of JSON each) in memory.
CHUNK_LINES = 1000


@dataclass
class NdjsonSummary:
    """What a run did: lines read and the numbers of the lines that could not be triaged."""

    lines: int = 0
    failed: list[int] = field(default_factory=list)


def _error_line(number: int, problems: Iterable[Problem]) -> str:
    return json.dumps({"line": number, "error": "invalid report",
                       "problems": [p.as_dict() for p in problems]}, ensure_ascii=False)


def _read(number: int, raw: bytes) -> SymptomReport | str:
    """The report on one line, or its error line."""
    if not raw.strip():
        return _error_line(number, [Problem(None, "empty line: expected one report as JSON")])
    try:
        return report_from_json(raw)  # a byte-order mark is accepted, as in `check`
    except ReportError as exc:
        return _error_line(number, exc.problems)
    except ValidationError as exc:
        error = invalid_report(exc)  # at most MAX_LISTED_PROBLEMS, "did you mean" included
        problems = error.problems
        if error.unlisted:
            problems += (Problem(None, f"... and {error.unlisted} more problem(s)"),)
        return _error_line(number, problems)


def triage_lines(engine: TriageEngine, lines: Iterable[bytes], write: Callable[[str], object],
                 progress: Callable[[int, int], object] | None = None,
                 locale: str | None = None) -> NdjsonSummary:
    """Triage each line of NDJSON and ``write`` one output line per input line, in order
    (results in ``locale``, else the pack's own language).

    ``progress(lines_done, bytes_done)`` is called after each chunk. Raises
    :class:`~marrow_triage.errors.EngineError` if the engine fails (an internal error);
    what was written before stays whole lines.
    """
    summary = NdjsonSummary()
    done_bytes = 0
    chunk: list[SymptomReport | str] = []
    for raw in lines:
        summary.lines += 1
        done_bytes += len(raw)
        item = _read(summary.lines, raw.rstrip(b"\r\n"))
        if isinstance(item, str):
            summary.failed.append(summary.lines)
        chunk.append(item)
        if len(chunk) == CHUNK_LINES:
            _flush(engine, chunk, write, locale)
            chunk = []
            if progress is not None:
                progress(summary.lines, done_bytes)
    if chunk:
        _flush(engine, chunk, write, locale)
    if progress is not None:
        progress(summary.lines, done_bytes)
    return summary


def _flush(engine: TriageEngine, chunk: list[SymptomReport | str],
           write: Callable[[str], object], locale: str | None) -> None:
    valid = [r for r in chunk if isinstance(r, SymptomReport)]
    results = iter(engine.triage_many(valid, locale))
    out = [item if isinstance(item, str) else next(results).model_dump_json()
           for item in chunk]
    write("\n".join(out) + "\n")
