"""`marrow-triage rules diff` on timeline changes: measured over episodes of check-ins.

A timeline rule weighs the current report with the episode's earlier check-ins, so its
change is judged by both packs' timelines over the same episodes (a report after up to a
few earlier check-ins, at and either side of every history cut-off), not guessed from its
definition.
"""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from marrow_triage import RulePack, TriageEngine, Urgency
from marrow_triage.adapters.cli.main import app
from marrow_triage.change import compare_engines
from marrow_triage.change.episodes import (
    episode_dicts,
    episode_factors,
    history_thresholds,
    to_episode,
)
from marrow_triage.change.impact import Batch, compare_timelines, episode_batches
from marrow_triage.errors import TimelineError
from marrow_triage.timeline import Timeline


def edit_timeline_rule(pack_dir: Path, rule_id: str, **changes: Any) -> None:
    path = pack_dir / "timeline.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    [rule] = [r for r in data["timeline_rules"] if r["id"] == rule_id]
    rule.update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def edit_history(pack_dir: Path, **settings: float) -> None:
    path = pack_dir / "pack.yaml"
    text = path.read_text(encoding="utf-8")
    for name, value in settings.items():
        current = yaml.safe_load(text)["history"][name]
        text = text.replace(f"  {name}: {current}\n", f"  {name}: {value}\n", 1)
    path.write_text(text, encoding="utf-8")


def diff(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["rules", "diff", "--samples", "0", "--episodes", "300",
                                      "--workers", "1", "--locales", "none", *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_timeline_rule_lowered_exits_3_with_the_episodes_that_go_down(
        pack_copy: Path) -> None:
    edit_timeline_rule(pack_copy, "bleeding-again", level="soon")
    code, out, _ = diff("packaged", str(pack_copy))
    assert code == 3, out
    report_part, timeline_part = out.split("Timeline episodes")
    assert "Level changes: 0 reports" in report_part  # single reports cannot show it
    assert "timeline rule bleeding-again: level urgent → soon" in report_part
    assert "note: timeline rule bleeding-again is lowered" in report_part
    assert "urgent → soon" in timeline_part and "rule bleeding-again: urgent → soon" in \
        timeline_part
    assert "episodes: " in timeline_part and "pairwise" in timeline_part and \
        "300 sampled (seed 0)" in timeline_part
    assert "possible under-triage" in out
    code, out, _ = diff("packaged", str(pack_copy), "--json")
    data = json.loads(out)
    assert code == 3 and data["exit_code"] == 3 and data["lower"] == 0
    timeline = data["timeline"]
    assert timeline["lower"] > 0 and timeline["episodes"]["total"] > 300
    [down] = [t for t in timeline["transitions"] if t["steps"] < 0]
    assert (down["old"], down["new"]) == ("urgent", "soon")
    [cause] = down["causes"]
    assert cause["rules_relevelled"] == ["bleeding-again: urgent → soon"]
    # The example is a real episode: replayed, the old pack gives urgent and the new soon.
    episode = to_episode(cause["example"])
    old, new = (Timeline(None, e) for e in (TriageEngine.default(),
                                            TriageEngine.from_path(pack_copy)))
    assert old.evaluate(episode.earlier, episode.report, episode.at).level is Urgency.URGENT
    assert new.evaluate(episode.earlier, episode.report, episode.at).level is Urgency.SOON
    code, out, _ = diff("packaged", str(pack_copy), "--markdown")
    assert code == 3 and "### Timeline episodes" in out and "**Episodes compared**" in out


def test_a_lowered_timeline_rule_that_moves_no_episode_is_noted_not_failed(
        pack_copy: Path) -> None:
    """fever-sustained needs a reading at or above history.raised_temperature_c, which is
    already fever (urgent) or a borderline temperature (soon); as soon, it is a second
    amber with the borderline one, and two ambers still make urgent: measured, nobody's
    level changes."""
    edit_timeline_rule(pack_copy, "fever-sustained", level="soon")
    code, out, _ = diff("packaged", str(pack_copy))
    assert code == 0, out
    assert "note: timeline rule fever-sustained is lowered" in out
    assert "Level changes: 0 episodes" in out


def test_a_timeline_threshold_moved_the_safe_way_exits_1(pack_copy: Path) -> None:
    rules = RulePack.default()
    [rule] = [r for r in rules.timeline_rules if r.id == "fever-sustained"]
    assert "at least 60 minutes" in rule.explanation
    edit_timeline_rule(pack_copy, "fever-sustained",
                       when={"raised_temperature_minutes": {"at_least": 45}},
                       explanation=rule.explanation.replace("at least 60 minutes",
                                                            "at least 45 minutes"))
    code, out, _ = diff("packaged", str(pack_copy), "--json")
    assert code == 1, out
    data = json.loads(out)
    timeline = data["timeline"]
    assert timeline["lower"] == 0 and timeline["higher"] > 0
    assert all(t["steps"] > 0 for t in timeline["transitions"])
    assert any(r["rule_id"] == "fever-sustained" and r["fewer"] == 0 and r["more"] > 0
               for r in timeline["rules"])
    # Every episode that moved has a run from 45 up to 60 minutes.
    for transition in timeline["transitions"]:
        for cause in transition["causes"]:
            example = cause["example"]
            assert example["earlier"], example
            run = max(e["minutes_before"] for e in example["earlier"])
            assert 45 <= run < 60, example


def test_a_history_setting_moved_is_measured_too(pack_copy: Path) -> None:
    edit_history(pack_copy, raised_run_max_gap_hours=2)  # shorter gaps break a run sooner
    code, out, _ = diff("packaged", str(pack_copy), "--json")
    data = json.loads(out)
    assert code == 3 and data["lower"] == 0 and data["timeline"]["lower"] > 0
    assert [d["rule_id"] for d in data["definitions"]] == []


def test_an_unchanged_timeline_has_no_timeline_section(pack_copy: Path) -> None:
    path = pack_copy / "warning-signs.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(
        "title: Redness around the needle site", "title: Redness at the needle site", 1),
        encoding="utf-8")
    code, out, _ = diff("packaged", str(pack_copy))
    assert code == 0, out
    assert "Timeline episodes" not in out and "episodes" not in out
    code, out, _ = diff("packaged", str(pack_copy), "--json")
    assert json.loads(out)["timeline"] is None


