"""`marrow-triage rules diff`: the impact of known rule changes, exactly, and its report space."""

from __future__ import annotations

import gc
import itertools
import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from marrow_triage import RulePack, TriageEngine, Urgency
from marrow_triage.adapters.cli.main import app
from marrow_triage.change import Batch, compare_engines, impact_json, report_batches
from marrow_triage.change.space import (
    boundary_classes,
    covering_rows,
    pack_thresholds,
    sample_reports,
    threshold_step,
)
from marrow_triage.pack.spec import RuleSpec

PACK_YAML = """\
name: diff-test
version: 1.0.0
documents:
  cancer-net-bmab:
    title: Bone Marrow Aspiration and Biopsy
    publisher: Cancer.Net
"""

RULES: list[dict[str, Any]] = [
    {"id": "fever", "title": "Fever", "level": "urgent",
     "when": {"temperature_c": {"at_least": 38.3}},
     "explanation": "Temperature {temperature_c} is at or above 38.3 °C.",
     "advice": ["Call your care team now."],
     "source": {"document": "cancer-net-bmab", "section": "S",
                "quote": "Fever of 101 degrees Fahrenheit/38.3 degrees Celsius or higher"}},
    {"id": "raised", "title": "Raised temperature", "level": "soon",
     "when": {"temperature_c": {"at_least": 38.0, "below": 38.3}},
     "explanation": "Temperature {temperature_c} is from 38.0 °C up to 38.3 °C.",
     "advice": ["Check again in an hour."],
     "source": {"document": "cancer-net-bmab", "section": "S", "quote": "q"}},
    {"id": "redness", "title": "Redness", "level": "soon",
     "when": {"site_redness": {"is": True}},
     "explanation": "Redness ({site_redness}).",
     "advice": ["Contact your care team within 24 hours."],
     "source": {"document": "cancer-net-bmab", "section": "S", "quote": "q"}},
]


def write_pack(path: Path, rules: list[dict[str, Any]]) -> Path:
    path.mkdir(parents=True)
    (path / "pack.yaml").write_text(PACK_YAML, encoding="utf-8")
    # Through JSON, so shared objects are written out, not as the YAML aliases rule
    # files refuse.
    plain = json.loads(json.dumps({"rules": rules}))
    (path / "rules.yaml").write_text(yaml.safe_dump(plain, sort_keys=False,
                                                    allow_unicode=True), encoding="utf-8")
    return path


def changed(rule_id: str, **fields: Any) -> list[dict[str, Any]]:
    return [{**r, **fields} if r["id"] == rule_id else r for r in RULES]


def C(value: float) -> dict[str, Any]:
    return {"hours_since_procedure": 30, "temperature": {"value": value, "unit": "C"}}


def F(value: float) -> dict[str, Any]:
    return {"hours_since_procedure": 30, "temperature": {"value": value, "unit": "F"}}


REPORTS = [C(37.99), C(38.0), C(38.29), C(38.3), C(38.39), C(38.4), F(100.93), F(100.94),
           {"hours_since_procedure": 30, "site_redness": True},
           {"hours_since_procedure": 30, "site_swelling": True},
           {**C(38.3), "site_redness": True}]


@pytest.fixture
def old_pack(tmp_path: Path) -> Path:
    return write_pack(tmp_path / "old", RULES)


def impact_of(old: Path, new_rules: list[dict[str, Any]], tmp_path: Path) -> Any:
    new = write_pack(tmp_path / "new", new_rules)
    batch = Batch("hand-picked", REPORTS, len(REPORTS))
    return compare_engines(TriageEngine.from_path(old), TriageEngine.from_path(new), [batch])


def transitions(impact: Any) -> dict[tuple[str, str], dict[tuple[Any, ...], int]]:
    return {(str(t.old), str(t.new)): {(c.added, c.removed, c.relevelled): c.count
                                       for c in t.causes.values()}
            for t in impact.transitions.values()}


