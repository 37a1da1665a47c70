"""Hostile rule packs: broken files are rejected at load, packs that load never crash.

Copies of ``rules/`` are damaged in random ways (bytes deleted, files truncated, values
swapped for other types, unknown fields, duplicate ids, unknown facts, escalation
cycles). Loading must either succeed or raise :class:`RulePackError` whose problems name
the file and the field (and the rule, when the damage is inside one); no other exception
type may escape. A damaged pack that still loads is then run on generated reports and
must give a result for every one.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marrow_triage import RulePack, RulePackError, TriageEngine, TriageResult
from report_mix import mixed_reports

RULES_DIR = Path(__file__).resolve().parents[1] / "rules"
RULE_FILES = sorted(p.name for p in RULES_DIR.glob("*.yaml"))
CONTENT_FILES = [name for name in RULE_FILES if name != "pack.yaml"]


REPORTS = [*mixed_reports(15, seed=3), {"hours_since_procedure": 0}]

# MARROW_PACK_EXAMPLES=2000 for a long local run.
fast = settings(max_examples=int(os.environ.get("MARROW_PACK_EXAMPLES", "50")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@contextmanager
def damaged_pack(name: str, content: bytes | None) -> Iterator[Path]:
    """A copy of rules/ with ``name`` replaced by ``content`` (or deleted when None)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "rules"
        shutil.copytree(RULES_DIR, root)
        if content is None:
            (root / name).unlink()
        else:
            (root / name).write_bytes(content)
        yield root


def load_or_error(root: Path) -> RulePack | RulePackError:
    """Load the pack; any exception other than RulePackError fails the test."""
    try:
        return RulePack.from_path(root)
    except RulePackError as exc:
        assert exc.problems, "a RulePackError must list its problems"
        for problem in exc.problems:
            assert problem.file, problem
            assert problem.field, problem
            assert problem.message, problem
        assert "Traceback" not in str(exc)
        return exc


def runs_on_reports(pack: RulePack) -> None:
    engine = TriageEngine(pack)
    for report in REPORTS:
        assert isinstance(engine.triage(report), TriageResult)


def _rule_data(name: str) -> dict[str, Any]:
    data = yaml.safe_load((RULES_DIR / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


# --- random byte-level damage -----------------------------------------------------------


@st.composite
def byte_damage(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(RULE_FILES))
    data = bytearray((RULES_DIR / name).read_bytes())
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.sampled_from(["delete", "truncate", "insert", "replace"]))
        at = draw(st.integers(min_value=0, max_value=max(0, len(data) - 1)))
        if kind == "delete":
            del data[at:at + draw(st.integers(min_value=1, max_value=40))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8)
                               | st.sampled_from([b":", b"- ", b"\n  ", b"{", b"[", b"!!x ",
                                                  b"&a ", b"*a", b"\t", b"'", b'"']))
        else:
            data[at:at + 1] = draw(st.sampled_from([b"0", b"x", b":", b" ", b"\xff", b"-"]))
    return name, bytes(data)


def rejected_cleanly_or_runs(name: str, content: bytes) -> None:
    """Load the pack with ``name`` damaged to ``content``: a RulePackError naming the file,
    or a pack that runs on reports."""
    with damaged_pack(name, content) as root:
        outcome = load_or_error(root)
    if isinstance(outcome, RulePackError):
        # The damaged file is named; damage to pack.yaml (e.g. a document id) may show up
        # instead in the rules that cite it.
        assert name == "pack.yaml" or any(name in p.file for p in outcome.problems), \
            outcome.problems
    else:
        runs_on_reports(outcome)


@fast
@given(damage=byte_damage())
def test_byte_damaged_pack_is_rejected_cleanly_or_runs(damage: tuple[str, bytes]) -> None:
    name, content = damage
    rejected_cleanly_or_runs(name, content)


# --- structural damage ------------------------------------------------------------------

ODD_VALUES = [None, True, False, 0, -1, 1.5, 10**30, float("nan"), float("inf"), "", "38.3",
              "x" * 300, [], [1, 2], {}, {"a": 1}, {"at_least": "high"}, ["fever"]]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _set(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = node
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    return node


@st.composite
def structural_damage(draw: st.DrawFn) -> tuple[str, Any]:
    name = draw(st.sampled_from(RULE_FILES))
    data = copy.deepcopy(_rule_data(name))
    paths = list(_paths(data))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(paths))
        kind = draw(st.sampled_from(["swap", "unknown-field", "delete"]))
        try:
            target = data
            for part in path:
                target = target[part]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this path
        if kind == "swap":
            try:
                data = _set(data, path, draw(st.sampled_from(ODD_VALUES)))
            except TypeError:
                continue  # an earlier swap made a parent a string (indexable, not writable)
        elif kind == "unknown-field" and isinstance(target, dict):
            target[draw(st.sampled_from(["levle", "threshold", "when_finding", "notes",
                                         "temprature_c", "is_", "x"]))] = 1
        elif kind == "delete" and path and isinstance(target, dict | list | str | int):
            parent = data
            for part in path[:-1]:
                parent = parent[part]
            del parent[path[-1]]
    return name, data


@fast
@given(damage=structural_damage())
def test_structurally_damaged_pack_is_rejected_cleanly_or_runs(damage: tuple[str, Any]) -> None:
    name, data = damage
    content = yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode("utf-8")
    rejected_cleanly_or_runs(name, content)


