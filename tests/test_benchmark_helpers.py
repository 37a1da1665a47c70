"""The benchmarks' own helpers (benchmarks/), not the library: the report mix that the
benchmarks and the reliability tests share must stay the realistic mix the benchmark
README describes, or the figures and the reliability tests stop meaning anything."""

from __future__ import annotations

from collections import Counter

from marrow_triage import TriageEngine
from report_mix import mixed_reports


def test_the_mix_is_mostly_self_care_with_every_level_present() -> None:
    engine = TriageEngine.default()
    reports = mixed_reports(1000, seed=7)
    levels = Counter(engine.triage(r).level.value for r in reports)
    assert levels["self_care"] > 500
    assert levels["emergency"] > 10
    assert levels["urgent"] + levels["soon"] > 100
    assert mixed_reports(1000, seed=7) == reports  # reproducible from the seed
