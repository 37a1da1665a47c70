"""``marrow-triage check --ndjson``: a nurse line's batch, one report per line.

Line *n* of the output answers line *n* of the input: the result JSON (as ``check
--json``, on one line), or for a line that cannot be triaged an error object::

    {"line": 3, "error": "invalid report", "problems": [{"field": "site_pain", "message": "..."}]}

A bad line never stops the rest. Valid reports are triaged with ``triage_many`` in chunks
(its staged evaluation is the fastest path), and each chunk's output is written as soon
as the chunks before it are, so a long input streams. Chunks can be triaged by several
worker processes (``jobs``, ``--jobs`` on the command line): the output is the same,
byte for byte, in the same order.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from pydantic import ValidationError

from marrow_triage._forked import can_fork, forked_map
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
                 locale: str | None = None, jobs: int = 1) -> NdjsonSummary:
    """Triage each line of NDJSON and ``write`` one output line per input line, in order
    (results in ``locale``, else the pack's own language).

    ``progress(lines_done, bytes_done)`` is called after each chunk. With ``jobs`` > 1 and
    more than one chunk of input, chunks are shared between this process and ``jobs - 1``
    forked workers (where the platform can fork), and written in input order all the
    same. Raises
    :class:`~marrow_triage.errors.EngineError` if the engine (or a worker) fails; what
    was written before stays whole lines.
    """
    summary = NdjsonSummary()
    done_bytes = 0
    chunks = _chunks(lines)
    first = next(chunks, None)
    second = next(chunks, None) if first is not None else None
    read = itertools.chain([c for c in (first, second) if c is not None], chunks)

    def triage(chunk: _Chunk) -> tuple[int, int, str, list[int]]:
        return len(chunk.lines), chunk.size, *_triage_chunk(engine, locale, chunk.first,
                                                            chunk.lines)

    parallel = jobs > 1 and second is not None and can_fork()
    for lines_done, size, text, failed in (forked_map(triage, read, jobs) if parallel
                                           else map(triage, read)):
        write(text)
        summary.lines += lines_done
        summary.failed += failed
        done_bytes += size
        if progress is not None:
            progress(summary.lines, done_bytes)
    return summary


@dataclass(frozen=True)
class _Chunk:
    first: int
    """Line number of its first line (from 1)."""
    lines: list[bytes]
    size: int
    """Bytes read, line ends included."""


def _chunks(lines: Iterable[bytes]) -> Iterator[_Chunk]:
    number, buffer, size = 1, [], 0
    for raw in lines:
        buffer.append(raw)
        size += len(raw)
        if len(buffer) == CHUNK_LINES:
            yield _Chunk(number, buffer, size)
            number, buffer, size = number + len(buffer), [], 0
    if buffer:
        yield _Chunk(number, buffer, size)


def _triage_chunk(engine: TriageEngine, locale: str | None, first: int,
                  raw_lines: list[bytes]) -> tuple[str, list[int]]:
    """The output of a chunk of lines, and the numbers of its lines that failed."""
    items = [_read(first + offset, raw.rstrip(b"\r\n")) for offset, raw in enumerate(raw_lines)]
    failed = [first + offset for offset, item in enumerate(items) if isinstance(item, str)]
    valid = [item for item in items if isinstance(item, SymptomReport)]
    results = iter(engine.triage_many(valid, locale))
    out = [item if isinstance(item, str) else next(results).model_dump_json() for item in items]
    return "\n".join(out) + "\n", failed
