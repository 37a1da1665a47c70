"""An explanation's thresholds are checked exactly against its condition (issue 11).

The check used to pass when the threshold's digits occurred anywhere in the text:
``site_pain: {at_least: 1}`` with "at or above 7/10" passed because "1" occurs in
"0 to 10", and a 38.0 °C threshold passed with "at or above ... 38.3 °C".
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from marrow_triage import RulePack, RulePackError
from marrow_triage.pack.explained_thresholds import stated_numbers, threshold_problems
from test_rule_pack import assert_problem, edit, load_error, rule


def messages(error: RulePackError, rule_id: str) -> list[str]:
    return [p.message for p in error.problems
            if p.rule_id == rule_id and p.field == "explanation"]


def test_a_threshold_stated_only_as_a_scale_digit_is_refused(pack_copy: Path) -> None:
    edit(pack_copy, "warning-signs.yaml", lambda d: rule(d, "severe-site-pain")["when"].update(
        site_pain={"at_least": 1}))
    error = load_error(pack_copy)
    assert_problem(error, "warning-signs.yaml", "severe-site-pain", "explanation",
                   "must state the threshold 1/10")
    assert messages(error, "severe-site-pain") == [
        "must state the threshold 1/10",
        "states '7/10', which is not a threshold of the condition (its thresholds: 1/10)"]


def test_a_fever_threshold_described_as_another_is_refused(pack_copy: Path) -> None:
    # The threshold written as a number (not the pack's parameter) and a text stating another.
    edit(pack_copy, "warning-signs.yaml", lambda d: rule(d, "fever").update(
        when={"temperature_c": {"at_least": 38.0}},
        explanation="Temperature {temperature_c} is at or above the fever threshold of "
                    "38.3 °C (101 °F)."))
    error = load_error(pack_copy)
    assert_problem(error, "warning-signs.yaml", "fever", "explanation",
                   "must state the threshold 38 °C")
    found = messages(error, "fever")
    assert any(m.startswith("states '38.3 °C', which is not a threshold") for m in found)
    assert any(m.startswith("states '101 °F', which is not a threshold") for m in found)


def test_a_fahrenheit_figure_must_be_the_threshold_converted(pack_copy: Path) -> None:
    edit(pack_copy, "warning-signs.yaml", lambda d: rule(d, "fever").update(
        explanation="Temperature {temperature_c} is at or above 38.3 °C / 100.4 °F."))
    assert_problem(load_error(pack_copy), "warning-signs.yaml", "fever", "explanation",
                   "states '100.4 °F'")


def test_hours_may_be_stated_as_whole_days(pack: RulePack) -> None:
    assert threshold_problems("after 120 hours (5 days)", [(Fraction(120), "hours")]) == []
    assert threshold_problems("after 5 days", [(Fraction(120), "hours")]) == []
    assert threshold_problems("after 4 days", [(Fraction(120), "hours")]) == [
        "must state the threshold 120 hours",
        "states '4 days', which is not a threshold of the condition (its thresholds: "
        "120 hours)"]


def test_numbers_in_units_the_condition_does_not_test_are_left_alone() -> None:
    text = "Temperature {temperature_c} at or above 38.0 °C (100.4 °F); chemotherapy in the " \
        "last 6 weeks; call within 24 hours."
    assert threshold_problems(text, [(Fraction(38), "°C")]) == []


def test_stated_numbers_read_units_and_skip_scales_and_placeholders() -> None:
    found = [(s.text, s.unit) for s in stated_numbers(
        "Pain {site_pain} is 7/10 on the 0 to 10 scale, below 10.5 °C, 2 or more, 48 hours.")]
    assert found == [("7/10", "/10"), ("10.5 °C", "°C"), ("2", ""), ("48 hours", "hours")]


@pytest.mark.parametrize("places", ["38.0", "38"])
def test_the_threshold_may_be_written_with_or_without_decimals(places: str) -> None:
    assert threshold_problems(f"at or above {places} °C", [(Fraction(38), "°C")]) == []


def test_every_rule_of_the_default_pack_states_its_thresholds(pack: RulePack) -> None:
    # Loading checks it; this says so for the pack that ships.
    assert len(pack.rules) > 40 and pack.timeline_rules
