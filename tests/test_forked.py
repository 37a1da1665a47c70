"""Work shared with forked workers (`check --ndjson`, `rules diff`): answers in input order,
and a worker that fails or dies ends the run with an EngineError, never a hang.

The dying cases run in a child interpreter with a time limit, so that a hang fails the
test instead of stopping the suite.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from marrow_triage._forked import can_fork, forked_map
from marrow_triage.errors import EngineError

pytestmark = pytest.mark.skipif(not can_fork(), reason="needs fork")


def _square(item: int) -> int:
    return item * item


def test_answers_come_back_in_input_order() -> None:
    assert list(forked_map(_square, iter(range(50)), jobs=3)) == [i * i for i in range(50)]


def _fails_at_six(item: int) -> int:
    if item == 6:
        raise ValueError("six")
    return item


def test_a_failing_item_in_a_worker_ends_the_run_with_the_reason() -> None:
    seen: list[int] = []
    # With two jobs, even items are the worker's, odd ones this process's.
    with pytest.raises(EngineError, match="ValueError: six"):
        for answer in forked_map(_fails_at_six, iter(range(40)), jobs=2):
            seen.append(answer)
    assert seen == list(range(6))


_DIES_AFTER_A_LARGE_ANSWER = textwrap.dedent("""
    import os, sys
    from marrow_triage._forked import forked_map
    from marrow_triage.errors import EngineError

    def work(item):
        # Item 0 (a worker's) answers with 32 MB, more than a pipe holds; item 2 (the
        # same worker's next) ends the process straight away, as a crash in the C
        # engine would, while this process may still be reading item 0's answer.
        if item == 0:
            return b"x" * (32 << 20)
        if item == 2:
            os._exit(3)
        return b""

    try:
        sizes = [len(answer) for answer in forked_map(work, iter(range(6)), jobs=2)]
    except EngineError as exc:
        print("EngineError:", exc)
        sys.exit(0)
    print("no error", sizes)
    sys.exit(1)
""")


@pytest.mark.parametrize("run", range(3))
def test_a_worker_that_dies_after_a_large_answer_ends_the_run(run: int) -> None:
    """Answers used to share one queue, whose pipe every process held open: a worker
    that ended while writing an answer left half of it there, and the parent waited
    forever for the rest. Now the pipe ends with the worker."""
    done = subprocess.run([sys.executable, "-c", _DIES_AFTER_A_LARGE_ANSWER],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ended unexpectedly (exit status 3)" in done.stdout
