"""Resident memory growth over many evaluations in one process.

    python benchmarks/memory.py [--evaluations 1000000] [--warmup 20000]

Warms up on the report mix, then runs the evaluations and prints RSS (from
/proc/self/statm) after warm-up, at each tenth, and the growth. Target: < 5 MB growth
over 1,000,000 evaluations. The test suite runs a small version (tests/test_memory.py).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mix import mixed_reports

from marrow_triage import TriageEngine

PAGE = os.sysconf("SC_PAGE_SIZE")
TARGET_MB = 5.0


def rss_bytes() -> int:
    """Current resident set size, from /proc/self/statm."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--evaluations", type=int, default=1_000_000)
    parser.add_argument("--warmup", type=int, default=20_000)
    args = parser.parse_args()
    engine = TriageEngine.default()
    reports = mixed_reports(5000)
    for i in range(args.warmup):
        engine.triage(reports[i % len(reports)])
    gc.collect()
    base = rss_bytes()
    start = time.perf_counter()
    step = max(1, args.evaluations // 10)
    print(f"after warm-up ({args.warmup} evaluations): RSS {base / 2**20:.1f} MB")
    for i in range(args.evaluations):
        engine.triage(reports[i % len(reports)])
        if (i + 1) % step == 0:
            print(f"  {i + 1:>9} evaluations: RSS {rss_bytes() / 2**20:.1f} MB "
                  f"(+{(rss_bytes() - base) / 2**20:.2f} MB)", flush=True)
    gc.collect()
    growth = (rss_bytes() - base) / 2**20
    elapsed = time.perf_counter() - start
    verdict = "OK" if growth < TARGET_MB else "OVER TARGET"
    print(f"rss_growth_mb={growth:.2f} evaluations={args.evaluations} "
          f"seconds={elapsed:.0f} target_mb<{TARGET_MB:g} {verdict}")
    return 0 if growth < TARGET_MB else 1


if __name__ == "__main__":
    raise SystemExit(main())
