"""Long batch runs with Python's full garbage collections deferred.

A batch that misses the explanation caches (``rules diff`` over sampled reports) makes
many short-lived objects while its caches and results hold many long-lived ones; every
full (oldest-generation) collection then walks all of them, and those walks cost about a
third of the run. The objects made per report are freed by reference counting (results
hold no cycles), so the young collections that stay on are enough to reclaim any cycle
in the meantime, and one full collection runs at the end.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["full_collections_deferred"]

_RARELY = 1_000_000
"""Young collections before a full one is considered: in effect, none during the batch."""


@contextmanager
def full_collections_deferred() -> Iterator[None]:
    """Run the block with automatic full collections deferred (process-wide: the
    collector's thresholds are global); the thresholds are restored, and one full
    collection runs, when it ends. Forked workers started inside inherit it."""
    young, middle, full = gc.get_threshold()
    gc.set_threshold(young, middle, max(full, _RARELY))
    try:
        yield
    finally:
        gc.set_threshold(young, middle, full)
        gc.collect()
