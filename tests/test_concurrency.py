"""One TriageEngine shared by threads, forked worker processes and asyncio tasks.

durable_rules' C engine segfaults when two threads use one host, and a forked child that
reuses hosts a parent thread was changing inherits half-updated C state. Each test runs a
generated mix of reports concurrently and requires results identical, byte for byte, to
the same reports evaluated serially. A crash takes the test process down, which fails
the run. The full-size runs (8 threads x 100,000) are in benchmarks/stress.py.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from marrow_triage import TriageEngine
from report_mix import mixed_reports

THREADS = 8
PER_THREAD = 600


@pytest.fixture(scope="module")
def engine() -> TriageEngine:
    return TriageEngine.default()


@pytest.fixture(scope="module")
def reports() -> list[dict[str, Any]]:
    return mixed_reports(THREADS * PER_THREAD, seed=7)


@pytest.fixture(scope="module")
def serial(engine: TriageEngine, reports: list[dict[str, Any]]) -> list[str]:
    return [engine.triage(r).model_dump_json() for r in reports]


def _run_in_threads(work: Callable[[int], None]) -> None:
    """Run ``work(k)`` on THREADS threads at once; fail with what any of them raised."""
    errors: list[BaseException] = []

    def guarded(offset: int) -> None:
        try:
            work(offset)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_threads_sharing_one_engine_match_serial(
    engine: TriageEngine, reports: list[dict[str, Any]], serial: list[str]
) -> None:
    results: list[str | None] = [None] * len(reports)
    start = threading.Barrier(THREADS)

    def work(offset: int) -> None:
        start.wait()
        # Interleave: thread k takes reports k, k+8, k+16... so neighbours run together.
        for index in range(offset, len(reports), THREADS):
            results[index] = engine.triage(reports[index]).model_dump_json()

    _run_in_threads(work)
    assert results == serial


def test_threads_mixing_single_and_batch_calls(
    engine: TriageEngine, reports: list[dict[str, Any]], serial: list[str]
) -> None:
    chunk = 100
    results: dict[int, list[str]] = {}

    def work(offset: int) -> None:
        for start in range(offset * chunk, len(reports), THREADS * chunk):
            batch = reports[start:start + chunk]
            if (start // chunk) % 2:
                out = [r.model_dump_json() for r in engine.triage_many(batch)]
            else:
                out = [engine.triage(r).model_dump_json() for r in batch]
            results[start] = out

    _run_in_threads(work)
    flat = [line for start in sorted(results) for line in results[start]]
    assert flat == serial


def _triage_in_child(report: dict[str, Any]) -> str:
    assert _FORK_ENGINE is not None
    return _FORK_ENGINE.triage(report).model_dump_json()


def test_fork_pool_with_engine_used_in_parent_while_a_thread_evaluates(
    reports: list[dict[str, Any]], serial: list[str]
) -> None:
    global _FORK_ENGINE
    engine = TriageEngine.default()
    subset, expected = reports[:800], serial[:800]
    assert engine.triage(subset[0]).model_dump_json() == expected[0]  # used before the fork
    _FORK_ENGINE = engine
    stop = threading.Event()
    parent_results: list[bool] = []

    def keep_evaluating() -> None:
        index = 0
        while not stop.is_set():
            parent_results.append(engine.triage(subset[index]).model_dump_json()
                                  == expected[index])
            index = (index + 1) % len(subset)

    busy = threading.Thread(target=keep_evaluating)
    busy.start()
    try:
        context = multiprocessing.get_context("fork")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
            with context.Pool(2) as pool:
                children = pool.map(_triage_in_child, subset, chunksize=50)
    finally:
        stop.set()
        busy.join()
        _FORK_ENGINE = None
    assert children == expected
    assert parent_results and all(parent_results)
    assert [engine.triage(r).model_dump_json() for r in subset[:50]] == expected[:50]


def test_asyncio_many_concurrent_calls_match_serial(
    engine: TriageEngine, reports: list[dict[str, Any]], serial: list[str]
) -> None:
    subset, expected = reports[:600], serial[:600]

    async def main() -> list[str]:
        async def one(report: dict[str, Any]) -> str:
            return (await engine.triage_async(report)).model_dump_json()

        return await asyncio.gather(*(one(r) for r in subset))

    assert asyncio.run(main()) == expected


class _GatedEngine(TriageEngine):
    """Holds each evaluation until the event loop has shown it is still running."""

    def __init__(self, engine: TriageEngine) -> None:
        super().__init__(engine.pack)
        self.gate = threading.Event()
        self.threads: set[int] = set()

    def triage(self, report: Any, locale: str | None = None) -> Any:
        self.threads.add(threading.get_ident())
        assert self.gate.wait(10), "the event loop did not run while triage was in flight"
        return super().triage(report, locale)


def test_asyncio_evaluation_runs_off_the_loop_which_stays_responsive(
    engine: TriageEngine, reports: list[dict[str, Any]], serial: list[str]
) -> None:
    # Deterministic, unlike counting completions (an evaluation takes ~50 µs): each
    # evaluation waits until the loop, still running, opens the gate. Run on the loop's
    # thread, it would block the loop, the gate would never open, and the wait fail.
    gated = _GatedEngine(engine)

    async def main() -> tuple[list[str], int]:
        calls = [asyncio.create_task(gated.triage_async(r)) for r in reports[:20]]
        ticks = 0
        while ticks < 5:  # the loop goes round while all 20 evaluations are held
            await asyncio.sleep(0.001)
            ticks += 1
        assert not any(call.done() for call in calls)
        gated.gate.set()
        results = await asyncio.gather(*calls)
        return [r.model_dump_json() for r in results], threading.get_ident()

    results, loop_thread = asyncio.run(main())
    assert results == serial[:20]
    assert gated.threads and loop_thread not in gated.threads


def test_asyncio_invalid_report_raises_validation_error_without_blocking(
    engine: TriageEngine,
) -> None:
    from pydantic import ValidationError

    async def main() -> None:
        with pytest.raises(ValidationError):
            await engine.triage_async({"hours_since_procedure": -1})

    asyncio.run(main())
