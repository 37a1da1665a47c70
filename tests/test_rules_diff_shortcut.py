"""`rules diff` explains reports only as far as two packs' results can differ.

Both packs evaluate every report. Where the same rules fired, a report whose rules and
question keys are worded the same in both (``Explainer.text_differences``) is not
explained at all, and where only some rules' texts, a level's texts or the questions
differ, only those parts are compared (``Explainer.wording``). These tests hold those
shortcuts to the plain way (every result built and compared) for each kind of change a
pack can make, and check that no attribute of the explainer escapes the comparison.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from marrow_triage import RulePack, TriageEngine
from marrow_triage.change import compare_engines, impact_json, report_batches
from marrow_triage.change.mutants import pack_mutants
from marrow_triage.engine.explain import Explainer
from marrow_triage.models import SymptomReport
from marrow_triage.pack.loader import default_rules_path
from report_mix import mixed_reports

Data = dict[str, Any]


def _rule(data: Data, rule_id: str) -> Data:
    return next(rule for rule in data["rules"] if rule["id"] == rule_id)


def _edit(file: str, change: Callable[[Data], None]) -> Callable[[Path], None]:
    def write(root: Path) -> None:
        path = root / file
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        change(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
                        encoding="utf-8")
    return write


def _set(*path: str, value: object) -> Callable[[Data], None]:
    def change(data: Data) -> None:
        for key in path[:-1]:
            data = data[key]
        data[path[-1]] = value
    return change


def _rule_text(rule_id: str, name: str, value: object) -> Callable[[Data], None]:
    def change(data: Data) -> None:
        _rule(data, rule_id)[name] = value
    return change


def _append_to_explanation(rule_id: str) -> Callable[[Data], None]:
    def change(data: Data) -> None:
        _rule(data, rule_id)["explanation"] += " Checked."
    return change


def _append_to_advice(rule_id: str) -> Callable[[Data], None]:
    def change(data: Data) -> None:
        _rule(data, rule_id)["advice"][0] += " Rest."
    return change


def _count_three(data: Data) -> None:
    escalation = data["rules"][0]
    escalation["when_findings"]["at_least"] = 3
    escalation["explanation"] = escalation["explanation"].replace("2 or more", "3 or more")


def _remove(rule_id: str) -> Callable[[Data], None]:
    def change(data: Data) -> None:
        data["rules"].remove(_rule(data, rule_id))
    return change


def _add_copy(rule_id: str, new_id: str, level: str) -> Callable[[Data], None]:
    def change(data: Data) -> None:
        data["rules"].append({**copy.deepcopy(_rule(data, rule_id)), "id": new_id,
                              "level": level, "title": "A copy"})
    return change


def _mutant(mutant_id: str) -> Callable[[Path], None]:
    mutant = next(m for m in pack_mutants(default_rules_path()) if m.id == mutant_id)

    def write(root: Path) -> None:
        shutil.rmtree(root)
        mutant.write(default_rules_path(), root)
    return write


CHANGES: dict[str, Callable[[Path], None]] = {
    "threshold parameter": _edit("pack.yaml", _set("parameters", "fever_c", "value",
                                                   value=38.4)),
    "level lowered": _mutant("fever: level urgent → soon"),
    "threshold moved in a rule": _mutant("severe-site-pain: site_pain at_least 7 → 8"),
    "explanation": _edit("warning-signs.yaml", _append_to_explanation("site-redness")),
    "advice": _edit("after-effects.yaml", _append_to_advice("blood-on-dressing")),
    "also_tell": _edit("warning-signs.yaml", _rule_text("site-swelling", "also_tell",
                                                        ["Also mention the swelling."])),
    "reassurance": _edit("after-effects.yaml", _rule_text("site-soreness", "reassurance",
                                                          ["Soreness fades."])),
    "title": _edit("other-symptoms.yaml", _rule_text("headache", "title", "A headache")),
    "source section": _edit("warning-signs.yaml", _set("rules", 1, "source", "section",
                                                       value="Another section")),
    "level action": _edit("pack.yaml", _set("texts", "levels", "urgent", "action",
                                            value="Call {care_team_24h} right away.")),
    "self-care label": _edit("pack.yaml", _set("texts", "levels", "self_care", "label",
                                               value="At home")),
    "summary": _edit("pack.yaml", _set("texts", "summary", "more",
                                       value="{warnings}, and {count} more")),
    "watch list": _edit("pack.yaml", _set("texts", "watch_for", "soon",
                                          value="Call {care_team_day} about redness.")),
    "value word": _edit("pack.yaml", _set("texts", "values", "answer_yes", value="yes!")),
    "question text": _edit("questions.yaml", _set("questions", 0, "text",
                                                  value="What is your temperature?")),
    "escalation count": _edit("escalation.yaml", _count_three),
    "rule removed": _edit("other-symptoms.yaml", _remove("cough")),
    "rule added": _edit("other-symptoms.yaml", _add_copy("cough", "cough-again", "urgent")),
    "translation": _edit("locales/es.yaml", _set("levels", "soon", "label", value="Pronto!")),
}


@pytest.fixture(scope="module")
def packaged() -> TriageEngine:
    return TriageEngine(RulePack.default())


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_the_shortcut_gives_what_building_every_result_gives(
        change: str, packaged: TriageEngine, tmp_path: Path) -> None:
    root = tmp_path / "rules"
    shutil.copytree(default_rules_path(), root)
    CHANGES[change](root)
    changed = TriageEngine.from_path(root)
    locales = sorted(set(packaged.pack.locales) & set(changed.pack.locales) - {"en"})
    packs = [packaged.pack, changed.pack]

    # The boundary classes pairwise and a sample (dense: many rules fire) as the command
    # makes them, and the benchmarks' mix (sparse, as patients report: self-care results).
    mix = [SymptomReport.model_validate(report) for report in mixed_reports(300, seed=5)]

    def impact(explain_all: bool) -> str:
        batches = report_batches(packs, samples=300, seed=5, extra=[("the mix", mix)])
        return impact_json(compare_engines(packaged, changed, batches, locales=locales,
                                           explain_all=explain_all))

    every = impact(explain_all=True)
    shown = yaml.safe_load(every)
    # Each change shows in these reports: the comparison below is not between two nothings.
    assert shown["transitions"] or shown["text_changes"] or shown["rules"], change
    assert impact(explain_all=False) == every


def test_every_explainer_attribute_is_compared_or_said_why_not(
        packaged: TriageEngine) -> None:
    """A new attribute must be placed in one of the explainer's comparison groups, or
    a text it holds could change without the shortcut seeing it."""
    explainer = packaged.explainer
    named = (*Explainer._PER_RULE, *Explainer._PER_LEVEL, *Explainer._EVERYWHERE,
             *Explainer._QUESTIONS, *Explainer._SELF_CARE, *Explainer._NOT_COMPARED)
    assert len(set(named)) == len(named)
    assert set(vars(explainer)) == set(named)


def test_the_same_pack_differs_nowhere(packaged: TriageEngine) -> None:
    again = TriageEngine(RulePack.default())
    for locale in packaged.pack.locales:
        differences = packaged.explainer_for(locale).text_differences(
            again.explainer_for(locale))
        assert (differences.rules, differences.levels, differences.everywhere,
                differences.questions, differences.self_care) == \
            (frozenset(), frozenset(), False, False, False)


def test_a_watch_list_change_is_listed(packaged: TriageEngine, tmp_path: Path) -> None:
    """The watch list is the advice a self-care result adds to its findings' advice."""
    root = tmp_path / "rules"
    shutil.copytree(default_rules_path(), root)
    CHANGES["watch list"](root)
    changed = TriageEngine.from_path(root)
    mix = [SymptomReport.model_validate(report) for report in mixed_reports(300, seed=5)]
    impact = compare_engines(packaged, changed, report_batches(
        [packaged.pack, changed.pack], samples=0, extra=[("the mix", mix)]))
    assert set(impact.text) == {("(result)", "watch_for", "en")}
    change = impact.text["(result)", "watch_for", "en"]
    assert "Contact your care team's day-time number within 24 hours if the needle site" \
        in change.old_text
    assert "Call your care team's day-time number about redness." in change.new_text
    assert changed.triage(change.example).level.value == "self_care"


def test_fire_many_then_explain_is_triage(packaged: TriageEngine) -> None:
    reports = [SymptomReport.model_validate(r) for r in mixed_reports(200, seed=9)]
    for locale in packaged.pack.locales:
        explained = [packaged.explain(report, fired, locale) for report, fired in
                     zip(reports, packaged.fire_many(reports), strict=True)]
        assert explained == [packaged.triage(report, locale) for report in reports]
