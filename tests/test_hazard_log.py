"""docs/safety/hazard-log.md cites tests that exist: each cited pytest node id is collected."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
HAZARD_LOG = REPO_ROOT / "docs" / "safety" / "hazard-log.md"
NODE_ID = re.compile(r"`(tests/[\w/]+\.py::[^`]+)`")


def hazards() -> dict[str, list[str]]:
    """Hazard id -> the test ids its section cites."""
    cited: dict[str, list[str]] = {}
    current = None
    for line in HAZARD_LOG.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"## (HAZ-\d+):", line)
        if heading:
            current = heading[1]
            cited[current] = []
        elif current is not None:
            cited[current] += NODE_ID.findall(line)
    return cited


@pytest.fixture(scope="module")
def collected() -> set[str]:
    files = sorted({node.split("::")[0] for ids in hazards().values() for node in ids})
    missing = [f for f in files if not (REPO_ROOT / f).is_file()]
    assert not missing, f"the hazard log cites test files that do not exist: {missing}"
    run = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                          "-p", "no:cacheprovider", "-o", "addopts=", *files],
                         cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return {line.strip() for line in run.stdout.splitlines() if "::" in line}


def test_every_hazard_cites_tests() -> None:
    cited = hazards()
    assert len(cited) >= 12
    assert [h for h, ids in cited.items() if not ids] == []
    table = HAZARD_LOG.read_text(encoding="utf-8").split("## HAZ-01")[0]
    assert all(f"| {h} |" in table for h in cited), "every hazard is in the summary table"


def test_every_cited_test_exists(collected: set[str]) -> None:
    """A cited id is a collected node, or a function whose parametrised nodes are."""
    missing = []
    for hazard, ids in hazards().items():
        for node in ids:
            if node not in collected and not any(c.startswith(node + "[") for c in collected):
                missing.append(f"{hazard}: {node}")
    assert missing == [], ("docs/safety/hazard-log.md cites tests that no longer exist; "
                           "cite the tests that now prove the mitigation:\n" +
                           "\n".join(missing))


def test_a_renamed_test_would_be_caught(collected: set[str]) -> None:
    assert "tests/test_rules_examples.py::test_float_trap_100_94_fahrenheit" in collected
    assert "tests/test_rules_examples.py::test_float_trap_100_94_celsius" not in collected
