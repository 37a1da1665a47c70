"""Timeline check-ins in the patient's language: the public API, the CLI and the pack's
texts. The service's side is in tests/test_service_timeline.py.

The level, the rule ids and the escalations' counted rules never change with the locale;
every word of a timeline finding (the rule's text, the earlier check-ins it names, the
value words) comes from the pack in the locale asked for, or is listed as a fallback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from history_strategies import episodes
from marrow_triage import (
    LocaleError,
    RulePack,
    RulePackError,
    SymptomReport,
    TriageEngine,
    TriageResult,
)
from marrow_triage.adapters.cli.main import app
from marrow_triage.timeline import Reported, SQLiteStore, Timeline

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
CLOCK = T0 + timedelta(days=2)

# An episode whose last check-in fires every kind of timeline evidence: a raised
# temperature run (fever-sustained), bleeding again, site pain rising, and chemotherapy
# reported earlier (raised-temperature-with-neutropenia-risk-in-history).
EPISODE: list[tuple[int, dict[str, Any]]] = [
    (0, {"hours_since_procedure": 50, "temperature": {"value": 100.4, "unit": "F"},
         "bleeding": "stops_with_pressure", "recent_chemotherapy": True, "site_pain": 2}),
    (40, {"hours_since_procedure": 51, "temperature": {"value": 38.2, "unit": "C"},
          "low_white_cell_count": True, "site_pain": 3}),
    (90, {"hours_since_procedure": 52, "temperature": {"value": 38.4, "unit": "C"},
          "bleeding": "soaks_dressing", "site_pain": 5}),
]
TIMELINE_RULES = {"fever-sustained", "bleeding-again", "site-pain-rising",
                  "raised-temperature-with-neutropenia-risk-in-history"}
# What the timeline code used to write in English, whatever the locale.
ENGLISH_PHRASES = ("Earlier check-ins used", "bleeding stops with pressure",
                   "site pain 2/10", "site pain 3/10", "recent chemotherapy",
                   "low white cell count", "not known", "stops with pressure")


def patient_texts(result: TriageResult) -> list[str]:
    """Every text of a result that a patient reads."""
    return [result.level_label, result.action, result.summary, *result.advice,
            *result.reassurance, *(q.text for q in result.questions),
            *(f.explanation for f in result.findings),
            *(a for f in result.findings for a in f.advice)]


def outcome(result: TriageResult) -> tuple[Any, ...]:
    """What must not change with the locale: level, rule ids (with levels), what each
    escalation counted, and the questions' fields."""
    return (result.level, tuple((f.rule_id, f.level, f.based_on) for f in result.findings),
            tuple(q.field for q in result.questions))


def finding(result: TriageResult, rule_id: str) -> str:
    return next(f.explanation for f in result.findings if f.rule_id == rule_id)


@pytest.fixture()
def timeline(tmp_path: Path, engine: TriageEngine) -> Iterator[Timeline]:
    store = SQLiteStore(tmp_path / "timeline.db")
    yield Timeline(store, engine, clock=lambda: CLOCK)
    store.close()


def record_episode(timeline: Timeline, episode_id: str,
                   locale: str | None) -> list[TriageResult]:
    return [timeline.record(episode_id, report, T0 + timedelta(minutes=minutes),
                            locale=locale)
            for minutes, report in EPISODE]


# --- the public API ---------------------------------------------------------------------