# --- named kinds of damage: file, rule and field are all named --------------------------


def _load_with(name: str, data: Any) -> RulePackError:
    content = yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode("utf-8")
    with damaged_pack(name, content) as root, pytest.raises(RulePackError) as info:
        RulePack.from_path(root)
    return info.value


def _problem(error: RulePackError, rule_id: str, field_part: str) -> None:
    matches = [p for p in error.problems
               if p.rule_id == rule_id and field_part in p.field and p.file.endswith(".yaml")]
    assert matches, error.problems


def test_unknown_field_in_a_rule() -> None:
    data = _rule_data("warning-signs.yaml")
    data["rules"][0]["severity"] = "high"
    error = _load_with("warning-signs.yaml", data)
    _problem(error, data["rules"][0]["id"], "severity")
    assert "warning-signs.yaml" in str(error)


def test_duplicate_id_within_a_file() -> None:
    data = _rule_data("warning-signs.yaml")
    data["rules"].append(copy.deepcopy(data["rules"][0]))
    _problem(_load_with("warning-signs.yaml", data), data["rules"][0]["id"], "id")


def test_duplicate_id_across_files() -> None:
    data = _rule_data("after-effects.yaml")
    clash = _rule_data("warning-signs.yaml")["rules"][0]
    data["rules"].append(copy.deepcopy(clash))
    error = _load_with("after-effects.yaml", data)
    _problem(error, clash["id"], "id")
    assert "warning-signs.yaml" in str(error) and "after-effects.yaml" in str(error)


def test_condition_on_an_unknown_fact() -> None:
    data = _rule_data("warning-signs.yaml")
    rule = data["rules"][0]
    rule["when"] = {"temprature_c": {"at_least": 38.3}}
    error = _load_with("warning-signs.yaml", data)
    _problem(error, rule["id"], "temprature_c")
    assert "temperature_c" in str(error)  # did you mean


@pytest.mark.parametrize("threshold", ["38.3", "high", None, [38.3], {"c": 38}, True,
                                       float("nan"), float("inf"), 10**30, 38.1234567])
def test_threshold_of_the_wrong_type(threshold: Any) -> None:
    data = _rule_data("warning-signs.yaml")
    rule = data["rules"][0]
    rule["when"] = {"temperature_c": {"at_least": threshold}}
    _problem(_load_with("warning-signs.yaml", data), rule["id"], "temperature_c")


def test_enum_value_that_does_not_exist() -> None:
    data = _rule_data("warning-signs.yaml")
    rule = next(r for r in data["rules"] if "bleeding" in r.get("when", {}))
    rule["when"] = {"bleeding": {"one_of": ["heavy", "does_not_stop"]}}
    _problem(_load_with("warning-signs.yaml", data), rule["id"], "bleeding")


@pytest.mark.parametrize("level", ["urgent", "soon"])
def test_escalation_counting_its_own_level_is_a_cycle(level: str) -> None:
    data = _rule_data("escalation.yaml")
    rule = data["rules"][0]
    rule["level"] = level
    rule["when_findings"] = {"level": level, "at_least": 2}
    error = _load_with("escalation.yaml", data)
    _problem(error, rule["id"], "when_findings")
    assert "cycle" in str(error)


def test_escalation_counting_a_higher_level_is_a_cycle() -> None:
    data = _rule_data("escalation.yaml")
    rule = data["rules"][0]
    rule["level"] = "soon"
    rule["when_findings"] = {"level": "urgent", "at_least": 2}
    _problem(_load_with("escalation.yaml", data), rule["id"], "when_findings")


def test_truncated_file_names_the_file() -> None:
    text = (RULES_DIR / "warning-signs.yaml").read_bytes()
    with damaged_pack("warning-signs.yaml", text[: len(text) // 3]) as root:
        outcome = load_or_error(root)
    assert isinstance(outcome, RulePackError)
    assert any("warning-signs.yaml" in p.file for p in outcome.problems)


def test_not_utf8_and_not_a_mapping() -> None:
    for content in (b"\xff\xfe\x00\x01", b"- just\n- a list\n", b"42", b"", b"rules: 7\n",
                    b"rules:\n  - 1\n  - [2]\n", b"questions: {a: 1}\n"):
        with damaged_pack("warning-signs.yaml", content) as root:
            outcome = load_or_error(root)
        assert isinstance(outcome, RulePackError), content
        assert any("warning-signs.yaml" in p.file for p in outcome.problems), content


def test_missing_pack_yaml() -> None:
    with damaged_pack("pack.yaml", None) as root:
        outcome = load_or_error(root)
    assert isinstance(outcome, RulePackError)
    assert any("pack.yaml" in p.file for p in outcome.problems)


def test_yaml_bombs_and_tags_are_rejected() -> None:
    bomb = b'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + b"".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
        f"*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
        f"*{chr(97 + i)}]\n".encode() for i in range(6))
    for content in (bomb, b"rules: !!python/object/apply:os.system ['true']\n"):
        with damaged_pack("warning-signs.yaml", content) as root:
            outcome = load_or_error(root)
        assert isinstance(outcome, RulePackError)


def test_the_shipped_pack_still_loads_and_runs() -> None:
    runs_on_reports(RulePack.from_path(RULES_DIR))
