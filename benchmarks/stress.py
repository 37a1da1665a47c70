"""Full-size thread-safety soak: N threads x M mixed reports on ONE shared TriageEngine.

    python benchmarks/stress.py [--threads 8] [--per-thread 100000]

Each thread evaluates its own slice of a generated mix; every result is compared, as JSON,
with the same report evaluated serially beforehand (distinct reports are evaluated once
serially, then looked up). A crash of durable_rules' C engine kills the process (non-zero
exit); a mismatch is counted and printed. The suite runs 8 x 600 (tests/test_concurrency.py).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mix import mixed_reports

from marrow_triage import TriageEngine

DISTINCT = 20_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--per-thread", type=int, default=100_000)
    args = parser.parse_args()
    engine = TriageEngine.default()
    reports = mixed_reports(DISTINCT, seed=99)
    start = time.perf_counter()
    expected = [engine.triage(r).model_dump_json() for r in reports]
    print(f"serial baseline: {len(reports)} distinct reports in "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    mismatches = [0] * args.threads
    done = [0] * args.threads
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(args.per_thread):
                index = (i * args.threads + k) % len(reports)
                if engine.triage(reports[index]).model_dump_json() != expected[index]:
                    mismatches[k] += 1
                done[k] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(args.threads)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        time.sleep(10)
        print(f"  {sum(done):,} / {args.threads * args.per_thread:,} evaluations, "
              f"{sum(mismatches)} mismatches", flush=True)
    for thread in threads:
        thread.join()
    total = sum(done)
    elapsed = time.perf_counter() - start
    print(f"threads={args.threads} evaluations={total} mismatches={sum(mismatches)} "
          f"errors={len(errors)} seconds={elapsed:.0f} reports_per_s={total / elapsed:.0f}")
    for exc in errors[:5]:
        print(f"error: {exc!r}")
    return 0 if not errors and not any(mismatches) else 1


if __name__ == "__main__":
    raise SystemExit(main())
