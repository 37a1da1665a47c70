"""The benchmarks' report mix (benchmarks/mix.py), for the reliability tests: one
generator, so "the mix" means the same reports in tests and benchmarks."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "mix.py"


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("marrow_bench_mix", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_MIX = _load()


def mixed_reports(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` reports of the mix, the same for the same seed."""
    reports: list[dict[str, Any]] = _MIX.mixed_reports(count, seed=seed)
    return reports
