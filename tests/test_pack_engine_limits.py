"""Packs durable_rules refuses are rule-pack errors, found before compiling (issue 13, item 7).

``any:`` with 150+ alternatives, 300+ rules, nesting depth 16 and depth 400 all ended in
an uncaught traceback (exit 1); ``rules check`` never compiled timeline rules, so a
200-way timeline rule passed it and ``Timeline()`` then failed. The limits (measured
against durable-rules 2.0.28, docs/rules-format.md) are checked at load with a message
naming the rule, and whatever the engine still refuses becomes a RulePackError too.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from marrow_triage import RulePack, RulePackError, TriageEngine, Urgency
from marrow_triage.adapters.cli.main import app
from marrow_triage.engine.triage import compile_everything
from marrow_triage.pack.checks import (
    MAX_GROUPS_PER_RULE,
    MAX_RULES_PER_RULESET,
    MAX_TESTS_PER_RULE,
    MAX_TESTS_PER_RULESET,
    condition_groups,
)
from marrow_triage.pack.conditions import parse_condition
from marrow_triage.pack.facts import TIMELINE_FACT_FIELDS
from marrow_triage.pack.spec import RuleSpec, TimelineRuleSpec
from test_rule_pack import assert_problem, load_error

SOURCE = {"document": "cancer-net-bmab", "section": "s", "quote": "q"}


def report_rule(rule_id: str, when: dict[str, Any], explanation: str = "") -> dict[str, Any]:
    explanation = explanation or "Hours {hours_since_procedure}: " + ", ".join(
        f"{n} hours" for n in _thresholds(when)) + "."
    return {"id": rule_id, "title": "t", "level": "soon", "when": when,
            "explanation": explanation, "advice": ["Call."], "source": dict(SOURCE)}


def any_of_hours(count: int, start: int = 0) -> dict[str, Any]:
    """``any`` of ``count`` different hour thresholds (its explanation states the first)."""
    return {"any": [{"hours_since_procedure": {"at_least": start + i}} for i in range(count)]}


def nested(groups: int) -> dict[str, Any]:
    """A condition of exactly ``groups`` any/all groups, alternating, nested."""
    when: dict[str, Any] = {"chills": {"is": True}}
    for depth in range(groups):
        key = "any" if depth % 2 == 0 else "all"
        when = {key: [when, {"hours_since_procedure": {"at_least": 0}}]}
    return when


def write(pack_dir: Path, name: str, section: str, items: list[dict[str, Any]]) -> None:
    (pack_dir / name).write_text(yaml.safe_dump({section: items}, sort_keys=False),
                                 encoding="utf-8")


def explanation_for(when: dict[str, Any]) -> str:
    return "Hours {hours_since_procedure}, chills {chills}; 0 hours or more."


def _thresholds(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "at_least"] + \
            [t for k, v in node.items() if k != "at_least" for t in _thresholds(v)]
    if isinstance(node, list):
        return [t for item in node for t in _thresholds(item)]
    return []


def test_any_with_many_alternatives_is_refused_naming_the_rule(pack_copy: Path) -> None:
    write(pack_copy, "wide.yaml", "rules", [report_rule("wide", any_of_hours(150))])
    error = load_error(pack_copy)
    assert_problem(error, "wide.yaml", "wide", "when", "has 150 tests",
                   f"at most {MAX_TESTS_PER_RULE}")


def test_too_many_tests_in_all_are_refused_before_the_engine_hangs(pack_copy: Path) -> None:
    # 5 rules of 110 different thresholds each: 550 tests below one node of durable_rules'
    # network, where past 512 it loops for ever instead of failing.
    write(pack_copy, "wide.yaml", "rules",
          [report_rule(f"wide-{j}", any_of_hours(110, start=1000 * j)) for j in range(5)])
    assert_problem(load_error(pack_copy), "pack", None, "rules", "tests in all",
                   f"at most {MAX_TESTS_PER_RULESET}")


def test_too_many_rules_are_refused(pack_copy: Path, pack: RulePack) -> None:
    count = MAX_RULES_PER_RULESET + 1 - len(pack.rules) - len(pack.questions)
    write(pack_copy, "many.yaml", "rules",
          [report_rule(f"many-{i}", {"chills": {"is": True}}, "Chills {chills}.")
           for i in range(count)])
    assert_problem(load_error(pack_copy), "pack", None, "rules",
                   f"{MAX_RULES_PER_RULESET + 1} rules and questions",
                   f"at most {MAX_RULES_PER_RULESET}")


def test_three_hundred_identical_rules_fail_cleanly_on_the_cli(pack_copy: Path) -> None:
    write(pack_copy, "many.yaml", "rules",
          [report_rule(f"many-{i}", {"chills": {"is": True}}, "Chills {chills}.")
           for i in range(300)])
    result = CliRunner().invoke(app, ["rules", "check", str(pack_copy)])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        line for line in result.stderr.strip().splitlines() if "at most" in line]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("groups", [MAX_GROUPS_PER_RULE + 1, 16])
def test_deep_nesting_is_refused_naming_the_rule(pack_copy: Path, groups: int) -> None:
    write(pack_copy, "deep.yaml", "rules",
          [report_rule("deep", nested(groups), explanation_for(nested(groups)))])
    assert_problem(load_error(pack_copy), "deep.yaml", "deep", "when",
                   f"has {groups} any/all/one_of groups", f"at most {MAX_GROUPS_PER_RULE}")


def test_depth_400_is_refused_without_recursion(pack_copy: Path) -> None:
    when = "{chills: {is: true}}"
    for depth in range(400):  # as flow-style text: PyYAML's dumper itself recurses
        when = f"{{{'any' if depth % 2 == 0 else 'all'}: [{when}, {{chills: {{is: true}}}}]}}"
    (pack_copy / "deep.yaml").write_text(
        "rules:\n  - id: deep\n    title: t\n    level: soon\n    explanation: Chills.\n"
        "    advice: [Call.]\n    source: {document: cancer-net-bmab, section: s, quote: q}\n"
        f"    when: {when}\n", encoding="utf-8")
    error = load_error(pack_copy)
    assert any("deep.yaml" in p.file and "nested more than" in p.message
               for p in error.problems), error


def test_a_rule_at_the_limits_compiles_and_fires(pack_copy: Path) -> None:
    # The limits are the engine's real ones: a rule exactly at both is compiled and runs.
    when = nested(MAX_GROUPS_PER_RULE)
    assert condition_groups(parse_condition(when)) == MAX_GROUPS_PER_RULE
    wide = any_of_hours(MAX_TESTS_PER_RULE - 1, start=1000)
    wide["any"].append({"chills": {"is": True}})
    write(pack_copy, "edge.yaml", "rules", [
        report_rule("at-group-limit", when, explanation_for(when)),
        report_rule("at-test-limit", wide, "Hours {hours_since_procedure}, chills "
                    "{chills}; " + ", ".join(f"{1000 + i} hours" for i in range(127)) + "."),
    ])
    engine = TriageEngine(RulePack.from_path(pack_copy))
    fired = {f.rule_id for f in engine.triage({"hours_since_procedure": 5,
                                                "chills": True}).findings}
    assert {"at-group-limit", "at-test-limit"} <= fired


def _with_rule(pack: RulePack, rule: RuleSpec) -> RulePack:
    return dataclasses.replace(pack, rules=(*pack.rules, rule))


def test_what_the_engine_still_refuses_is_a_rule_pack_error_naming_the_rule(
        pack: RulePack) -> None:
    # Built in code, past the load-time checks: one group more than the engine takes.
    when = parse_condition(nested(MAX_GROUPS_PER_RULE + 1))
    rule = RuleSpec.model_construct(
        id="too-deep", title="t", level=Urgency.SOON, when=when, when_findings=None,
        explanation="x", advice=("Call.",), reassurance=(), source=pack.rules[0].source)
    with pytest.raises(RulePackError) as info:
        TriageEngine(_with_rule(pack, rule))
    (problem,) = info.value.problems
    assert problem.rule_id == "too-deep" and problem.field == "when"
    assert "durable_rules error 113" in problem.message


def test_what_only_the_rules_together_exceed_is_a_pack_level_error(pack: RulePack) -> None:
    # Each rule alone is fine; 300 rules ending in one test exceed durable_rules' 257.
    when = parse_condition({"chills": {"is": True}})
    extra = tuple(RuleSpec.model_construct(
        id=f"same-{i}", title="t", level=Urgency.SOON, when=when, when_findings=None,
        explanation="x", advice=("Call.",), reassurance=(), source=pack.rules[0].source)
        for i in range(300))
    with pytest.raises(RulePackError) as info:
        TriageEngine(dataclasses.replace(pack, rules=(*pack.rules, *extra)))
    (problem,) = info.value.problems
    assert problem.rule_id is None and "taken together" in problem.message
    assert "durable_rules error 108" in problem.message


def test_rules_check_compiles_timeline_rules(pack_copy: Path, pack: RulePack) -> None:
    # A timeline rule past the engine's limits, built in code: rules check's compile step
    # must see it, as Timeline() would.
    when = parse_condition(nested(MAX_GROUPS_PER_RULE + 1), fields=TIMELINE_FACT_FIELDS)
    rule = TimelineRuleSpec.model_construct(
        id="too-deep-timeline", title="t", level=Urgency.SOON, when=when, explanation="x",
        advice=("Call.",), source=pack.timeline_rules[0].source)
    built = dataclasses.replace(pack, timeline_rules=(*pack.timeline_rules, rule))
    TriageEngine(built)  # the report rules alone are fine
    with pytest.raises(RulePackError) as info:
        compile_everything(built)
    assert [p.rule_id for p in info.value.problems] == ["too-deep-timeline"]


def test_wide_timeline_rule_fails_rules_check(pack_copy: Path) -> None:
    wide = {"any": [{"earlier_checkins": {"at_least": i}} for i in range(200)]}
    rule = {"id": "wide-timeline", "title": "t", "level": "soon", "when": wide,
            "explanation": "Check-ins {earlier_checkins}: " + ", ".join(map(str, range(200))),
            "advice": ["Call."],
            "source": dict(SOURCE)}
    write(pack_copy, "wide-timeline.yaml", "timeline_rules", [rule])
    result = CliRunner().invoke(app, ["rules", "check", str(pack_copy)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "wide-timeline" in lines[0] and "has 200 tests" in lines[0]


def test_the_default_pack_compiles_everything(pack: RulePack) -> None:
    compile_everything(pack)
