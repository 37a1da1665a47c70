"""Short runs of the structure-aware atheris harnesses of fuzz/ (``make fuzz`` runs them
long). atheris exits non-zero, with the failing input, on any exception the harness does
not expect; each run also reports the code edges it reached (libFuzzer's ``cov:``)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

FUZZ = Path(__file__).resolve().parents[1] / "fuzz"


def run(harness: str, runs: int) -> int:
    """Run ``harness`` for ``runs`` inputs; the edges it reached."""
    proc = subprocess.run([sys.executable, str(FUZZ / harness), f"-atheris_runs={runs}",
                           "-seed=1"], capture_output=True, text=True, timeout=600,
                          check=False, cwd=FUZZ)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"Done {runs}" in proc.stderr
    edges = [int(n) for n in re.findall(r"\bcov: (\d+)", proc.stderr)]
    assert edges, proc.stderr[-2000:]
    return max(edges)


def test_reports_mutated_field_by_field() -> None:
    assert run("fuzz_report_fields.py", 300) > 100


def test_rule_packs_mutated_rule_by_rule() -> None:
    assert run("fuzz_rule_packs.py", 25) > 100


def test_timeline_sequences_with_hostile_times() -> None:
    assert run("fuzz_timeline.py", 300) > 100
