"""Every timeline example gives exactly its level and rules with the packaged pack."""

from __future__ import annotations

import pytest

from marrow_triage import RulePack, TriageEngine
from timeline_examples import TIMELINE_EXAMPLES, Scenario, scenario_problems


def test_example_names_are_unique() -> None:
    assert len({s.name for s in TIMELINE_EXAMPLES}) == len(TIMELINE_EXAMPLES)


@pytest.mark.parametrize("scenario", TIMELINE_EXAMPLES, ids=[s.name for s in TIMELINE_EXAMPLES])
def test_timeline_example(scenario: Scenario, engine: TriageEngine) -> None:
    assert scenario_problems(engine, scenario) == []


def test_every_timeline_rule_fires_in_some_example(pack: RulePack) -> None:
    fired = set().union(*(s.rules for s in TIMELINE_EXAMPLES))
    assert {r.id for r in pack.timeline_rules} <= fired
