"""Resident memory stays flat over many evaluations (small version of benchmarks/memory.py).

A durable_rules session that is not deleted keeps its facts in the C engine (and ends in
MemoryError after about a thousand); a per-call leak of even 1 KB shows up as ~15 MB
here. RSS is read from /proc/self/statm.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

from marrow_triage import TriageEngine
from report_mix import mixed_reports

WARMUP = 3000
EVALUATIONS = 14000
BOUND_MB = 4.0


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_rss_stays_flat_over_many_evaluations() -> None:
    engine = TriageEngine.default()
    reports = mixed_reports(2000, seed=11)
    for i in range(WARMUP):
        engine.triage(reports[i % len(reports)])
    engine.triage_many(reports)
    gc.collect()
    base = _rss_bytes()
    for i in range(EVALUATIONS // 2):
        engine.triage(reports[i % len(reports)])
    for start in range(0, EVALUATIONS // 2, len(reports)):
        engine.triage_many(reports[: min(len(reports), EVALUATIONS // 2 - start)])
    gc.collect()
    growth_mb = (_rss_bytes() - base) / 2**20
    assert growth_mb < BOUND_MB, f"RSS grew {growth_mb:.2f} MB over {EVALUATIONS} evaluations"


def test_engines_are_released() -> None:
    # Engines built and dropped (e.g. per request, or per rule-pack reload) free their
    # hosts: RSS after many short-lived engines stays near one engine's footprint.
    report = {"hours_since_procedure": 5, "site_pain": 8, "bleeding": "spots_on_dressing"}
    for _ in range(5):
        TriageEngine.default().triage(report)
    gc.collect()
    base = _rss_bytes()
    for _ in range(40):
        TriageEngine.default().triage(report)
    gc.collect()
    growth_mb = (_rss_bytes() - base) / 2**20
    assert growth_mb < 8.0, f"RSS grew {growth_mb:.2f} MB over 40 engines"
