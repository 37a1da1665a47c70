"""Pack texts are templates of plain ``{name}`` placeholders only (issue 13, item 5).

A format spec such as ``{site_pain:>300000000}`` used to pass ``rules check`` and then,
when the rule fired, take 1.19 GB and end in "internal error" (CLI exit 1, HTTP 500).
Such templates are refused at load, naming file, rule and field, and rendering never
interprets them even in a pack built in code.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from marrow_triage import RulePack, RulePackError, TriageEngine
from marrow_triage.adapters.cli.main import app
from marrow_triage.pack.spec import RuleSpec
from marrow_triage.pack.templates import Template, check_template, placeholders, render
from test_rule_pack import assert_problem, edit, load_error, rule

NOT_PLAIN = [
    ("{site_pain:d}", "format spec"),
    ("{site_pain:>300000000}", "format spec"),
    ("{site_pain!r}", "conversion"),
    ("{site_pain!s:>10}", "conversion"),
    ("{site_pain.real}", "attribute or index"),
    ("{site_pain[0]}", "attribute or index"),
    ("{site_pain.__class__.__mro__}", "attribute or index"),
    ("{}", "positional"),
    ("{0}", "positional"),
    ("{site_pain:{site_pain}}", "format spec"),
    ("pain {site_pain", "bad template"),
    ("pain } here", "bad template"),
]
SEVERE = ("Pain at the needle site is {site_pain}, at or above {severe_pain}/10 on the 0 to 10 "
          "scale. ")


@pytest.mark.parametrize(("placeholder", "message"), NOT_PLAIN)
def test_explanation_placeholder_that_is_not_plain_is_refused_at_load(
        pack_copy: Path, placeholder: str, message: str) -> None:
    edit(pack_copy, "warning-signs.yaml", lambda d: rule(d, "severe-site-pain").update(
        explanation=SEVERE + placeholder))
    assert_problem(load_error(pack_copy), "warning-signs.yaml", "severe-site-pain",
                   "explanation", message)


@pytest.mark.parametrize(("file", "rule_id", "field", "change"), [
    ("warning-signs.yaml", "fever", "advice.0",
     lambda r: r.update(advice=["Call now {temperature_c:>99999999}"])),
    ("after-effects.yaml", "site-soreness", "reassurance.0",
     lambda r: r.update(reassurance=["It is fine {site_pain!r}"])),
    ("timeline.yaml", "site-pain-rising", "explanation",
     lambda r: r.update(explanation=r["explanation"] + " {site_pain_rises:d}")),
    ("timeline.yaml", "site-pain-rising", "advice.0",
     lambda r: r.update(advice=["Call {site_pain[0]}"])),
])
def test_every_pack_text_is_held_to_plain_placeholders(
        pack_copy: Path, file: str, rule_id: str, field: str, change: Any) -> None:
    section = "timeline_rules" if file == "timeline.yaml" else "rules"

    def apply(data: dict[str, Any]) -> None:
        change(next(r for r in data[section] if r["id"] == rule_id))
    edit(pack_copy, file, apply)
    assert_problem(load_error(pack_copy), file, rule_id, field, "only plain {name}")


def test_question_text_is_held_to_plain_placeholders(pack_copy: Path) -> None:
    edit(pack_copy, "questions.yaml", lambda d: d["questions"][0].update(
        text="Temperature? {temperature_c:>9999999}"))
    assert_problem(load_error(pack_copy), "questions.yaml", "ask-temperature", "text",
                   "format spec")


def test_patient_text_placeholder_that_nothing_fills_is_refused(pack_copy: Path) -> None:
    # Advice is shown as written: a {name} there would reach the patient with its braces.
    edit(pack_copy, "warning-signs.yaml", lambda d: rule(d, "fever").update(
        advice=["Your temperature is {temperature_c}; call now."]))
    assert_problem(load_error(pack_copy), "warning-signs.yaml", "fever", "advice",
                   "unknown placeholder {temperature_c}")


def test_literal_braces_are_written_doubled(pack_copy: Path) -> None:
    edit(pack_copy, "warning-signs.yaml", lambda d: rule(d, "severe-site-pain").update(
        explanation=SEVERE + "(scale {{0-10}})"))
    engine = TriageEngine(RulePack.from_path(pack_copy))
    found = engine.triage({"hours_since_procedure": 5, "site_pain": 8}).findings
    assert found[0].explanation.endswith("(scale {0-10})")


def test_cli_rules_check_exits_2_with_one_line_per_problem(pack_copy: Path) -> None:
    # English only: a translation of a broken text is reported again against its locale file.
    shutil.rmtree(pack_copy / "locales")
    edit(pack_copy, "warning-signs.yaml", lambda d: rule(d, "severe-site-pain").update(
        explanation=SEVERE + "{site_pain:>300000000}"))
    edit(pack_copy, "after-effects.yaml", lambda d: rule(d, "site-soreness").update(
        explanation="{site_pain!r} at least 1/10 and below 7/10"))
    result = CliRunner().invoke(app, ["rules", "check", str(pack_copy)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert any("severe-site-pain" in line and "explanation" in line for line in lines)
    assert any("site-soreness" in line and "explanation" in line for line in lines)
    assert "Traceback" not in result.output


def _pack_with_explanation(pack: RulePack, rule_id: str, explanation: str) -> RulePack:
    """The pack with one explanation replaced, skipping validation (as code could)."""
    rules = tuple(
        RuleSpec.model_construct(**{**dict(r), "explanation": explanation})
        if r.id == rule_id else r for r in pack.rules)
    return dataclasses.replace(pack, rules=rules)


@pytest.mark.parametrize("placeholder", ["{site_pain:d}", "{site_pain:>3000000}",
                                         "{site_pain.__class__}", "{site_pain[0]}",
                                         "{no_such_fact}", "{0}", "{site_pain"])
def test_rendering_never_interprets_a_template_that_bypassed_the_checks(
        pack: RulePack, placeholder: str) -> None:
    built = _pack_with_explanation(pack, "severe-site-pain", SEVERE + placeholder)
    engine = TriageEngine(built)
    for pain in (9, 8, 9):  # the cached finding of 9/10 must not be shown for 8/10
        result = engine.triage({"hours_since_procedure": 5, "site_pain": pain})
        explanation = next(f.explanation for f in result.findings
                           if f.rule_id == "severe-site-pain")
        assert explanation.startswith(f"Pain at the needle site is {pain}/10")
        assert len(explanation) < 300
        assert placeholder in explanation  # left as written, never formatted


def test_template_helpers() -> None:
    assert placeholders("{a} and {b} and {a} {{c}}") == ["a", "b"]
    assert check_template("plain {a}") == "plain {a}"
    assert render("{a} {{x}} {b}", {"a": "1"}.get) == "1 {x} {b}"
    with pytest.raises(ValueError, match="format spec"):
        check_template("{a:d}")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(["{", "}", "{{", "}}", "{a}", "{b}", "{a:d}", "{0}",
                                           "{ a}", "{a.b}", "x", " "]),
                          st.text(max_size=3)), max_size=12).map("".join),
       st.dictionaries(st.sampled_from(["a", "b", "c"]), st.text(max_size=4)))
def test_a_compiled_template_renders_exactly_as_render(template: str,
                                                       values: dict[str, str]) -> None:
    """Explanations are rendered from templates split once; the text must be the one
    render gives, braces, unknown names and non-plain placeholders included."""
    assert Template(template).render(values.get) == render(template, values.get)


def test_a_valid_pack_error_is_a_rule_pack_error(pack_copy: Path) -> None:
    edit(pack_copy, "warning-signs.yaml", lambda d: rule(d, "fever").update(
        explanation="{temperature_c:>5} 38.3"))
    with pytest.raises(RulePackError) as info:
        RulePack.from_path(pack_copy)
    assert all(p.file for p in info.value.problems)