def test_without_episodes_a_lowered_timeline_rule_still_counts_as_lower(
        pack_copy: Path) -> None:
    edit_timeline_rule(pack_copy, "bleeding-again", level="soon")
    old, new = TriageEngine.default(), TriageEngine.from_path(pack_copy)
    impact = compare_engines(old, new, [Batch("none", [], 0)])
    assert impact.timeline is None and impact.exit_code == 3  # not measured: not trusted
    impact.timeline = compare_timelines(old, new, episode_batches([old.pack, new.pack], 0))
    assert impact.timeline.lower > 0 and impact.exit_code == 3


def test_the_episode_space_holds_each_side_of_every_history_cut_off(pack_copy: Path) -> None:
    rules = {r.id: r for r in RulePack.default().timeline_rules}
    edit_timeline_rule(pack_copy, "fever-sustained",
                       when={"raised_temperature_minutes": {"at_least": 45}},
                       explanation=rules["fever-sustained"].explanation.replace(
                           "at least 60 minutes", "at least 45 minutes"))
    edit_timeline_rule(pack_copy, "site-pain-rising", when={"site_pain_rises": {"at_least": 4}},
                       explanation=rules["site-pain-rising"].explanation.replace(
                           "(2 or more)", "(4 or more)"))
    edit_history(pack_copy, raised_temperature_c=37.8, raised_run_max_gap_hours=3)
    packs = [RulePack.default(), RulePack.from_path(pack_copy)]
    thresholds = history_thresholds(packs)
    assert {Fraction(45), Fraction(60)} <= thresholds["raised_temperature_minutes"]
    assert {Fraction(38), Fraction("37.8")} <= thresholds["max_earlier_temperature_c"]
    assert {Fraction(180), Fraction(240)} <= thresholds["gap_minutes"]
    factors = {f.field: f.values for f in episode_factors(packs)}
    assert {1, 2, 3, 4, 5} <= set(factors["earlier_checkins"])
    spans = {Fraction(str(g)) for g in factors["span_minutes"]}
    step = Fraction(1, 100)
    for cut in (45, 60, 180, 240, 2 * 180, 3 * 240):  # a run; gaps between check-ins
        assert {cut - step, Fraction(cut), cut + step} <= spans
    temperatures = {(t["value"], t["unit"]) for t in factors["earlier_temperature"]
                    if isinstance(t, dict)}
    for value in (37.79, 37.8, 37.81, 37.99, 38, 38.01):
        assert (value, "C") in temperatures
    # Every pair of classes of two factors appears in some episode.
    seen = {(len(e["earlier"]), e["earlier"][0]["minutes_before"])
            for e in episode_dicts(packs)}
    for count in factors["earlier_checkins"]:
        for span in factors["span_minutes"]:
            assert (count, span) in seen


def test_episodes_are_real_timelines(pack_copy: Path) -> None:
    """An episode built with earlier check-ins gives what a stored timeline gives."""
    engine = TriageEngine.default()
    [data] = [e for e in episode_dicts([engine.pack])
              if len(e["earlier"]) == 3 and e["report"].get("temperature") and
              e["earlier"][0]["report"].get("temperature")][:1]
    episode = to_episode(data)
    times = [c.at for c in episode.earlier]
    assert times == sorted(times) and all(t < episode.at for t in times)
    gaps = {b - a for a, b in itertools.pairwise([*times, episode.at])}
    assert len(gaps) == 1 and next(iter(gaps)) > timedelta(0)


def test_a_timeline_without_a_store_only_evaluates() -> None:
    timeline = Timeline(None, TriageEngine.default())
    with pytest.raises(TimelineError, match="no store"):
        timeline.history("episode-1")
