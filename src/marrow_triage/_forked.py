"""Work shared between this process and forked workers, answers in input order.

Used by the batch paths that take whole CPUs (``check --ndjson``, ``rules diff``). The
workers are forked, so they start with everything the parent has loaded (engines, packs);
an engine's evaluators build their own durable_rules hosts after a fork. Items and answers
cross processes pickled; the work function itself is inherited, never pickled.
"""

from __future__ import annotations

import collections
import multiprocessing
import multiprocessing.connection
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
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
    # Answers come back on one pipe that only the workers write, each answer whole under
    # a lock and from the worker's own thread (not a queue's feeder thread): a worker
    # that dies cannot leave half an answer behind for this process to wait on forever.
    answers, answering = context.Pipe(duplex=False)
    lock = context.Lock()
    workers = [context.Process(target=_serve, args=(work, tasks, answering, lock),
                               daemon=True)
               for _ in range(jobs - 1)]
    for worker in workers:
        worker.start()
    answering.close()
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
                done_index, answer, error = _next_done(answers, workers)
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
        answers.close()


def _next_done(answers: Connection, workers: list[Any]) -> tuple[int, Any, str | None]:
    """The next finished item; EngineError if a worker ended without answering (workers
    end only when told to, or after sending why they failed)."""
    multiprocessing.connection.wait([answers, *(worker.sentinel for worker in workers)])
    if answers.poll():  # an answer first: a worker that failed sent why before it ended
        try:
            answer: tuple[int, Any, str | None] = answers.recv()
        except EOFError:  # every worker has ended
            pass
        else:
            return answer
    ended = [worker.exitcode for worker in workers if not worker.is_alive()]
    raise EngineError("a worker process ended unexpectedly (exit status "
                      f"{ended[0] if ended else None})")


def _serve(work: Callable[[Any], Any], tasks: Any, answering: Connection, lock: Any) -> None:
    """A worker: do items until told to stop (``None``)."""
    while (task := tasks.get()) is not None:
        index, item = task
        try:
            answer = work(item)
        except Exception as exc:  # told to the parent, which stops the run
            with lock:
                answering.send((index, None, f"{type(exc).__name__}: {exc}"))
            return
        with lock:
            answering.send((index, answer, None))