def test_threshold_moved(old_pack: Path, tmp_path: Path) -> None:
    impact = impact_of(old_pack, changed(
        "fever", when={"temperature_c": {"at_least": 38.4}},
        explanation="Temperature {temperature_c} is at or above 38.4 °C."), tmp_path)
    # 38.3, 38.39 and 100.94 °F were fever; now they are neither fever nor raised (a gap);
    # 38.3 °C with redness keeps the redness finding.
    assert transitions(impact) == {("urgent", "self_care"): {((), ("fever",), ()): 3},
                                   ("urgent", "soon"): {((), ("fever",), ()): 1}}
    cause = impact.transitions[Urgency.URGENT, Urgency.SELF_CARE].causes[((), ("fever",), ())]
    assert cause.example == C(38.3)  # the smallest of the three
    assert impact.lower == 4 and impact.higher == 0 and impact.exit_code == 3
    assert {r.rule_id: (r.more, r.fewer) for r in impact.firing.values()} == {"fever": (0, 4)}
    assert impact.total == len(REPORTS)
    [definition] = impact.definitions
    assert definition.rule_id == "fever" and "38.3 → temperature_c is at least 38.4" in \
        definition.detail


def test_level_lowered(old_pack: Path, tmp_path: Path) -> None:
    impact = impact_of(old_pack, changed("raised", level="self_care"), tmp_path)
    assert transitions(impact) == {
        ("soon", "self_care"): {((), (), ("raised: soon → self_care",)): 3}}
    assert impact.exit_code == 3


def test_rule_added(old_pack: Path, tmp_path: Path) -> None:
    swelling = {**RULES[2], "id": "swelling", "title": "Swelling",
                "when": {"site_swelling": {"is": True}},
                "explanation": "Swelling ({site_swelling})."}
    impact = impact_of(old_pack, [*RULES, swelling], tmp_path)
    assert transitions(impact) == {("self_care", "soon"): {(("swelling",), (), ()): 1}}
    assert impact.exit_code == 1
    assert [d.parts for d in impact.definitions] == [("added",)]


def test_wording_only_change(old_pack: Path, tmp_path: Path) -> None:
    impact = impact_of(old_pack, changed(
        "fever", explanation="Your temperature {temperature_c} reaches 38.3 °C: a fever."),
        tmp_path)
    assert impact.transitions == {} and impact.firing == {}
    assert impact.exit_code == 0
    change = impact.text[("fever", "explanation", "en")]
    assert change.count == 5  # 38.3, 38.39, 38.4, 100.94 °F and 38.3 with redness
    assert change.example == C(38.3)
    assert change.old_text == "Temperature 38.3 °C (100.9 °F) is at or above 38.3 °C."
    assert change.new_text == "Your temperature 38.3 °C (100.9 °F) reaches 38.3 °C: a fever."
    assert set(impact.text) == {("fever", "explanation", "en")}


def test_no_change(old_pack: Path, tmp_path: Path) -> None:
    impact = impact_of(old_pack, RULES, tmp_path)
    assert (impact.transitions, impact.firing, impact.text, impact.definitions) == \
        ({}, {}, {}, [])
    assert impact.exit_code == 0


def test_forked_workers_give_the_same_impact(old_pack: Path, tmp_path: Path) -> None:
    new = write_pack(tmp_path / "new", changed(
        "fever", when={"temperature_c": {"at_least": 38.4}},
        explanation="Temperature {temperature_c} is at or above 38.4 °C."))
    engines = TriageEngine.from_path(old_pack), TriageEngine.from_path(new)
    batches = report_batches([e.pack for e in engines], samples=3000, seed=7)
    one = compare_engines(*engines, batches)
    two = compare_engines(*engines, report_batches([e.pack for e in engines], samples=3000,
                                                   seed=7), workers=2)
    assert impact_json(one) == impact_json(two)
    assert one.total == 3000 + batches[0].count
    assert one.lower > 0


