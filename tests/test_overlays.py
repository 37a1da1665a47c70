"""Site overlays, contact routes and locales, through the public API, the CLI and the service.

The overlays here extend a small base pack written by the tests (``base``), so that what
is merged, refused and shown is known exactly; ``test_uk_site_example`` runs the shipped
example against the packaged pack.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import given, settings
from typer.testing import CliRunner

from live_server import LiveServer
from marrow_triage import (
    LocaleError,
    RulePack,
    RulePackError,
    SymptomReport,
    TriageEngine,
    Urgency,
    audit_record,
)
from marrow_triage.adapters.cli import app
from marrow_triage.adapters.service.app import create_app, negotiate_locale
from marrow_triage.pack.catalogue import render_catalogue
from marrow_triage.testing import reports

TOKEN = "overlay-tests-token-0123456789abcdef"
SOURCE = {"document": "doc", "section": "Tests", "quote": "A test sentence."}

BASE_META: dict[str, Any] = {
    "name": "test-base",
    "version": "1.2.0",
    "documents": {"doc": {"title": "Test document", "publisher": "Tests"}},
    "parameters": {
        "fever_c": {"value": 38.3, "description": "Fever threshold in °C.", "source": SOURCE},
        "pain_severe": {"value": 7, "description": "Severe pain on the 0-10 scale.",
                        "source": SOURCE},
    },
    "routes": {
        "care_team_day": "your care team's day line",
        "care_team_24h": "your care team's 24-hour line",
        "emergency_number": "emergency services",
    },
    "texts": {
        "levels": {
            "emergency": {"label": "Emergency", "action": "Call {emergency_number} now."},
            "urgent": {"label": "Urgent", "action": "Call {care_team_24h} now."},
            "soon": {"label": "Soon", "action": "Call {care_team_day} within 24 hours."},
            "self_care": {"label": "Self care", "action": "Care for yourself at home."},
        },
        "summary": {
            "warnings": "{level}: {warnings}. {action}",
            "more": "{warnings} and {count} more",
            "after_effects": "{level}: after-effects only ({after_effects}).",
            "nothing": "{level}: nothing to report.",
            "questions": "{count} question(s) to answer.",
        },
        "values": {
            "answer_yes": "yes", "answer_no": "no", "not_answered": "not answered",
            "hours": "{hours} hours (about {days} days)",
            "hours_one_day": "{hours} hours (about 1 day)",
        },
    },
}

BASE_RULES: list[dict[str, Any]] = [
    {"id": "fever", "title": "Fever", "level": "urgent",
     "when": {"temperature_c": {"at_least": "$fever_c"}},
     "explanation": "Temperature {temperature_c} is at or above {fever_c} °C.",
     "advice": ["Call {care_team_24h} and tell them your temperature."], "source": SOURCE},
    {"id": "borderline-temperature", "title": "Raised temperature", "level": "soon",
     "when": {"temperature_c": {"at_least": 38.0, "below": "$fever_c"}},
     "explanation": "Temperature {temperature_c} is at least 38.0 °C, below {fever_c} °C.",
     "advice": ["Re-check in an hour."], "source": SOURCE},
    {"id": "severe-site-pain", "title": "Severe pain", "level": "urgent",
     "when": {"site_pain": {"at_least": "$pain_severe"}},
     "explanation": "Pain is {site_pain}, at or above {pain_severe}/10.",
     "advice": ["Call {care_team_24h} about the pain."], "source": SOURCE},
    {"id": "site-redness", "title": "Redness", "level": "soon",
     "when": {"site_redness": {"is": True}},
     "explanation": "Redness was reported ({site_redness}).",
     "advice": ["Call {care_team_day} within 24 hours."], "source": SOURCE},
    {"id": "chest-pain", "title": "Chest pain", "level": "emergency",
     "when": {"chest_pain": {"is": True}},
     "explanation": "Chest pain was reported ({chest_pain}).",
     "advice": ["Call {emergency_number} now."], "source": SOURCE},
    {"id": "mild-bruising", "title": "Mild bruising", "level": "self_care",
     "when": {"bruising": {"is": "mild"}},
     "explanation": "Bruising is {bruising}.",
     "advice": ["Watch the bruise."], "reassurance": ["Mild bruising is normal."],
     "source": SOURCE},
]
BASE_QUESTIONS = [
    {"id": "ask-temperature", "field": "temperature_c", "text": "Please take your temperature."},
]
BASE_ES: dict[str, Any] = {
    "locale": "es",
    "note": "Test translation; a clinical translator has not reviewed it.",
    "routes": {"care_team_24h": "la línea de 24 horas de su equipo"},
    "levels": {"urgent": {"label": "Urgente", "action": "Llame ahora a {care_team_24h}."},
               "soon": {"label": "Pronto"}},
    "summary": {"warnings": "{level}: {warnings}. {action}"},
    "values": {"answer_yes": "sí", "bruising": {"mild": "leve"}},
    "rules": {
        "fever": {"title": "Fiebre",
                  "explanation": "Su temperatura de {temperature_c} es de {fever_c} °C o más.",
                  "advice": ["Llame a {care_team_24h} y diga su temperatura."]},
        "site-redness": {"title": "Enrojecimiento"},
    },
    "questions": {"ask-temperature": "Tómese la temperatura, por favor."},
}


class _WrittenOut(yaml.SafeDumper):
    """Writes shared objects out in full: rule files refuse YAML anchors and aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def write_pack(root: Path, meta: dict[str, Any], files: dict[str, dict[str, Any]],
               locales: dict[str, dict[str, Any]] | None = None) -> Path:
    """A pack directory: pack.yaml, the given rule files and locale files."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pack.yaml").write_text(yaml.dump(meta, Dumper=_WrittenOut, allow_unicode=True),
                                    encoding="utf-8")
    for name, body in files.items():
        (root / name).write_text(yaml.dump(body, Dumper=_WrittenOut, allow_unicode=True,
                                           sort_keys=False), encoding="utf-8")
    for code, body in (locales or {}).items():
        (root / "locales").mkdir(exist_ok=True)
        (root / "locales" / f"{code}.yaml").write_text(
            yaml.dump(body, Dumper=_WrittenOut, allow_unicode=True), encoding="utf-8")
    return root


@pytest.fixture()
def base(tmp_path: Path) -> Path:
    return write_pack(tmp_path / "base", BASE_META,
                      {"rules.yaml": {"rules": BASE_RULES, "questions": BASE_QUESTIONS}},
                      {"es": BASE_ES})


def overlay(root: Path, meta: dict[str, Any] | None = None,
            files: dict[str, dict[str, Any]] | None = None,
            locales: dict[str, dict[str, Any]] | None = None,
            extends: dict[str, Any] | None = None) -> Path:
    data = {"name": "site", "version": "1.0.0",
            "extends": extends or {"pack": "test-base", "version": ">=1.2,<2"}, **(meta or {})}
    return write_pack(root, data, files or {}, locales)


def problems_of(path: Path, base: Path | None) -> list[tuple[str, str | None, str, str]]:
    with pytest.raises(RulePackError) as caught:
        RulePack.from_path(path, base=base)
    return [(p.file or "", p.rule_id, p.field or "", p.message) for p in caught.value.problems]


def fired(result: Any) -> set[str]:
    return {f.rule_id for f in result.findings}


# --- parameters ------------------------------------------------------------------------

def test_a_lowered_fever_threshold_changes_the_test_and_every_text(tmp_path: Path,
                                                                   base: Path) -> None:
    site = overlay(tmp_path / "site", {"parameters": {"fever_c": 37.5}})
    report = {"hours_since_procedure": 30, "temperature": {"value": 37.6, "unit": "C"}}
    assert "fever" not in fired(TriageEngine.from_path(base).triage(report))
    result = TriageEngine.from_path(site, base=base).triage(report)
    [finding] = [f for f in result.findings if f.rule_id == "fever"]
    assert finding.explanation == "Temperature 37.6 °C (99.6 °F) is at or above 37.5 °C."
    assert finding.acknowledged_downgrades == ()  # lower is the cautious way
    pack = RulePack.from_path(site, base=base)
    assert pack.parameters["fever_c"].value == 37.5
    assert "`fever_c` = 37.5: Fever threshold in °C. *(overlay site 1.0.0: value 38.3 -> 37.5)*" \
        in render_catalogue(pack)


def test_raising_a_red_flag_threshold_needs_an_acknowledgement(tmp_path: Path,
                                                               base: Path) -> None:
    refused = overlay(tmp_path / "refused", {"parameters": {"fever_c": 38.5}})
    [problem] = problems_of(refused, base)
    assert problem[0] == "refused/pack.yaml" and problem[2] == "parameters.fever_c"
    assert "raises fever_c from 38.3 to 38.5" in problem[3] and "acknowledge_downgrade" in \
        problem[3]
    reason = "Our haematologists use 38.5 °C for patients not on chemotherapy."
    accepted = overlay(tmp_path / "accepted", {"parameters": {
        "fever_c": {"value": 38.5, "acknowledge_downgrade": reason}}})
    engine = TriageEngine.from_path(accepted, base=base)
    result = engine.triage({"hours_since_procedure": 30,
                            "temperature": {"value": 38.6, "unit": "C"}})
    [finding] = [f for f in result.findings if f.rule_id == "fever"]
    assert finding.acknowledged_downgrades == (f"site 1.0.0: {reason}",)
    assert reason in render_catalogue(engine.pack)
    below = engine.triage({"hours_since_procedure": 30,
                           "temperature": {"value": 38.4, "unit": "C"}})
    assert "fever" not in fired(below)


def test_lowering_a_threshold_that_bounds_a_band_below_it_is_not_a_downgrade(
        tmp_path: Path, base: Path) -> None:
    # borderline-temperature (soon) tests below $fever_c; lowering fever_c moves readings
    # from it into fever (urgent), which tests at_least $fever_c: no one is under-triaged.
    site = overlay(tmp_path / "site", {"parameters": {"fever_c": 38.1}})
    engine = TriageEngine.from_path(site, base=base)
    reading = {"hours_since_procedure": 30, "temperature": {"value": 38.2, "unit": "C"}}
    assert fired(engine.triage(reading)) == {"fever"}
    assert fired(TriageEngine.from_path(base).triage(reading)) == {"borderline-temperature"}


def test_an_acknowledgement_on_a_safe_change_is_refused(tmp_path: Path, base: Path) -> None:
    site = overlay(tmp_path / "site", {"parameters": {
        "fever_c": {"value": 38.0, "acknowledge_downgrade": "not needed"}}})
    [problem] = problems_of(site, base)
    assert problem[2] == "parameters.fever_c.acknowledge_downgrade"


def test_a_parameter_value_that_the_fact_cannot_take_names_rule_and_parameter(
        tmp_path: Path, base: Path) -> None:
    site = overlay(tmp_path / "site", {"parameters": {"pain_severe": 6.5}})
    [problem] = problems_of(site, base)
    assert problem[:3] == ("site/pack.yaml", "severe-site-pain", "parameters.pain_severe")
    assert "site_pain is a whole number; 6.5 is not" in problem[3]


# --- levels, wording, added and disabled rules --------------------------------------------

def test_lowering_a_level_is_refused_without_an_acknowledgement(tmp_path: Path,
                                                                 base: Path) -> None:
    change = {"changes": [{"id": "site-redness", "level": "self_care"}]}
    refused = overlay(tmp_path / "refused", files={"policy.yaml": change})
    problems = problems_of(refused, base)
    assert ("refused/policy.yaml", "site-redness", "level") in [p[:3] for p in problems]
    assert any("lowers the level from soon to self_care" in p[3] for p in problems)
    reason = "Our wound clinic reviews redness at the next routine visit."
    change["changes"][0]["acknowledge_downgrade"] = reason
    accepted = overlay(tmp_path / "accepted", files={"policy.yaml": change})
    result = TriageEngine.from_path(accepted, base=base).triage(
        {"hours_since_procedure": 30, "site_redness": True})
    [finding] = result.findings
    assert finding.level is Urgency.SELF_CARE and result.level is Urgency.SELF_CARE
    assert finding.acknowledged_downgrades == (f"site 1.0.0: {reason}",)


def test_raising_a_level_and_rewording_needs_no_acknowledgement(tmp_path: Path,
                                                                base: Path) -> None:
    site = overlay(tmp_path / "site", files={"policy.yaml": {"changes": [
        {"id": "site-redness", "level": "urgent", "title": "Redness at the site",
         "advice": ["Ring {care_team_24h} now: redness needs review today."]}]}})
    engine = TriageEngine.from_path(site, base=base)
    result = engine.triage({"hours_since_procedure": 30, "site_redness": True})
    assert result.level is Urgency.URGENT
    assert result.advice == ("Ring your care team's 24-hour line now: redness needs review "
                             "today.",)
    assert result.summary.startswith("Urgent: Redness at the site.")
    catalogue = render_catalogue(engine.pack)
    assert "**Changed by overlay** site 1.0.0: changed advice, level, title" in catalogue
    # The base's Spanish title said the old thing: it is dropped, and English stands in.
    spanish = engine.triage({"hours_since_procedure": 30, "site_redness": True}, "es")
    assert "rules.site-redness.title" in spanish.fallbacks
    assert "Enrojecimiento" not in spanish.summary


def test_a_change_cannot_replace_what_a_rule_tests(tmp_path: Path, base: Path) -> None:
    site = overlay(tmp_path / "site", files={"policy.yaml": {"changes": [
        {"id": "fever", "when": {"temperature_c": {"at_least": 39}}}]}})
    [problem] = problems_of(site, base)
    assert problem[:3] == ("site/policy.yaml", "fever", "when")


def test_a_change_to_an_unknown_rule_suggests_the_id(tmp_path: Path, base: Path) -> None:
    site = overlay(tmp_path / "site", files={"policy.yaml": {"changes": [
        {"id": "site-rednes", "advice": ["x"]}]}})
    [problem] = problems_of(site, base)
    assert problem[:3] == ("site/policy.yaml", "site-rednes", "id")
    assert "did you mean 'site-redness'" in problem[3]


def test_an_added_rule_is_validated_against_the_merged_pack(tmp_path: Path,
                                                            base: Path) -> None:
    added = {"id": "site-warmth", "title": "Warm site", "level": "soon",
             "when": {"site_warmth": {"is": True}},
             "explanation": "The site is warm ({site_warmth}).",
             "advice": ["Call {care_team_day}."], "source": SOURCE}
    site = overlay(tmp_path / "site", files={"added.yaml": {"rules": [added]}})
    result = TriageEngine.from_path(site, base=base).triage(
        {"hours_since_procedure": 30, "site_warmth": True, "site_redness": True})
    assert fired(result) == {"site-warmth", "site-redness"}
    assert "Call your care team's day line." in result.advice
    bad = {**added, "explanation": "The site is warm.", "source": {**SOURCE, "document": "dco"}}
    broken = overlay(tmp_path / "broken", files={"added.yaml": {"rules": [bad]}})
    problems = problems_of(broken, base)
    assert ("broken/added.yaml", "site-warmth", "source.document") in [p[:3] for p in problems]
    assert ("broken/added.yaml", "site-warmth", "explanation") in [p[:3] for p in problems]
    clash = overlay(tmp_path / "clash", files={"added.yaml": {"rules": [{**added,
                                                                          "id": "fever"}]}})
    assert any(p[1] == "fever" and "already in test-base" in p[3]
               for p in problems_of(clash, base))


def test_disabling_rules(tmp_path: Path, base: Path) -> None:
    soon = overlay(tmp_path / "soon", files={"off.yaml": {"disable": [
        {"id": "site-redness", "reason": "Covered by our wound-care pathway."}]}})
    engine = TriageEngine.from_path(soon, base=base)
    assert engine.triage({"hours_since_procedure": 30, "site_redness": True}).findings == ()
    assert "`site-redness` (Redness, soon), by site 1.0.0: Covered by our wound-care " \
        "pathway." in render_catalogue(engine.pack)
    no_reason = overlay(tmp_path / "no-reason", files={"off.yaml": {"disable": [
        {"id": "site-redness"}]}})
    assert ("no-reason/off.yaml", "site-redness", "reason") in \
        [p[:3] for p in problems_of(no_reason, base)]
    urgent = overlay(tmp_path / "urgent", files={"off.yaml": {"disable": [
        {"id": "fever", "reason": "We use our own fever pathway."}]}})
    [problem] = problems_of(urgent, base)
    assert problem[:3] == ("urgent/off.yaml", "fever", "disable")
    assert "disables a rule at level urgent" in problem[3]
    acknowledged = overlay(tmp_path / "ack", files={"off.yaml": {"disable": [
        {"id": "fever", "reason": "We use our own fever pathway.",
         "acknowledge_downgrade": "Fever calls go to the sepsis line, outside this tool."}]}})
    pack = RulePack.from_path(acknowledged, base=base)
    assert "fever" not in {r.id for r in pack.rules}
    assert "Fever calls go to the sepsis line" in render_catalogue(pack)


# --- chains, ranges, identity --------------------------------------------------------------

def test_a_chain_of_two_overlays_names_every_pack_in_order(tmp_path: Path, base: Path) -> None:
    overlay(tmp_path / "region", {"name": "region", "parameters": {"fever_c": 38.0},
                                   "routes": {"emergency_number": "112"}})
    ward = overlay(tmp_path / "ward", {"name": "ward", "version": "2.0.0",
                                       "routes": {"care_team_24h": "ward 7, 01632 960 007"}},
                   extends={"pack": "region", "version": "~=1.0", "path": "../region"})
    engine = TriageEngine.from_path(ward, base=base)
    result = engine.triage({"hours_since_procedure": 30, "chest_pain": True,
                            "temperature": {"value": 38.1, "unit": "C"}})
    assert [(r.name, r.version) for r in result.ruleset.chain] == [
        ("test-base", "1.2.0"), ("region", "1.0.0"), ("ward", "2.0.0")]
    assert (result.ruleset.name, result.ruleset.version) == ("ward", "2.0.0")
    assert result.ruleset.chain[0].sha256 == RulePack.from_path(base).sha256
    assert result.action == "Call 112 now."
    assert fired(result) == {"chest-pain", "fever"}  # 38.1 °C: the region's 38.0 applies
    # Under the emergency, the fever's own advice gives way (issue 15); alone, it names
    # the ward's 24-hour route.
    fever_only = engine.triage({"hours_since_procedure": 30,
                                "temperature": {"value": 38.1, "unit": "C"}})
    assert "Call ward 7, 01632 960 007 and tell them your temperature." in fever_only.advice
    report = SymptomReport.model_validate({"hours_since_procedure": 30, "chest_pain": True})
    record = json.loads(audit_record(report, engine.triage(report),
                                     datetime(2026, 11, 25, tzinfo=UTC)).model_dump_json())
    assert [r["name"] for r in record["ruleset"]["chain"]] == ["test-base", "region", "ward"]


def test_the_same_chain_gives_the_same_bytes_whatever_the_file_order(tmp_path: Path,
                                                                     base: Path) -> None:
    added = [{"id": f"added-{n}", "title": f"Added {n}", "level": "soon",
              "when": {"site_swelling": {"is": True}} if n % 2 else {"site_warmth": {"is": True}},
              "explanation": "Reported ({site_swelling}, {site_warmth}).",
              "advice": [f"Advice {n}."], "source": SOURCE} for n in range(4)]
    one = overlay(tmp_path / "one", files={"a.yaml": {"rules": added}})
    two = overlay(tmp_path / "two", files={"z.yaml": {"rules": added[2:]},
                                           "b.yaml": {"rules": list(reversed(added[:2]))}})
    report = {"hours_since_procedure": 30, "site_swelling": True, "site_warmth": True,
              "site_redness": True}
    first = TriageEngine.from_path(one, base=base).triage(report, "es").model_dump_json()
    second = TriageEngine.from_path(two, base=base).triage(report, "es").model_dump_json()
    assert first == second
    assert json.loads(first)["ruleset"]["chain"][1]["sha256"] == \
        RulePack.from_path(two, base=base).chain[1].sha256


@pytest.mark.parametrize(("extends", "field", "message"), [
    ({"pack": "test-base", "version": ">=2"}, "extends.version",
     "needs test-base >=2, but the pack found is test-base 1.2.0"),
    ({"pack": "test-base", "version": "one point two"}, "extends.version",
     "is not a version range"),
    ({"pack": "other-pack", "version": ">=1"}, "extends.pack",
     "extends 'other-pack', but the pack found is test-base 1.2.0"),
])
def test_a_bad_extends_is_refused(tmp_path: Path, base: Path, extends: dict[str, str],
                                  field: str, message: str) -> None:
    site = overlay(tmp_path / "site", extends=extends)
    [problem] = problems_of(site, base)
    assert problem[0] == "site/pack.yaml" and problem[2] == field and message in problem[3]


def test_an_overlay_of_an_overlay_that_no_longer_exists(tmp_path: Path, base: Path) -> None:
    region = overlay(tmp_path / "region", {"name": "region"})
    ward = overlay(tmp_path / "ward", {"name": "ward"},
                   extends={"pack": "region", "version": ">=1", "path": "../region"})
    assert RulePack.from_path(ward, base=base).name == "ward"
    shutil.rmtree(region)
    [problem] = problems_of(ward, base)
    assert problem[:3] == ("ward/pack.yaml", None, "extends.path")
    assert "moved or deleted" in problem[3]


def test_overlay_sections_in_a_full_pack_are_refused(tmp_path: Path) -> None:
    full = write_pack(tmp_path / "full", BASE_META,
                      {"rules.yaml": {"rules": BASE_RULES, "disable": [{"id": "fever"}]}})
    problems = problems_of(full, None)
    assert any(p[2] == "disable" and "only an overlay" in p[3] for p in problems)


# --- contact routes ---------------------------------------------------------------------------

def test_routes_fill_actions_and_advice(tmp_path: Path, base: Path) -> None:
    site = overlay(tmp_path / "site", {"routes": {"emergency_number": "999"}})
    result = TriageEngine.from_path(site, base=base).triage(
        {"hours_since_procedure": 30, "chest_pain": True})
    assert result.action == "Call 999 now."
    assert result.advice == ("Call 999 now.",)
    # Nothing can raise an emergency: no question is left to ask.
    assert result.summary == "Emergency: Chest pain. Call 999 now."


def test_a_route_used_but_left_empty_is_a_load_error(tmp_path: Path, base: Path) -> None:
    site = overlay(tmp_path / "site", {"routes": {"care_team_day": "  "}})
    [problem] = problems_of(site, base)
    assert problem[:3] == ("site/pack.yaml", None, "routes.care_team_day")
    assert "empty, but" in problem[3] and "uses it" in problem[3]


def test_an_unknown_route_in_a_text_is_a_load_error(tmp_path: Path, base: Path) -> None:
    site = overlay(tmp_path / "site", files={"policy.yaml": {"changes": [
        {"id": "chest-pain", "advice": ["Call {emergency_nuber} now."]}]}})
    [problem] = problems_of(site, base)
    assert problem[:3] == ("site/policy.yaml", "chest-pain", "advice")
    assert "did you mean 'emergency_number'" in problem[3]


# --- locales ------------------------------------------------------------------------------------

def test_spanish_texts_with_per_string_fallbacks(base: Path) -> None:
    engine = TriageEngine.from_path(base)
    report = {"hours_since_procedure": 30, "temperature": {"value": 38.5, "unit": "C"}}
    english = engine.triage(report)
    spanish = engine.triage(report, "es")
    assert (spanish.level, fired(spanish)) == (english.level, fired(english))
    assert spanish.locale == "es" and english.locale == "en" and english.fallbacks == ()
    assert spanish.action == "Llame ahora a la línea de 24 horas de su equipo."
    assert spanish.advice == ("Llame a la línea de 24 horas de su equipo y diga su "
                              "temperatura.",)
    [fever] = spanish.findings
    assert fever.explanation == ("Su temperatura de 38.5 °C (101.3 °F) es de 38.3 °C o más.")
    asked = engine.triage({"hours_since_procedure": 30}, "es")
    assert "Tómese la temperatura, por favor." in [q.text for q in asked.questions]
    # Every text this result shows is translated, except the question this base pack has
    # no text for (chest pain, asked because its answer could raise the level: shown in
    # English from the fact's description) and the questions count of the summary.
    assert spanish.fallbacks == ("questions.fallback-chest-pain", "summary.questions")
    # Not translated in the base: shown in English and listed.
    bruise = engine.triage({"hours_since_procedure": 30, "bruising": "mild"}, "es")
    assert bruise.findings[0].explanation == "Bruising is leve."
    assert {"rules.mild-bruising.explanation", "rules.mild-bruising.advice",
            "rules.mild-bruising.reassurance", "rules.mild-bruising.title",
            "levels.self_care.label", "levels.self_care.action",
            "summary.after_effects", "questions.ask-temperature"} - set(bruise.fallbacks) == \
        {"questions.ask-temperature"}


def test_locale_tags_and_unknown_locales(base: Path) -> None:
    engine = TriageEngine.from_path(base)
    report = {"hours_since_procedure": 30, "site_redness": True}
    assert engine.triage(report, "es-MX").locale == "es"
    assert engine.triage(report, "ES").locale == "es"
    with pytest.raises(LocaleError) as caught:
        engine.triage(report, "cy")
    assert caught.value.locales == ("en", "es")


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"rules": {"fever": {"explanation": "Su temperatura es alta."}}}, "explanation",
     "placeholders differ from English: missing {fever_c}, {temperature_c}"),
    ({"rules": {"fever": {"advice": ["Uno.", "Dos."]}}}, "advice", "expected 1 texts"),
])
def test_translation_problems_name_file_rule_and_field(tmp_path: Path, change: dict[str, Any],
                                                       field: str, message: str) -> None:
    spanish = {**BASE_ES, "rules": {**BASE_ES["rules"], **change["rules"]}}
    root = write_pack(tmp_path / "base", BASE_META,
                      {"rules.yaml": {"rules": BASE_RULES, "questions": BASE_QUESTIONS}},
                      {"es": spanish})
    problems = problems_of(root, None)
    assert any(p[0] == "base/locales/es.yaml" and p[2] == field and message in p[3]
               for p in problems), problems


def test_a_translation_key_no_english_text_has_is_listed_with_a_suggestion(
        tmp_path: Path) -> None:
    spanish = {**BASE_ES, "rules": {**BASE_ES["rules"], "fevre": {"title": "Fiebre"}}}
    root = write_pack(tmp_path / "base", BASE_META,
                      {"rules.yaml": {"rules": BASE_RULES, "questions": BASE_QUESTIONS}},
                      {"es": spanish})
    [line] = RulePack.from_path(root).translations["es"].unused
    assert line == ("base/locales/es.yaml: rule 'fevre': title: no English text has this key "
                    "(did you mean 'rules.fever.title'?)")
    assert CliRunner().invoke(app, ["rules", "release", "--record", str(root)]).exit_code == 0
    out = CliRunner().invoke(app, ["rules", "check", str(root)])
    assert out.exit_code == 0 and f"warning: {line} (never shown)" in out.stdout


def test_an_overlay_translates_its_own_changes(tmp_path: Path, base: Path) -> None:
    site = overlay(tmp_path / "site", {"routes": {"care_team_24h": "01632 960 001"}},
                   files={"policy.yaml": {"changes": [
                       {"id": "fever", "advice": ["Call {care_team_24h} now."]}]}},
                   locales={"es": {"locale": "es", "note": "Site translation, reviewed.",
                                   "routes": {"care_team_24h": "el 01632 960 001"},
                                   "rules": {"fever": {"advice": ["Llame ya a "
                                                                  "{care_team_24h}."]}}}})
    spanish = TriageEngine.from_path(site, base=base).triage(
        {"hours_since_procedure": 30, "temperature": {"value": 39, "unit": "C"}}, "es")
    assert spanish.advice == ("Llame ya a el 01632 960 001.",)
    assert spanish.action == "Llame ahora a el 01632 960 001."


@settings(max_examples=150)
@given(report=reports())
def test_level_and_rule_ids_are_the_same_in_every_locale(report: Any) -> None:
    for engine in _ENGINES:
        results = [engine.triage(report, locale) for locale in engine.locales]
        assert len({r.level for r in results}) == 1
        assert len({tuple(f.rule_id for f in r.findings) for r in results}) == 1
        assert len({tuple(q.field for q in r.questions) for r in results}) == 1
        assert [r.locale for r in results] == list(engine.locales)


def _engines() -> list[TriageEngine]:
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="overlay-locales-"))
    base = write_pack(root / "base", BASE_META,
                      {"rules.yaml": {"rules": BASE_RULES, "questions": BASE_QUESTIONS}},
                      {"es": BASE_ES})
    engines = [TriageEngine.default(), TriageEngine.from_path(base)]
    shutil.rmtree(root)
    return engines


_ENGINES = _engines()


# --- CLI ---------------------------------------------------------------------------------

def test_cli_check_with_an_overlay_and_a_locale(tmp_path: Path, base: Path) -> None:
    site = overlay(tmp_path / "site", {"routes": {"care_team_24h": "01632 960 001"}})
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"hours_since_procedure": 30,
                                  "temperature": {"value": 38.6, "unit": "C"}}))
    runner = CliRunner()
    out = runner.invoke(app, ["check", "--rules", str(site), "--base", str(base), "--locale",
                              "es", "--json", str(report)])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["locale"] == "es" and data["level"] == "urgent"
    assert data["action"] == "Llame ahora a 01632 960 001."
    assert [r["name"] for r in data["ruleset"]["chain"]] == ["test-base", "site"]
    text = runner.invoke(app, ["check", "--rules", str(site), "--base", str(base), str(report)])
    assert text.exit_code == 0 and "site 1.0.0 on test-base 1.2.0" in text.stdout
    bad = runner.invoke(app, ["check", "--rules", str(site), "--base", str(base), "--locale",
                              "cy", str(report)])
    assert bad.exit_code == 2 and "--locale: no texts in 'cy'; this rule pack has en, es" in \
        bad.output


def test_cli_rejects_a_refused_overlay_with_exit_2(tmp_path: Path, base: Path) -> None:
    site = overlay(tmp_path / "site", {"parameters": {"fever_c": 39}})
    out = CliRunner().invoke(app, ["rules", "check", str(site), "--base", str(base)])
    assert out.exit_code == 2
    assert "site/pack.yaml: parameters.fever_c: raises fever_c from 38.3 to 39" in out.output


def test_cli_rules_check_lists_missing_translations(base: Path) -> None:
    assert CliRunner().invoke(app, ["rules", "release", "--record", str(base)]).exit_code == 0
    out = CliRunner().invoke(app, ["rules", "check", str(base)])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    start = lines.index(next(x for x in lines if x.startswith("locale es:")))
    listed = [x.strip() for x in lines[start + 1:] if x.startswith("  ")]
    assert "rules.mild-bruising.reassurance" in listed and "rules.fever.title" not in listed


def test_cli_rules_docs_marks_what_the_overlay_changed(tmp_path: Path, base: Path) -> None:
    site = overlay(tmp_path / "site", {"parameters": {"fever_c": 38.0}},
                   files={"policy.yaml": {"changes": [{"id": "site-redness", "level": "urgent"}]}})
    out = CliRunner().invoke(app, ["rules", "docs", "--rules", str(site), "--base", str(base),
                                   "--output", "-"])
    assert out.exit_code == 0, out.output
    assert "## Overlay chain" in out.stdout
    assert "`fever_c` = 38: Fever threshold in °C. *(overlay site 1.0.0: value 38.3 -> 38)*" in \
        out.stdout
    assert "**Changed by overlay** site 1.0.0: changed level" in out.stdout


def test_cli_rules_export_writes_the_packaged_pack(tmp_path: Path) -> None:
    target = tmp_path / "exported"
    out = CliRunner().invoke(app, ["rules", "export", str(target)])
    assert out.exit_code == 0, out.output
    assert RulePack.from_path(target).sha256 == RulePack.default().sha256
    again = CliRunner().invoke(app, ["rules", "export", str(target)])
    assert again.exit_code == 2 and "not an empty directory" in again.output


# --- service -----------------------------------------------------------------------------

@pytest.fixture()
def site_server(tmp_path: Path, base: Path) -> Iterator[LiveServer]:
    site = overlay(tmp_path / "site", {"routes": {"emergency_number": "999"}})
    engine = TriageEngine.from_path(site, base=base)
    with LiveServer(lambda url: create_app(engine, token=TOKEN)) as live:
        yield live


def test_service_serves_an_overlay_in_the_asked_language(site_server: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    report = {"hours_since_procedure": 30, "chest_pain": True,
              "temperature": {"value": 38.5, "unit": "C"}}
    with httpx.Client(base_url=site_server.url, headers=headers) as client:
        spanish = client.post("/v1/triage", json=report,
                              headers={"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"})
        assert spanish.status_code == 200 and spanish.headers["content-language"] == "es"
        body = spanish.json()
        assert body["locale"] == "es" and body["action"] == "Call 999 now."
        assert "levels.emergency.action" in body["fallbacks"]
        english = client.post("/v1/triage", json=report, headers={"Accept-Language": "fr"})
        assert english.headers["content-language"] == "en"
        assert english.json()["level"] == body["level"] == "emergency"
        batch = client.post("/v1/triage/batch", json=[report], headers={"Accept-Language": "es"})
        assert batch.json()[0]["findings"] == body["findings"]
        rules = client.get("/v1/rules").json()
        assert [r["name"] for r in rules["chain"]] == ["test-base", "site"]
        assert rules["locales"] == ["en", "es"] and rules["routes"]["emergency_number"] == "999"


@pytest.mark.parametrize(("header", "expected"), [
    (None, "en"), ("es", "es"), ("es-MX", "es"), ("fr, es;q=0.8", "es"),
    ("es;q=0, en", "en"), ("*", "en"), ("de", "en"), ("es;q=abc", "en"),
])
def test_accept_language_negotiation(header: str | None, expected: str) -> None:
    assert negotiate_locale(header, ("en", "es")) == expected


# --- the packaged pack and the shipped example ----------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "overlays" / "uk-site"


def test_the_packaged_pack_exposes_its_red_flag_thresholds_as_parameters() -> None:
    pack = RulePack.default()
    for name in ("fever_c", "neutropenic_fever_c", "at_risk_temperature_c",
                 "at_risk_low_temperature_c", "severe_pain"):
        users = [r.id for r in (*pack.rules, *pack.timeline_rules)
                 if r.when is not None and name in json.dumps(r.condition_data())]
        assert users, f"no rule tests the parameter {name}"
    assert set(pack.routes) >= {"care_team_day", "care_team_24h", "emergency_number"}


def test_the_packaged_pack_speaks_spanish_with_nothing_left_in_english() -> None:
    pack = RulePack.default()
    assert pack.locales == ("en", "es")
    assert pack.translations["es"].missing == ()
    assert "clinical translator must review" in pack.translations["es"].note
    report = {"hours_since_procedure": 30, "temperature": {"value": 38.5, "unit": "C"},
              "bleeding": "spots_on_dressing"}
    english, spanish = triage_both(report)
    assert (spanish.level, fired(spanish)) == (english.level, fired(english))
    assert spanish.fallbacks == ()
    assert spanish.action == "Llame ahora al número de 24 horas de su equipo de atención, " \
        "de día o de noche."
    assert spanish.level_label == "Urgente" and spanish.summary.startswith("Urgente: Fiebre.")
    assert [f.explanation for f in spanish.findings if f.rule_id == "fever"] == [
        "Su temperatura de 38.5 °C (101.3 °F) está en el límite de fiebre de 38.3 °C o por "
        "encima."]


def triage_both(report: dict[str, Any]) -> tuple[Any, Any]:
    from marrow_triage import triage

    return triage(report), triage(report, locale="es")


def test_uk_site_example(tmp_path: Path) -> None:
    engine = TriageEngine.from_path(EXAMPLE)
    chain = [(r.name, r.version) for r in engine.pack.chain]
    assert chain[0][0] == "marrow-aftercare" and chain[1] == ("uk-site-haematology", "1.0.0")
    fever = {"hours_since_procedure": 30, "temperature": {"value": 38.1, "unit": "C"}}
    assert "fever" not in fired(TriageEngine.default().triage(fever))
    result = engine.triage(fever)
    assert "fever" in fired(result) and result.level is Urgency.URGENT
    assert result.action == ("Call the haematology 24-hour triage line on 01632 960 001 now, "
                             "day or night.")
    infection = {"hours_since_procedure": 30, "sore_throat": True, "recent_chemotherapy": True}
    added = engine.triage(infection)
    assert "infection-symptoms-after-chemotherapy" in fired(added)
    spanish = engine.triage({**fever, "chest_pain": True}, "es")
    assert spanish.action == "Llame al 999 ahora."
    out = CliRunner().invoke(app, ["rules", "docs", "--rules", str(EXAMPLE), "--output", "-"])
    assert out.exit_code == 0, out.output
    assert "**Added by overlay** uk-site-haematology 1.0.0" in out.stdout
    assert "(overlay uk-site-haematology 1.0.0: value 38.3 -> 38)" in out.stdout


def test_the_watch_list_follows_the_thresholds_an_overlay_sets() -> None:
    """A self-care result's warning signs state the chain's thresholds, not the base's."""
    nothing = {"hours_since_procedure": 30}
    base = TriageEngine.default().triage(nothing)
    site = TriageEngine.from_path(EXAMPLE).triage(nothing)
    assert base.level is site.level is Urgency.SELF_CARE
    base_text, site_text = " ".join(base.advice), " ".join(site.advice)
    assert "a temperature of 38.3 °C (100.94 °F) or more" in base_text
    assert "a temperature of 38.0 °C (100.4 °F) or more" in site_text
    assert "38.3" not in site_text and "100.94" not in site_text
    spanish = TriageEngine.from_path(EXAMPLE).triage(nothing, locale="es")
    assert "38.0 °C (100.4 °F) o más" in " ".join(spanish.advice)