def test_a_spanish_episode_has_the_english_levels_and_rules(timeline: Timeline) -> None:
    english = record_episode(timeline, "ep-en", None)
    spanish = record_episode(timeline, "ep-es", "es")
    assert [outcome(r) for r in spanish] == [outcome(r) for r in english]
    last_en, last_es = english[-1], spanish[-1]
    assert {f.rule_id for f in last_es.findings} >= TIMELINE_RULES
    assert (last_en.locale, last_es.locale) == ("en", "es")
    assert last_es.fallbacks == ()  # the packaged pack translates every timeline text
    assert last_es.level_label == "Emergencia"
    # The timeline rules' own texts, in Spanish.
    assert finding(last_es, "bleeding-again").startswith(
        'Usted indica sangrado "empapa el apósito" ahora y "se detiene al presionar"')
    assert finding(last_es, "site-pain-rising").startswith(
        "El dolor en el sitio de la aguja es ahora de 5/10")
    # The earlier check-ins each finding used, named in Spanish.
    assert finding(last_es, "fever-sustained").endswith(
        "Se tuvieron en cuenta sus controles anteriores: 2026-11-25 08:00 UTC "
        "(100.4 °F (38 °C)); 2026-11-25 08:40 UTC (38.2 °C (100.7 °F)).")
    assert finding(last_es, "bleeding-again").endswith(
        "controles anteriores: 2026-11-25 08:00 UTC (sangrado: se detiene al presionar).")
    assert finding(last_es, "site-pain-rising").endswith(
        "controles anteriores: 2026-11-25 08:00 UTC (dolor en el sitio de la aguja: 2/10); "
        "2026-11-25 08:40 UTC (dolor en el sitio de la aguja: 3/10).")
    assert finding(last_es, "raised-temperature-with-neutropenia-risk-in-history").endswith(
        "(indicado: sí). Puede ser una sepsis neutropénica, una emergencia médica. Se "
        "tuvieron en cuenta sus controles anteriores: 2026-11-25 08:00 UTC (quimioterapia "
        "reciente); 2026-11-25 08:40 UTC (glóbulos blancos bajos).")
    # The English result says the same in English (the phrases the test below looks for).
    assert "Earlier check-ins used: 2026-11-25 08:00 UTC (bleeding stops with pressure)." \
        in finding(last_en, "bleeding-again")
    assert "(recent chemotherapy); 2026-11-25 08:40 UTC (low white cell count)." \
        in finding(last_en, "raised-temperature-with-neutropenia-risk-in-history")


def test_no_english_is_left_in_a_spanish_timeline_result(timeline: Timeline) -> None:
    spanish = record_episode(timeline, "ep-es", "es")[-1]
    texts = patient_texts(spanish)
    for phrase in ENGLISH_PHRASES:
        assert not any(phrase in text for text in texts), phrase
    english = record_episode(timeline, "ep-en", None)[-1]
    # Not one English explanation, advice or summary of the result survives in Spanish.
    assert not set(patient_texts(english)) & set(texts)


def test_the_stored_result_is_the_one_given_in_its_locale(timeline: Timeline) -> None:
    given = record_episode(timeline, "ep-es", "es")
    stored = timeline.history("ep-es")
    assert [c.result for c in stored] == given
    assert {c.result.locale for c in stored} == {"es"}


def test_locale_tags_and_an_unknown_locale_store_nothing(timeline: Timeline) -> None:
    _, report = EPISODE[0]
    result = timeline.record("ep-mx", report, T0, locale="es-MX")
    assert result.locale == "es"
    with pytest.raises(LocaleError) as caught:
        timeline.record("ep-cy", report, T0, locale="cy")
    assert caught.value.locales == ("en", "es")
    assert list(timeline.history("ep-cy")) == []


def test_a_replayed_checkin_keeps_the_locale_it_was_recorded_in(timeline: Timeline) -> None:
    _, report = EPISODE[0]
    first = timeline.record_checkin("ep-1", report, T0, checkin_id="visit-1", locale="es")
    again = timeline.record_checkin("ep-1", report, T0, checkin_id="visit-1")
    assert again.replayed and again.checkin.result == first.checkin.result
    assert again.checkin.result.locale == "es"