def test_a_comparison_gives_back_the_collector_as_it_was(old_pack: Path,
                                                         tmp_path: Path) -> None:
    """Full collections are deferred while comparing (a third of a long run's time): the
    thresholds are the caller's again afterwards, also when the comparison fails."""
    before = gc.get_threshold()
    engines = TriageEngine.from_path(old_pack), TriageEngine.from_path(old_pack)
    seen: list[tuple[int, int, int]] = []

    def progress(done: int, total: int) -> None:
        seen.append(gc.get_threshold())

    compare_engines(*engines, [Batch("hand-picked", REPORTS, len(REPORTS))],
                    progress=progress)
    assert seen and all(during[2] > before[2] for during in seen)
    assert gc.get_threshold() == before

    def fail(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        compare_engines(*engines, [Batch("hand-picked", REPORTS, len(REPORTS))],
                        progress=fail)
    assert gc.get_threshold() == before


# --- the command ------------------------------------------------------------------

def diff(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["rules", "diff", "--samples", "200", "--workers", "1",
                                      *args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_exit_codes_and_outputs(old_pack: Path, tmp_path: Path) -> None:
    raised_threshold = write_pack(tmp_path / "moved", changed(
        "fever", when={"temperature_c": {"at_least": 38.4}},
        explanation="Temperature {temperature_c} is at or above 38.4 °C."))
    code, out, _ = diff(str(old_pack), str(raised_threshold))
    assert code == 3
    assert "urgent → self_care" in out and "rule fever no longer fires" in out
    assert "boundary classes of" in out and "pairwise" in out and "200 sampled (seed 0)" in out
    assert "possible under-triage" in out
    code, out, _ = diff(str(raised_threshold), str(old_pack), "--json")
    assert code == 1
    data = json.loads(out)
    assert data["exit_code"] == 1 and data["lower"] == 0 and data["higher"] > 0
    assert {(t["old"], t["new"]) for t in data["transitions"]} == {("self_care", "urgent"),
                                                                   ("soon", "urgent")}
    code, out, _ = diff(str(old_pack), str(old_pack), "--markdown")
    assert code == 0
    assert out.startswith("## Impact of the rule change") and "No report changes level." in out


def test_cli_reports_file(old_pack: Path, tmp_path: Path) -> None:
    lowered = write_pack(tmp_path / "lowered", changed("redness", level="self_care"))
    reports = tmp_path / "reports.ndjson"
    reports.write_text("\n".join(json.dumps(r) for r in REPORTS) + "\n\n", encoding="utf-8")
    code, out, _ = diff(str(old_pack), str(lowered), "--reports", str(reports), "--json")
    assert code == 3
    data = json.loads(out)
    assert data["reports"]["sources"][-1] == {"label": "from reports.ndjson",
                                              "count": len(REPORTS)}
    assert "redness: soon → self_care" in data["transitions"][0]["causes"][0][
        "rules_relevelled"]


@pytest.mark.parametrize(("content", "message"), [
    ('{"hours_since_procedure": 3}\n{"hours_since_procedure": 3, "site_pian": 2}\n',
     "reports.ndjson:2: site_pian: Extra inputs are not permitted (did you mean 'site_pain'?)"),
    ('{"hours_since_procedure": 3}\nnot json\n', "reports.ndjson:2: input: Invalid JSON"),
    # A fever hidden by a second "temperature" key must not reach the diff as 36.5 °C.
    ('{"hours_since_procedure": 3, "temperature": {"value": 38.5, "unit": "C"}, '
     '"temperature": {"value": 36.5, "unit": "C"}}\n', "reports.ndjson:1: temperature"),
])
def test_cli_bad_reports_exit_2_naming_line_and_field(old_pack: Path, tmp_path: Path,
                                                      content: str, message: str) -> None:
    reports = tmp_path / "reports.ndjson"
    reports.write_text(content, encoding="utf-8")
    code, out, err = diff(str(old_pack), str(old_pack), "--reports", str(reports))
    assert code == 2 and out == ""
    assert message in err


def test_cli_bad_pack_exits_2(old_pack: Path, tmp_path: Path) -> None:
    code, _, err = diff(str(old_pack), str(tmp_path / "nowhere"))
    assert code == 2 and "new pack" in err and "is not a directory" in err
    code, _, err = diff("packaged", str(old_pack), "--json", "--markdown")
    assert code == 2 and "choose one" in err


def test_cli_packaged_against_itself(rules_dir: Path) -> None:
    """With the default workers (forked processes on this machine) and sample."""
    result = CliRunner().invoke(app, ["rules", "diff", "packaged", str(rules_dir),
                                      "--samples", "3000"])
    assert result.exit_code == 0, result.output
    assert "No report changes level." in result.stdout
    assert "+ 3,000 sampled (seed 0)" in result.stdout


# --- the report space -------------------------------------------------------------

def test_boundary_classes_hold_both_sides_of_each_threshold_in_both_units(
        pack: RulePack) -> None:
    fields = {f.field: f.values for f in boundary_classes([pack])}
    temperatures = {(t["value"], t["unit"]) for t in fields["temperature"] if t is not None}
    assert {(38.29, "C"), (38.3, "C"), (38.31, "C"), (100.93, "F"), (100.94, "F"),
            (100.95, "F"), (37.99, "C"), (38, "C"), (100.39, "F"), (100.4, "F")} <= temperatures
    assert None in fields["temperature"] and None not in fields["hours_since_procedure"]
    assert {71.99, 72, 72.01} <= set(fields["hours_since_procedure"])
    assert {6, 7, 8} <= set(fields["site_pain"]) and None in fields["site_pain"]


def rule_with(field: str, op: str, value: float) -> RuleSpec:
    return RuleSpec.model_validate({
        "id": "generated", "title": "G", "level": "soon", "when": {field: {op: value}},
        "explanation": "x", "advice": ["a"],
        "source": {"document": "d", "section": "s", "quote": "q"}})


def in_memory_pack(rules: list[RuleSpec]) -> RulePack:
    return RulePack(name="generated", version="1.0.0", description="", documents={},
                    rules=tuple(rules), questions=(), sha256="0" * 64)


THRESHOLD = st.tuples(
    st.sampled_from([("temperature_c", 30, 45, 2), ("hours_since_procedure", 0, 8760, 2),
                     ("site_pain", 0, 10, 0), ("back_or_abdominal_pain", 0, 10, 0)]),
    st.sampled_from(["at_least", "below"]),
    st.integers(0, 10**6),
)


def _value(spec: tuple[tuple[str, int, int, int], str, int]) -> tuple[str, str, float]:
    (field, low, high, places), op, seed = spec
    scale = 10**places
    value = Fraction(low * scale + seed % ((high - low) * scale + 1), scale)
    return field, op, float(value) if places else int(value)


@settings(max_examples=40)
@given(st.lists(THRESHOLD, min_size=1, max_size=4), st.lists(THRESHOLD, min_size=1, max_size=4))
def test_boundary_classes_include_every_threshold_of_both_packs(
        old: list[Any], new: list[Any]) -> None:
    packs = [in_memory_pack([rule_with(*_value(t)) for t in side]) for side in (old, new)]
    fields = {f.field: f.values for f in boundary_classes(packs)}
    for field, thresholds in pack_thresholds(packs).items():
        report_field = "temperature" if field == "temperature_c" else field
        values = fields[report_field]
        numbers = {Fraction(str(v["value"] if isinstance(v, dict) else v)) for v in values
                   if v is not None and (not isinstance(v, dict) or v["unit"] == "C")}
        low, high = min(numbers), max(numbers)
        for threshold in thresholds:
            step = Fraction(1) if field.endswith("pain") else threshold_step(threshold)
            for point in (threshold - step, threshold, threshold + step):
                if low <= point <= high:
                    assert point in numbers, (field, point)
        if field == "temperature_c":  # the lowest °F reading at or above each threshold
            fahrenheit = {Fraction(str(v["value"])) for v in values
                          if isinstance(v, dict) and v["unit"] == "F"}
            for threshold in thresholds:
                step = threshold_step(threshold)
                at = math.ceil((threshold * Fraction(9, 5) + 32) / step) * step
                for point in (at - step, at, at + step):
                    if Fraction(86) <= point <= Fraction(113):
                        assert point in fahrenheit, (threshold, point)


@settings(max_examples=60)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=7))
def test_covering_rows_hold_every_pair(domains: list[int]) -> None:
    rows = covering_rows(domains)
    assert rows == covering_rows(domains)  # deterministic
    assert all(0 <= v < d for row in rows for v, d in zip(row, domains, strict=True))
    for a, b in itertools.combinations(range(len(domains)), 2):
        seen = {(row[a], row[b]) for row in rows}
        assert seen == set(itertools.product(range(domains[a]), range(domains[b])))
    # Far fewer rows than all combinations: within a log factor of the largest pair count.
    pairs = max([*domains, *(x * y for x, y in itertools.combinations(domains, 2))])
    assert len(rows) <= pairs * (1 + math.ceil(math.log2(len(domains))))


def test_the_pairwise_reports_hold_every_pair_of_the_packaged_classes(pack: RulePack) -> None:
    fields = boundary_classes([pack])
    [batch, *_] = report_batches([pack], samples=0)
    reports = list(batch.reports)
    names = [f.field for f in fields]
    seen: set[tuple[str, str, str, str]] = set()
    for report in reports:
        values = [json.dumps(report.get(n), sort_keys=True) for n in names]
        seen.update((names[i], values[i], names[j], values[j])
                    for i, j in itertools.combinations(range(len(names)), 2))
    for (i, a), (j, b) in itertools.combinations(enumerate(fields), 2):
        for x, y in itertools.product(a.values, b.values):
            key = (names[i], json.dumps(x, sort_keys=True), names[j], json.dumps(y, sort_keys=True))
            assert key in seen, key


def test_the_sample_is_seeded(pack: RulePack) -> None:
    fields = boundary_classes([pack])
    assert list(sample_reports(fields, 50, seed=3)) == list(sample_reports(fields, 50, seed=3))
    assert list(sample_reports(fields, 50, seed=3)) != list(sample_reports(fields, 50, seed=4))


def test_reports_by_level_are_all_reached(pack: RulePack, engine: TriageEngine) -> None:
    """The pairwise reports alone reach every level the pack can give."""
    [batch, *_] = report_batches([pack], samples=0)
    levels = {r.level for r in engine.triage_many(list(batch.reports))}
    assert levels == set(Urgency)


# --- overlays and locales -----------------------------------------------------------

def test_an_overlay_against_its_base(tmp_path: Path) -> None:
    """A site overlay lowering the fever threshold to 37.5 °C moves reports up only."""
    from test_overlays import BASE_ES, BASE_META, BASE_QUESTIONS, BASE_RULES, overlay, write_pack

    base = write_pack(tmp_path / "base", BASE_META,
                      {"rules.yaml": {"rules": BASE_RULES, "questions": BASE_QUESTIONS}},
                      {"es": BASE_ES})
    site = overlay(tmp_path / "site", {"parameters": {"fever_c": 37.5}})
    engines = TriageEngine.from_path(base), TriageEngine.from_path(site, base=base)
    batch = Batch("hand-picked", [C(37.49), C(37.5), C(38.29), C(38.3)], 4)
    impact = compare_engines(*engines, [batch], locales=["es"])
    # 38.29 °C was borderline-temperature (soon) in the base: it ends at the same fever_c.
    assert transitions(impact) == {("self_care", "urgent"): {(("fever",), (), ()): 1},
                                   ("soon", "urgent"): {(("fever",), (), ()): 1}}
    assert impact.exit_code == 1
    # Reports that were fever already keep their level; their texts show the new threshold,
    # in English and in Spanish.
    assert {(k[0], k[1], k[2]) for k in impact.text} >= {("fever", "explanation", "en"),
                                                          ("fever", "explanation", "es")}
    assert impact.text[("fever", "explanation", "es")].new_text.endswith("es de 37.5 °C o más.")
    code, out, _ = diff(str(base), str(site), "--base", str(base), "--json")
    assert code == 1 and json.loads(out)["new"]["name"] == "site"


def test_a_translation_change_is_listed_for_its_locale(tmp_path: Path) -> None:
    from test_overlays import BASE_ES, BASE_META, BASE_QUESTIONS, BASE_RULES, write_pack

    files = {"rules.yaml": {"rules": BASE_RULES, "questions": BASE_QUESTIONS}}
    old = write_pack(tmp_path / "old", BASE_META, files, {"es": BASE_ES})
    reworded = json.loads(json.dumps(BASE_ES))
    reworded["rules"]["fever"]["advice"] = ["Llame a {care_team_24h} enseguida."]
    new = write_pack(tmp_path / "new", BASE_META, files, {"es": reworded})
    impact = compare_engines(TriageEngine.from_path(old), TriageEngine.from_path(new),
                             [Batch("hand-picked", [C(38.3), C(39)], 2)], locales=["es"])
    assert impact.transitions == {} and impact.exit_code == 0
    change = impact.text[("fever", "advice", "es")]
    assert change.count == 2
    assert change.new_text.startswith("Llame a la línea de 24 horas de su equipo enseguida")
    assert not any(key[2] == "en" for key in impact.text)
