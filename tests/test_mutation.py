"""The fast form of `make mutate`: every unsafe one-step edit of a rule fails a worked example.

Each mutant (a rule's level one step lower, a threshold one step the unsafe way with its
explanation kept consistent; see marrow_triage.change.mutants) is loaded as a pack and
run against the report examples (tests/test_rules_examples.py) and the timeline examples
(tests/timeline_examples.py). A mutant that passes them all is a change to a rule's
clinical meaning that no behavioural test would notice.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from marrow_triage.change.mutants import Mutant, pack_mutants
from mutation import RULES_DIR, judge_in_process

MUTANTS = pack_mutants(RULES_DIR)


def test_every_rule_has_mutants() -> None:
    import yaml

    ids = set()
    for path in RULES_DIR.glob("*.yaml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for section in ("rules", "timeline_rules"):
            ids |= {r["id"] for r in data.get(section) or [] if r["level"] != "self_care"}
    assert ids <= {m.rule_id for m in MUTANTS}
    assert {"fever-sustained: level urgent → soon",
            "new-raised-temperature-days-after: level urgent → soon",
            "fever: temperature_c at_least 38.3 → 38.31",
            "history: raised_temperature_c 38 → 38.01"} <= {m.id for m in MUTANTS}


def test_a_mutant_keeps_its_explanation_consistent(tmp_path: Path) -> None:
    from marrow_triage import RulePack

    mutant = next(m for m in MUTANTS if m.id == "fever: temperature_c at_least 38.3 → 38.31")
    pack = RulePack.from_path(mutant.write(RULES_DIR, tmp_path / "rules"))
    assert "38.31 °C" in pack.rule("fever").explanation
    assert "38.3 °C" not in pack.rule("fever").explanation


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.id for m in MUTANTS])
def test_mutant_is_killed(mutant: Mutant, tmp_path: Path) -> None:
    outcome = judge_in_process(mutant, tmp_path)
    assert outcome.verdict != "survived", f"SURVIVED: {mutant.id}: {outcome.detail}"
