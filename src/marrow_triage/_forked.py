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
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
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
    # Each worker answers on a pipe of its own that only it writes (this process closes
    # its copy of the writing end before the next fork): when a worker ends, even in the
    # middle of an answer, reading its pipe ends in EOFError, never in a wait for the
    # rest of an answer that will not come.
    workers: dict[Connection, Any] = {}
    for _ in range(jobs - 1):
        answers, answering = context.Pipe(duplex=False)
        worker = context.Process(target=_serve, args=(work, tasks, answering), daemon=True)
        worker.start()
        answering.close()
        workers[answers] = worker
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
                done_index, answer, error = _next_done(workers)
                if error is not None:
                    raise EngineError(f"a worker failed: {error}")
                ready[done_index] = answer
            yield ready.pop(number)
    finally:
        for worker in workers.values():
            if worker.is_alive():
                tasks.put(None)
        for answers, worker in workers.items():
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
                worker.join()
            answers.close()


def _next_done(workers: Mapping[Connection, Any]) -> tuple[int, Any, str | None]:
    """The next answer from any worker; EngineError if a worker ended (workers end only
    when told to, or after sending why they failed)."""
    for answers in multiprocessing.connection.wait(list(workers)):
        assert isinstance(answers, Connection)
        try:
            answer: tuple[int, Any, str | None] = answers.recv()
        except EOFError:
            worker = workers[answers]
            worker.join(timeout=5)
            raise EngineError("a worker process ended unexpectedly (exit status "
                              f"{worker.exitcode})") from None
        return answer
    raise AssertionError("wait() returned nothing without a timeout")


def _serve(work: Callable[[Any], Any], tasks: Any, answering: Connection) -> None:
    """A worker: do items until told to stop (``None``). Answers are sent by a thread of
    their own, so that the next item is started while this process reads the last."""
    outbox: queue.SimpleQueue[tuple[int, Any, str | None] | None] = queue.SimpleQueue()
    sender = threading.Thread(target=_send_all, args=(outbox, answering))
    sender.start()
    try:
        while (task := tasks.get()) is not None:
            index, item = task
            try:
                answer = work(item)
            except Exception as exc:  # told to the parent, which stops the run
                outbox.put((index, None, f"{type(exc).__name__}: {exc}"))
                return
            outbox.put((index, answer, None))
    finally:
        outbox.put(None)
        sender.join()


def _send_all(outbox: queue.SimpleQueue[tuple[int, Any, str | None] | None],
              answering: Connection) -> None:
    while (message := outbox.get()) is not None:
        answering.send(message)
