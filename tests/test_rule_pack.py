"""Loading rule packs: every mistake a rule author can make fails at load time, with the
file, the rule id and the field named in the message."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from marrow_triage import RulePack, RulePackError, TriageEngine, Urgency


def edit(pack_dir: Path, file: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = pack_dir / file
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=200),
                    encoding="utf-8")


def rule(data: dict[str, Any], rule_id: str) -> dict[str, Any]:
    for item in data["rules"]:
        if item["id"] == rule_id:
            return item  # type: ignore[no-any-return]
    raise KeyError(rule_id)


def load_error(pack_dir: Path) -> RulePackError:
    with pytest.raises(RulePackError) as info:
        RulePack.from_path(pack_dir)
    return info.value


def assert_problem(error: RulePackError, file: str, rule_id: str | None, field: str,
                   *message: str) -> None:
    """One problem names the file, rule and field, with the message; so does the text."""
    text = str(error)
    matches = [p for p in error.problems
               if p.file.endswith(file) and p.rule_id == rule_id and field in p.field]
    assert matches, f"no problem for {file} {rule_id} {field} in:\n{text}"
    # An edited English text may also no longer match its translation: prefer the problem
    # that says what the test expects.
    problem = next((p for p in matches if all(part in p.message for part in message)),
                   matches[0])
    for part in message:
        assert part in problem.message, (part, problem.message)
    line = str(problem)
    assert line in text
    for part in (file, field, *message):
        assert part in line
    if rule_id is not None:
        assert repr(rule_id) in line


def test_the_packaged_rules_load_from_a_copy(pack_copy: Path, pack: RulePack) -> None:
    copied = RulePack.from_path(pack_copy)
    assert copied.sha256 == pack.sha256
    assert len(copied.rules) == len(pack.rules) > 20


def test_changing_a_threshold_changes_the_sha256(pack_copy: Path, pack: RulePack) -> None:
    edit(pack_copy, "warning-signs.yaml",
         lambda d: rule(d, "fever")["when"]["temperature_c"].update(at_least=38.4))
    with pytest.raises(RulePackError):  # the explanation still states fever_c, 38.3
        RulePack.from_path(pack_copy)
    edit(pack_copy, "warning-signs.yaml",
         lambda d: rule(d, "fever")["when"]["temperature_c"].update(at_least="$fever_c"))
    edit(pack_copy, "pack.yaml", lambda d: d["parameters"]["fever_c"].update(value=38.4))
    changed = RulePack.from_path(pack_copy)
    assert changed.sha256 != pack.sha256
    engine = TriageEngine(changed)
    at = {"hours_since_procedure": 5, "temperature": {"value": 38.3, "unit": "C"}}
    # 38.3 is now below the fever threshold, and the raised band below it, which ends at
    # the same parameter, takes it: the band moves with the threshold.
    assert {f.rule_id for f in engine.triage(at).findings} == {"borderline-temperature"}
    at["temperature"] = {"value": 38.4, "unit": "C"}
    assert engine.triage(at).level is Urgency.URGENT


def test_unknown_fact_suggests_the_right_one(pack_copy: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        rule(d, "fever")["when"] = {"temprature_c": {"at_least": 38.3}}

    edit(pack_copy, "warning-signs.yaml", change)
    assert_problem(load_error(pack_copy), "warning-signs.yaml", "fever", "when.temprature_c",
                   "unknown fact", "did you mean 'temperature_c'")


@pytest.mark.parametrize(("value", "message"), [
    ("38.3", "expected a number"),
    (True, "expected a number"),
    ([38.3], "expected a number"),
    (38.1234567, "more than 6 decimal places"),
])
def test_wrong_threshold_type(pack_copy: Path, value: object, message: str) -> None:
    edit(pack_copy, "warning-signs.yaml",
         lambda d: rule(d, "fever")["when"]["temperature_c"].update(at_least=value))
    assert_problem(load_error(pack_copy), "warning-signs.yaml", "fever",
                   "when.temperature_c.at_least", message)


def test_whole_number_fact_with_a_fraction(pack_copy: Path) -> None:
    edit(pack_copy, "warning-signs.yaml",
         lambda d: rule(d, "severe-site-pain")["when"]["site_pain"].update(at_least=6.5))
    assert_problem(load_error(pack_copy), "warning-signs.yaml", "severe-site-pain",
                   "when.site_pain.at_least", "whole number")


def test_threshold_on_a_yes_no_fact(pack_copy: Path) -> None:
    edit(pack_copy, "emergencies.yaml",
         lambda d: rule(d, "chest-pain").update(when={"chest_pain": {"at_least": 1}}))
    assert_problem(load_error(pack_copy), "emergencies.yaml", "chest-pain",
                   "when.chest_pain.at_least", "numeric")


def test_unknown_enum_value_suggests_the_right_one(pack_copy: Path) -> None:
    edit(pack_copy, "warning-signs.yaml", lambda d: rule(d, "bleeding-does-not-stop")[
        "when"]["bleeding"].update(one_of=["soaks_dresing", "does_not_stop"]))
    assert_problem(load_error(pack_copy), "warning-signs.yaml", "bleeding-does-not-stop",
                   "when.bleeding.one_of", "'soaks_dresing'", "did you mean 'soaks_dressing'")


def test_unknown_test_suggests_the_right_one(pack_copy: Path) -> None:
    edit(pack_copy, "warning-signs.yaml", lambda d: rule(d, "fever").update(
        when={"temperature_c": {"at_leats": 38.3}}))
    assert_problem(load_error(pack_copy), "warning-signs.yaml", "fever",
                   "when.temperature_c.at_leats", "did you mean 'at_least'")


def test_missing_source(pack_copy: Path) -> None:
    edit(pack_copy, "warning-signs.yaml", lambda d: rule(d, "fever").pop("source"))
    assert_problem(load_error(pack_copy), "warning-signs.yaml", "fever", "source",
                   "required")


def test_missing_quote(pack_copy: Path) -> None:
    edit(pack_copy, "emergencies.yaml", lambda d: rule(d, "chest-pain")["source"].pop("quote"))
    assert_problem(load_error(pack_copy), "emergencies.yaml", "chest-pain", "source.quote",
                   "required")


def test_unknown_document_suggests_the_right_one(pack_copy: Path) -> None:
    edit(pack_copy, "warning-signs.yaml",
         lambda d: rule(d, "fever")["source"].update(document="cancer-net"))
    assert_problem(load_error(pack_copy), "warning-signs.yaml", "fever", "source.document",
                   "unknown document 'cancer-net'", "did you mean 'cancer-net-bmab'")


def test_duplicate_id_across_files(pack_copy: Path) -> None:
    fever = rule(yaml.safe_load((pack_copy / "warning-signs.yaml").read_text()), "fever")
    edit(pack_copy, "after-effects.yaml", lambda d: d["rules"].append(dict(fever)))
    error = load_error(pack_copy)
    # Files are read in name order, so the second one read reports the first.
    assert_problem(error, "warning-signs.yaml", "fever", "id", "duplicate id",
                   "after-effects.yaml")


def test_duplicate_question_id(pack_copy: Path) -> None:
    edit(pack_copy, "questions.yaml", lambda d: d["questions"].append(dict(d["questions"][0])))
    error = load_error(pack_copy)
    assert_problem(error, "questions.yaml", "ask-temperature", "id", "duplicate id")


def test_escalation_that_does_not_raise_the_level(pack_copy: Path) -> None:
    edit(pack_copy, "escalation.yaml",
         lambda d: rule(d, "multiple-amber-findings").update(level="soon"))
    assert_problem(load_error(pack_copy), "escalation.yaml", "multiple-amber-findings",
                   "when_findings.level", "must raise the level")


def test_escalation_of_a_single_finding(pack_copy: Path) -> None:
    edit(pack_copy, "escalation.yaml", lambda d: rule(d, "multiple-amber-findings")[
        "when_findings"].update(at_least=1))
    assert_problem(load_error(pack_copy), "escalation.yaml", "multiple-amber-findings",
                   "when_findings.at_least", "greater than or equal to 2")


def test_explanation_without_the_measured_value(pack_copy: Path) -> None:
    edit(pack_copy, "warning-signs.yaml", lambda d: rule(d, "fever").update(
        explanation="Temperature is at or above the fever threshold of 38.3 °C / 101 °F."))
    assert_problem(load_error(pack_copy), "warning-signs.yaml", "fever", "explanation",
                   "measured value", "{temperature_c}")


def test_explanation_without_the_threshold(pack_copy: Path) -> None:
    edit(pack_copy, "warning-signs.yaml", lambda d: rule(d, "severe-site-pain").update(
        explanation="Pain at the needle site is {site_pain}, which is severe."))
    assert_problem(load_error(pack_copy), "warning-signs.yaml", "severe-site-pain",
                   "explanation", "threshold 7")


def test_escalation_explanation_without_the_count(pack_copy: Path) -> None:
    edit(pack_copy, "escalation.yaml", lambda d: rule(d, "multiple-amber-findings").update(
        explanation="Several findings ({findings}); 2 or more are urgent."))
    assert_problem(load_error(pack_copy), "escalation.yaml", "multiple-amber-findings",
                   "explanation", "{count}")


def test_explanation_with_an_unknown_placeholder(pack_copy: Path) -> None:
    edit(pack_copy, "warning-signs.yaml", lambda d: rule(d, "fever").update(
        explanation="Temperature {temperature_c} ({temprature}) is at or above 38.3 °C."))
    assert_problem(load_error(pack_copy), "warning-signs.yaml", "fever", "explanation",
                   "unknown placeholder {temprature}")


def test_reassurance_on_a_warning_sign(pack_copy: Path) -> None:
    edit(pack_copy, "warning-signs.yaml",
         lambda d: rule(d, "fever").update(reassurance=["Nothing to worry about."]))
    assert_problem(load_error(pack_copy), "warning-signs.yaml", "fever", "reassurance",
                   "only self_care rules reassure")


def test_unknown_level(pack_copy: Path) -> None:
    edit(pack_copy, "warning-signs.yaml", lambda d: rule(d, "fever").update(level="critical"))
    assert_problem(load_error(pack_copy), "warning-signs.yaml", "fever", "level",
                   "'self_care', 'soon', 'urgent' or 'emergency'")


def test_unknown_rule_field_suggests_the_right_one(pack_copy: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        fever = rule(d, "fever")
        fever["advise"] = fever.pop("advice")

    edit(pack_copy, "warning-signs.yaml", change)
    error = load_error(pack_copy)
    assert_problem(error, "warning-signs.yaml", "fever", "advise", "did you mean 'advice'")
    assert_problem(error, "warning-signs.yaml", "fever", "advice", "required")


def test_rule_without_a_condition(pack_copy: Path) -> None:
    edit(pack_copy, "emergencies.yaml", lambda d: rule(d, "chest-pain").pop("when"))
    assert_problem(load_error(pack_copy), "emergencies.yaml", "chest-pain", "when",
                   "exactly one of")


def test_question_about_an_unknown_fact(pack_copy: Path) -> None:
    edit(pack_copy, "questions.yaml", lambda d: d["questions"][0].update(field="temprature_c"))
    assert_problem(load_error(pack_copy), "questions.yaml", "ask-temperature", "field",
                   "did you mean 'temperature_c'")


def test_yaml_syntax_error(pack_copy: Path) -> None:
    path = pack_copy / "warning-signs.yaml"
    path.write_text(path.read_text() + "\n  - id: [unclosed\n", encoding="utf-8")
    assert_problem(load_error(pack_copy), "warning-signs.yaml", None, "file",
                   "cannot be read as YAML")


def test_a_file_that_is_not_a_mapping(pack_copy: Path) -> None:
    (pack_copy / "extra.yaml").write_text("- just a list\n", encoding="utf-8")
    assert_problem(load_error(pack_copy), "extra.yaml", None, "file", "mapping")


def test_unknown_section_suggests_the_right_one(pack_copy: Path) -> None:
    (pack_copy / "extra.yaml").write_text("rule: []\n", encoding="utf-8")
    assert_problem(load_error(pack_copy), "extra.yaml", None, "rule", "did you mean 'rules'")


def test_missing_pack_yaml(pack_copy: Path) -> None:
    (pack_copy / "pack.yaml").unlink()
    assert_problem(load_error(pack_copy), "pack.yaml", None, "file", "missing")


def test_not_a_directory(tmp_path: Path) -> None:
    assert_problem(load_error(tmp_path / "nowhere"), "nowhere", None, "path",
                   "not a directory")


def test_every_problem_is_reported_at_once(pack_copy: Path) -> None:
    edit(pack_copy, "emergencies.yaml", lambda d: rule(d, "chest-pain").update(level="red"))
    edit(pack_copy, "after-effects.yaml",
         lambda d: rule(d, "mild-bruising")["when"]["bruising"].update(**{"is": "midl"}))
    error = load_error(pack_copy)
    assert_problem(error, "emergencies.yaml", "chest-pain", "level")
    assert_problem(error, "after-effects.yaml", "mild-bruising", "when.bruising.is",
                   "did you mean 'mild'")
    assert len(error.problems) == 2, str(error)


def test_an_engine_cannot_be_built_from_a_broken_pack(pack_copy: Path) -> None:
    shutil.copy(pack_copy / "warning-signs.yaml", pack_copy / "copy-of-warning-signs.yaml")
    with pytest.raises(RulePackError) as info:
        TriageEngine.from_path(pack_copy)
    assert "duplicate id" in str(info.value)
