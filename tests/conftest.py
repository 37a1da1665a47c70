"""Shared fixtures: the packaged rule pack and engine, the reference evaluator, pack copies."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from marrow_triage import RulePack, TriageEngine, default_engine

REPO_ROOT = Path(__file__).resolve().parents[1]
RULES_DIR = REPO_ROOT / "rules"

# Property tests set their own max_examples; engine calls vary in speed on a loaded CI
# machine, so no per-example deadline. HYPOTHESIS_PROFILE picks another registered profile.
settings.register_profile(
    "marrow", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "marrow"))


@pytest.fixture(scope="session")
def rules_dir() -> Path:
    """The rule pack directory of this checkout."""
    return RULES_DIR


# `make mutate` (tests/mutation.py) runs behavioural tests against a mutated pack by
# naming its directory here; unset, the fixtures give the packaged pack.
MUTANT_RULES = os.environ.get("MARROW_TRIAGE_TEST_RULES")


@pytest.fixture(scope="session")
def engine() -> TriageEngine:
    """The engine of the packaged rule pack (the one ``triage()`` uses)."""
    if MUTANT_RULES:
        return TriageEngine.from_path(MUTANT_RULES)
    return default_engine()


@pytest.fixture(scope="session")
def pack(engine: TriageEngine) -> RulePack:
    """The packaged rule pack."""
    return engine.pack


@pytest.fixture()
def pack_copy(tmp_path: Path) -> Path:
    """A writable copy of the rule pack directory."""
    target = tmp_path / "rules"
    shutil.copytree(RULES_DIR, target)
    return target


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A throwaway PostgreSQL cluster for this test session (or the server named by
    MARROW_TRIAGE_TEST_PG_URL). Without one, PostgreSQL tests skip with one line saying
    how to run them, except under CI (CI=true), where they fail: they must never
    silently skip there."""
    import postgres_server as pg

    if not pg.available():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {pg.HOW_TO}")
        pytest.skip(pg.HOW_TO)
    with pg.PostgresCluster() as cluster:
        yield cluster


@pytest.fixture()
def postgres_url(postgres_server: Any) -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped after the test."""
    url: str = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)