def test_evaluate_takes_a_locale_and_refuses_a_result_in_another(engine: TriageEngine) -> None:
    timeline = Timeline(None, engine)
    checkins = [Reported(n, T0 + timedelta(minutes=m), SymptomReport.model_validate(r))
                for n, (m, r) in enumerate(EPISODE)]
    *earlier, last = checkins
    spanish = timeline.evaluate(earlier, last.report, last.at, locale="es")
    english = timeline.evaluate(earlier, last.report, last.at)
    assert outcome(spanish) == outcome(english) and spanish.locale == "es"
    single = engine.triage(last.report)  # English
    with pytest.raises(ValueError, match="in 'en', not in 'es'"):
        timeline.evaluate(earlier, last.report, last.at, single, locale="es")
    assert timeline.evaluate(earlier, last.report, last.at,
                             engine.triage(last.report, "es"), locale="es") == spanish


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_level_and_rule_ids_are_the_same_in_every_locale(engine: TriageEngine,
                                                         data: st.DataObject) -> None:
    assert engine.pack.history is not None
    timeline = Timeline(None, engine)
    episode = data.draw(episodes(engine.pack.history))
    for n, checkin in enumerate(episode):
        results = [timeline.evaluate(episode[:n], checkin.report, checkin.at, locale=locale)
                   for locale in engine.locales]
        assert len({outcome(r) for r in results}) == 1
        assert [r.locale for r in results] == list(engine.locales)


# --- the pack's texts: fallbacks, "not known", a pack without them ---------------------

def _edit_yaml(path: Path, edit: Any) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")


def _timeline_rule(data: dict[str, Any], rule_id: str) -> dict[str, Any]:
    rule: dict[str, Any] = next(r for r in data["timeline_rules"] if r["id"] == rule_id)
    return rule


def test_untranslated_timeline_texts_fall_back_to_english_and_are_listed(
        pack_copy: Path) -> None:
    def drop(data: dict[str, Any]) -> None:
        del data["timeline"]["earlier_checkins"], data["timeline"]["site_pain"]
        del data["rules"]["site-pain-rising"]["explanation"]

    _edit_yaml(pack_copy / "locales" / "es.yaml", drop)
    timeline = Timeline(None, TriageEngine.from_path(pack_copy))
    checkins = [Reported(n, T0 + timedelta(minutes=m), SymptomReport.model_validate(r))
                for n, (m, r) in enumerate(EPISODE)]
    *earlier, last = checkins
    spanish = timeline.evaluate(earlier, last.report, last.at, locale="es")
    assert set(spanish.fallbacks) == {"timeline.earlier_checkins", "timeline.site_pain",
                                      "rules.site-pain-rising.explanation"}
    assert finding(spanish, "site-pain-rising") == (
        "Pain at the needle site is 5/10 now and has risen at 2 check-ins in a row (2 or "
        "more): the expected soreness eases over several days rather than growing. Earlier "
        "check-ins used: 2026-11-25 08:00 UTC (site pain 2/10); 2026-11-25 08:40 UTC "
        "(site pain 3/10).")
    # Only what was left out: the rest of the same result stays Spanish.
    assert finding(spanish, "bleeding-again").endswith(
        "Earlier check-ins used: 2026-11-25 08:00 UTC (sangrado: se detiene al presionar).")
    assert spanish.action == "Llame a los servicios de emergencia ahora."
    english = timeline.evaluate(earlier, last.report, last.at)
    assert english.fallbacks == () and outcome(english) == outcome(spanish)


def test_a_history_fact_no_earlier_checkin_answered_is_not_known(pack_copy: Path) -> None:
    shown = " Earlier readings: at most {max_earlier_temperature_c}."

    def english(data: dict[str, Any]) -> None:
        _timeline_rule(data, "site-pain-rising")["explanation"] += shown

    def spanish(data: dict[str, Any]) -> None:
        data["rules"]["site-pain-rising"]["explanation"] += (
            " Mediciones anteriores: como mucho {max_earlier_temperature_c}.")

    _edit_yaml(pack_copy / "timeline.yaml", english)
    _edit_yaml(pack_copy / "locales" / "es.yaml", spanish)
    timeline = Timeline(None, TriageEngine.from_path(pack_copy))
    rising = [Reported(n, T0 + timedelta(hours=n), SymptomReport.model_validate(
        {"hours_since_procedure": 20 + n, "site_pain": n + 2})) for n in range(3)]
    *earlier, last = rising
    results = {locale: timeline.evaluate(earlier, last.report, last.at, locale=locale)
               for locale in ("en", "es")}
    assert "Earlier readings: at most not known." in finding(results["en"], "site-pain-rising")
    assert "Mediciones anteriores: como mucho no se sabe." in \
        finding(results["es"], "site-pain-rising")
    assert results["es"].fallbacks == ()


