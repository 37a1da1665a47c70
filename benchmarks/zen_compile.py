"""Compile a marrow_triage rule pack into a GoRules zen-engine JDM decision graph.

The same rule files (loaded and type-checked by :class:`marrow_triage.RulePack`) become:

    input -> facts (expression node: temperature in °C from the °C/°F reading)
          -> rules (decision table, hit policy "collect": one row per rule/question)
          -> counts (expression node: findings per level)
          -> escalations (decision table, collect: one row per escalation rule)
          -> output

Each row's input cell is a full zen expression over the report's JSON fields, written
from the rule's typed condition (``at_least`` -> ``>=``, ``one_of`` -> ``in [...]``,
``missing`` -> ``== null``). zen evaluates numbers as decimals, so thresholds are exact.
Escalations run one layer (the shipped pack has one escalation rule, counting ``soon``);
a pack whose escalations feed each other would need one more table per layer.

    python benchmarks/zen_compile.py [RULES_DIR]   # prints the JDM JSON
"""

from __future__ import annotations

import itertools
import json
import sys
from decimal import Decimal
from fractions import Fraction
from typing import Any

from marrow_triage import RulePack, Urgency
from marrow_triage.engine.encode import question_key, unconditional_questions
from marrow_triage.pack.conditions import AllOf, AnyOf, Condition, FieldTest

__all__ = ["compile_jdm", "zen_level"]

LEVELS = [level.value for level in Urgency]


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Fraction):
        return str(Decimal(value.numerator) / Decimal(value.denominator))
    if isinstance(value, int):
        return str(value)
    raise TypeError(f"cannot write {value!r} as a zen literal")


def _expr(condition: Condition) -> str:
    if isinstance(condition, AllOf):
        return "(" + " and ".join(_expr(part) for part in condition.parts) + ")"
    if isinstance(condition, AnyOf):
        return "(" + " or ".join(_expr(part) for part in condition.parts) + ")"
    assert isinstance(condition, FieldTest)
    name = condition.field
    if condition.op == "missing":
        return f"({name} == null)" if condition.value else f"({name} != null)"
    if condition.op == "at_least":
        return f"({name} != null and {name} >= {_literal(condition.value)})"
    if condition.op == "below":
        return f"({name} != null and {name} < {_literal(condition.value)})"
    if condition.op == "is":
        return f"({name} == {_literal(condition.value)})"
    assert isinstance(condition.value, tuple)
    return f"({name} in [{', '.join(_literal(v) for v in condition.value)}])"


def _node(node_id: str, kind: str, name: str, content: Any = None) -> dict[str, Any]:
    node: dict[str, Any] = {"id": node_id, "type": kind, "name": name,
                            "position": {"x": 0, "y": 0}}
    if content is not None:
        node["content"] = content
    return node


def _table(rows: list[tuple[str, str, str, str]]) -> dict[str, Any]:
    """A collect table: each row is (condition expression, kind, id, level)."""
    return {
        "hitPolicy": "collect",
        "passThrough": True,
        "inputs": [{"id": "cond", "name": "Condition"}],
        "outputs": [{"id": "kind", "name": "Kind", "field": "kind"},
                    {"id": "rid", "name": "Id", "field": "id"},
                    {"id": "lvl", "name": "Level", "field": "level"}],
        "rules": [{"_id": f"r{i}", "cond": expr, "kind": json.dumps(kind), "rid": json.dumps(rid),
                   "lvl": json.dumps(level)} for i, (expr, kind, rid, level) in enumerate(rows)],
    }


def compile_jdm(pack: RulePack) -> dict[str, Any]:
    """The JDM decision graph for ``pack``."""
    report_rules = [r for r in pack.rules if r.when is not None]
    escalations = [r for r in pack.rules if r.when_findings is not None]
    rows = [(_expr(r.when), "rule", r.id, r.level.value) for r in report_rules
            if r.when is not None]
    # As the engine does: one row per rule an answer to the question could fire, except
    # the keys that hold whenever the field is unanswered, which the caller reads from
    # the report in both engines (encode.unconditional_questions).
    read_from_report = {key for keys in unconditional_questions(pack).values() for key in keys}
    for question in pack.questions_to_ask:
        for rule_id, rest in pack.raising_answers(question.field).items():
            if question_key(question.id, rule_id) in read_from_report:
                continue
            expr = f"({question.field} == null)"
            if question.when is not None:
                expr = f"({expr} and {_expr(question.when)})"
            if not isinstance(rest, bool):
                expr = f"({expr} and {_expr(rest)})"
            rows.append((expr, "question", f"{question.id}@{rule_id}", ""))
    counts = [{"id": f"c{i}", "key": f"n_{lv}",
               "value": f'count(hits, #.level == "{lv}")'}
              for i, lv in enumerate(LEVELS)]
    escalation_rows = []
    for rule in escalations:
        assert rule.when_findings is not None
        escalation_rows.append((f"n_{rule.when_findings.level.value} >= "
                                f"{rule.when_findings.at_least}", "rule", rule.id,
                                rule.level.value))
    facts = [
        {"id": "f0", "key": "temperature_c",
         "value": 'temperature == null ? null : (temperature.unit == "F" ? '
                  "(temperature.value - 32) * 5 / 9 : temperature.value)"},
    ]
    passthrough = [f for f in _report_fields(pack) if f != "temperature_c"]
    facts += [{"id": f"p{i}", "key": f, "value": f} for i, f in enumerate(passthrough)]
    nodes = [
        _node("in", "inputNode", "report"),
        _node("facts", "expressionNode", "facts", {"expressions": facts, "passThrough": False}),
        _node("rules", "decisionTableNode", "rules", {**_table(rows), "outputPath": "hits"}),
        _node("counts", "expressionNode", "counts", {"expressions": [
            *counts,
            {"id": "h", "key": "hits", "value": "hits"}], "passThrough": False}),
        _node("esc", "decisionTableNode", "escalations",
              {**_table(escalation_rows), "outputPath": "escalated"}),
        _node("out", "outputNode", "result"),
    ]
    chain = ["in", "facts", "rules", "counts", "esc", "out"]
    edges = [{"id": f"e{i}", "sourceId": a, "targetId": b, "type": "edge"}
             for i, (a, b) in enumerate(itertools.pairwise(chain))]
    return {"contentType": "application/vnd.gorules.decision", "nodes": nodes, "edges": edges}


def _report_fields(pack: RulePack) -> list[str]:
    from marrow_triage.pack.facts import FACT_FIELDS

    return list(FACT_FIELDS)


def zen_level(pack: RulePack, output: dict[str, Any]) -> tuple[str, set[str], set[str]]:
    """(level, fired rule ids, question ids) from a zen result."""
    levels = {r.id: r.level for r in pack.rules}
    hits = list(output.get("hits") or []) + list(output.get("escalated") or [])
    rules = {h["id"] for h in hits if h["kind"] == "rule"}
    questions = {h["id"] for h in hits if h["kind"] == "question"}
    level = max((levels[r] for r in rules), default=Urgency.SELF_CARE)
    return level.value, rules, questions


if __name__ == "__main__":
    chosen = RulePack.from_path(sys.argv[1]) if len(sys.argv) > 1 else RulePack.default()
    print(json.dumps(compile_jdm(chosen), indent=2))