def _small_pack(root: Path, parameters: dict[str, Any] | None) -> Path:
    """A pack with one rule and no ``texts:`` (it borrows the packaged wording)."""
    root.mkdir(parents=True)
    meta: dict[str, Any] = {"name": "small", "version": "0.1.0", "documents": {
        "doc": {"title": "Test document", "publisher": "Tests"}}}
    if parameters is not None:
        meta["parameters"] = parameters
    (root / "pack.yaml").write_text(yaml.safe_dump(meta), "utf-8")
    rule = {"id": "chest-pain", "title": "Chest pain", "level": "emergency",
            "when": {"chest_pain": {"is": True}}, "explanation": "Chest pain: {chest_pain}.",
            "advice": ["Call {emergency_number} now."],
            "source": {"document": "doc", "section": "S", "quote": "q"}}
    (root / "rules.yaml").write_text(yaml.safe_dump({"rules": [rule]}), "utf-8")
    return root


def test_a_pack_without_texts_states_its_own_thresholds_in_the_borrowed_watch_list(
        tmp_path: Path) -> None:
    """The packaged watch list states parameters: a pack that borrows it shows its own
    value where it has one, and the packaged one (with its source) where it has none."""
    own = {"fever_c": {"value": 38.0, "description": "Fever threshold in °C.",
                       "source": {"document": "doc", "section": "S", "quote": "q"}}}
    nothing = {"hours_since_procedure": 30}
    with_own = TriageEngine.from_path(_small_pack(tmp_path / "own", own)).triage(nothing)
    assert "a temperature of 38.0 °C (100.4 °F) or more" in " ".join(with_own.advice)
    borrowed = TriageEngine.from_path(_small_pack(tmp_path / "none", None))
    assert "a temperature of 38.3 °C (100.94 °F) or more" in " ".join(
        borrowed.triage(nothing).advice)
    assert borrowed.pack.parameters["fever_c"].source.document == "cancer-net-bmab"