def test_a_pack_with_timeline_rules_needs_the_timeline_texts(pack_copy: Path) -> None:
    def drop(data: dict[str, Any]) -> None:
        del data["texts"]["timeline"]

    _edit_yaml(pack_copy / "pack.yaml", drop)
    with pytest.raises(RulePackError) as caught:
        RulePack.from_path(pack_copy)
    assert any(p.field == "texts.timeline" and "required when the pack has timeline rules"
               in p.message for p in caught.value.problems), caught.value.problems


def test_a_translation_must_keep_the_timeline_texts_placeholders(pack_copy: Path) -> None:
    def bad(data: dict[str, Any]) -> None:
        data["timeline"]["checkin"] = "{time}"

    _edit_yaml(pack_copy / "locales" / "es.yaml", bad)
    with pytest.raises(RulePackError) as caught:
        RulePack.from_path(pack_copy)
    assert any(p.field == "timeline.checkin" and "missing {shows}" in p.message
               for p in caught.value.problems), caught.value.problems


# --- the CLI ----------------------------------------------------------------------------

def _cli_record(tmp_path: Path, db: Path, episode: str, *extra: str) -> list[Any]:
    runner = CliRunner()
    outputs = []
    for n, (minutes, report) in enumerate(EPISODE):
        file = tmp_path / f"report-{n}.json"
        file.write_text(json.dumps(report), encoding="utf-8")
        out = runner.invoke(app, ["timeline", "record", "--db", str(db), "--episode", episode,
                                  "--at", (T0 + timedelta(minutes=minutes)).isoformat(),
                                  "--now", CLOCK.isoformat(), *extra, str(file)])
        assert out.exit_code == 0, out.output
        outputs.append(out.output)
    return outputs


def test_cli_timeline_record_in_spanish(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    english = [TriageResult.model_validate_json(o)
               for o in _cli_record(tmp_path, db, "ep-en", "--json")]
    spanish = [TriageResult.model_validate_json(o)
               for o in _cli_record(tmp_path, db, "ep-es", "--json", "--locale", "es-MX")]
    assert [outcome(r) for r in spanish] == [outcome(r) for r in english]
    assert {r.locale for r in spanish} == {"es"}
    assert "Se tuvieron en cuenta sus controles anteriores" in \
        finding(spanish[-1], "bleeding-again")
    text = _cli_record(tmp_path, tmp_path / "text.db", "ep-es", "--locale", "es")[-1]
    assert text.startswith("EMERGENCIA: Llame a los servicios de emergencia ahora.")
    assert "[urgent] bleeding-again: Usted indica sangrado" in text
    assert not any(phrase in text for phrase in ENGLISH_PHRASES)


def test_cli_timeline_record_refuses_an_unknown_locale(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    file = tmp_path / "report.json"
    file.write_text(json.dumps(EPISODE[0][1]), encoding="utf-8")
    out = CliRunner().invoke(app, ["timeline", "record", "--db", str(db), "--episode", "ep-1",
                                   "--at", T0.isoformat(), "--now", CLOCK.isoformat(),
                                   "--locale", "cy", str(file)])
    assert out.exit_code == 2
    assert "--locale: no texts in 'cy'; this rule pack has en, es" in out.output
    assert not db.exists()  # refused before the database was created
