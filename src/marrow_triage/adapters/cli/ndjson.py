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

import collections
import itertools
import json
import multiprocessing
import queue
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from marrow_triage.adapters.cli.report_input import report_from_json
from marrow_triage.engine.triage import TriageEngine
from marrow_triage.errors import EngineError, Problem, ReportError
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
    if jobs > 1 and second is not None and "fork" in multiprocessing.get_all_start_methods():
        triaged = _in_workers(engine, locale, read, jobs)
    else:
        triaged = ((chunk, *_triage_chunk(engine, locale, chunk.first, chunk.lines))
                   for chunk in read)
    for chunk, text, failed in triaged:
        write(text)
        summary.lines += len(chunk.lines)
        summary.failed += failed
        done_bytes += chunk.size
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


def _in_workers(engine: TriageEngine, locale: str | None, chunks: Iterator[_Chunk],
                jobs: int) -> Iterator[tuple[_Chunk, str, list[int]]]:
    """Chunks triaged by this process and ``jobs - 1`` forked ones, yielded in input order.

    Forked, so each worker starts with the engine already loaded (its evaluators build
    their own durable_rules hosts after the fork). One chunk in ``jobs`` is triaged here,
    while the workers triage theirs. At most two chunks per worker are in flight, so a
    long input streams in bounded memory.
    """
    context = multiprocessing.get_context("fork")
    tasks: Any = context.Queue()
    done: Any = context.Queue()
    workers = [context.Process(target=_work, args=(engine, locale, tasks, done), daemon=True)
               for _ in range(jobs - 1)]
    for worker in workers:
        worker.start()
    # In input order: (chunk, True) for a chunk sent to a worker, (chunk, False) for one
    # this process triages when its turn to be written comes.
    pending: collections.deque[tuple[int, _Chunk, bool]] = collections.deque()
    ready: dict[int, tuple[str, list[int]]] = {}
    index = 0
    try:
        while True:
            while len(pending) < 2 * jobs:
                chunk = next(chunks, None)
                if chunk is None:
                    break
                to_worker = index % jobs != jobs - 1
                if to_worker:
                    tasks.put((index, chunk.first, chunk.lines))
                pending.append((index, chunk, to_worker))
                index += 1
            if not pending:
                return
            number, chunk, to_worker = pending.popleft()
            if not to_worker:
                yield chunk, *_triage_chunk(engine, locale, chunk.first, chunk.lines)
                continue
            while number not in ready:
                done_index, text, failed, error = _next_done(done, workers)
                if error is not None:
                    raise EngineError(f"a worker failed: {error}")
                ready[done_index] = (text, failed)
            yield chunk, *ready.pop(number)
    finally:
        for worker in workers:
            if worker.is_alive():
                tasks.put(None)
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
                worker.join()


def _next_done(done: Any, workers: list[Any]) -> tuple[int, str, list[int], str | None]:
    """The next finished chunk; EngineError if a worker died without answering."""
    while True:
        try:
            item: tuple[int, str, list[int], str | None] = done.get(timeout=1)
        except queue.Empty:
            dead = [w for w in workers if not w.is_alive()]
            if dead:
                raise EngineError(f"a worker process ended unexpectedly (exit status "
                                  f"{dead[0].exitcode})") from None
            continue
        return item


def _work(engine: TriageEngine, locale: str | None, tasks: Any, done: Any) -> None:
    """A worker: triage chunks until told to stop (``None``)."""
    while (task := tasks.get()) is not None:
        index, first, raw_lines = task
        try:
            text, failed = _triage_chunk(engine, locale, first, raw_lines)
        except Exception as exc:  # told to the parent, which stops the run
            done.put((index, "", [], f"{type(exc).__name__}: {exc}"))
            return
        done.put((index, text, failed, None))
