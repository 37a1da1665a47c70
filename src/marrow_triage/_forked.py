"""Work shared between this process and forked workers, answers in input order.

Used by the batch paths that take whole CPUs (``check --ndjson``, ``rules diff``). The
workers are forked, so they start with everything the parent has loaded (engines, packs);
an engine's evaluators build their own durable_rules hosts after a fork. Items and answers
cross processes pickled; the work function itself is inherited, never pickled.
"""

from __future__ import annotations

import collections
import multiprocessing
import queue
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from marrow_triage.errors import EngineError

__all__ = ["can_fork", "forked_map"]

_Item = TypeVar("_Item")
_Answer = TypeVar("_Answer")


def can_fork() -> bool:
    """Whether this platform can fork worker processes."""
    return "fork" in multiprocessing.get_all_start_methods()


def forked_map(work: Callable[[_Item], _Answer], items: Iterator[_Item],
               jobs: int) -> Iterator[_Answer]:
    """``work(item)`` for each item, yielded in input order, by this process and
    ``jobs - 1`` forked workers (needs :func:`can_fork`).

    This process does one item in ``jobs`` itself, while the workers do theirs. At most
    two items per process are in flight, so a long input streams in bounded memory.
    Raises :class:`~marrow_triage.errors.EngineError` when a worker's ``work`` raises or a
    worker dies; the workers are stopped whenever the iteration ends.
    """
    context = multiprocessing.get_context("fork")
    tasks: Any = context.Queue()
    done: Any = context.Queue()
    workers = [context.Process(target=_serve, args=(work, tasks, done), daemon=True)
               for _ in range(jobs - 1)]
    for worker in workers:
        worker.start()
    # In input order: (index, item, True) for an item sent to a worker, (index, item,
    # False) for one this process does when its turn to be yielded comes.
    pending: collections.deque[tuple[int, _Item, bool]] = collections.deque()
    ready: dict[int, _Answer] = {}
    index = 0
    try:
        while True:
            while len(pending) < 2 * jobs:
                item = next(items, None)
                if item is None:
                    break
                to_worker = index % jobs != jobs - 1
                if to_worker:
                    tasks.put((index, item))
                pending.append((index, item, to_worker))
                index += 1
            if not pending:
                return
            number, item, to_worker = pending.popleft()
            if not to_worker:
                yield work(item)
                continue
            while number not in ready:
                done_index, answer, error = _next_done(done, workers)
                if error is not None:
                    raise EngineError(f"a worker failed: {error}")
                ready[done_index] = answer
            yield ready.pop(number)
    finally:
        for worker in workers:
            if worker.is_alive():
                tasks.put(None)
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
                worker.join()


def _next_done(done: Any, workers: list[Any]) -> tuple[int, Any, str | None]:
    """The next finished item; EngineError if a worker died without answering."""
    while True:
        try:
            answer: tuple[int, Any, str | None] = done.get(timeout=1)
        except queue.Empty:
            dead = [w for w in workers if not w.is_alive()]
            if dead:
                raise EngineError(f"a worker process ended unexpectedly (exit status "
                                  f"{dead[0].exitcode})") from None
            continue
        return answer


def _serve(work: Callable[[Any], Any], tasks: Any, done: Any) -> None:
    """A worker: do items until told to stop (``None``)."""
    while (task := tasks.get()) is not None:
        index, item = task
        try:
            answer = work(item)
        except Exception as exc:  # told to the parent, which stops the run
            done.put((index, None, f"{type(exc).__name__}: {exc}"))
            return
        done.put((index, answer, None))
