"""One regression test per durable_rules failure mode in DEVELOPERS.md, via the public API.

Each of these crashes, hangs or silently loses findings when durable_rules is used
directly. A segfault kills the test process, which fails the run; a hang is bounded by
running the case in a subprocess with a timeout.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from marrow_triage import RulePack, SymptomReport, TriageEngine, Urgency
from marrow_triage.testing import reports

PACK_YAML = """\
name: regression-pack
version: 0.0.1
documents:
  doc:
    title: Test document
    publisher: Tests
"""

SOURCE = {"document": "doc", "section": "Tests", "quote": "A test rule."}

ALL_WARNING_SIGNS: dict[str, Any] = {
    "hours_since_procedure": 30,
    "temperature": {"value": 39.0, "unit": "C"},
    "bleeding": "does_not_stop",
    "site_discharge": "unusual",
    "site_pain": 9,
    "back_or_abdominal_pain": 8,
    "pain_trend": "worse",
    "chills": True,
    "feels_feverish": True,
    "site_redness": True,
    "site_swelling": True,
    "site_warmth": True,
    "bruising": "large_or_spreading",
    "pain_down_back_of_leg": True,
    "dizziness_or_fainting": True,
    "chest_pain": True,
    "breathlessness": True,
    "new_confusion": True,
    "low_white_cell_count": True,
    "recent_chemotherapy": True,
    "blood_thinners": True,
    "low_platelet_count": True,
    "received_sedation": True,
    "generally_unwell": True,
    "nausea_or_vomiting": "cannot_keep_fluids_down",
    "cough": True,
    "sore_throat": True,
    "headache": True,
    "leg_numbness_or_weakness": True,
    "rash": True,
    "burning_or_frequent_urination": True,
    "diarrhoea": True,
    "bleeding_elsewhere": True,
    "took_fever_reducing_medicine": True,
    "other_concern": "I also feel very tired",
}


def _rule(rule_id: str, level: str, when: dict[str, Any], explanation: str) -> dict[str, Any]:
    return {"id": rule_id, "title": rule_id.replace("-", " "), "level": level, "when": when,
            "explanation": explanation, "advice": ["Test advice."], "source": SOURCE}


def write_pack(root: Path, rules: list[dict[str, Any]],
               questions: list[dict[str, Any]] | None = None) -> Path:
    import yaml

    root.mkdir(parents=True, exist_ok=True)
    (root / "pack.yaml").write_text(PACK_YAML)
    body: dict[str, Any] = {"rules": rules}
    if questions:
        body["questions"] = questions
    # Through JSON, so that shared objects (SOURCE) are written out, not as YAML
    # aliases, which rule files may not use.
    plain = json.loads(json.dumps(body))
    (root / "rules.yaml").write_text(yaml.safe_dump(plain, sort_keys=False))
    return root


@pytest.fixture(scope="module")
def engine() -> TriageEngine:
    return TriageEngine.default()


def test_same_report_evaluated_twice(engine: TriageEngine) -> None:
    report = {"hours_since_procedure": 30, "temperature": {"value": 101.3, "unit": "F"}}
    first = engine.triage(report)
    again = [engine.triage(report) for _ in range(20)]
    assert first.level is Urgency.URGENT
    assert all(r.model_dump_json() == first.model_dump_json() for r in again)
    assert [f.rule_id for f in first.findings] == ["fever"]


def test_two_identical_reports_at_once_from_threads(engine: TriageEngine) -> None:
    report = {"hours_since_procedure": 12, "bleeding": "soaks_dressing", "site_pain": 8}
    expected = engine.triage(report).model_dump_json()
    rounds, width = 40, 8
    results: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(width)

    def work() -> None:
        for _ in range(rounds):
            barrier.wait()  # every thread submits the same report at the same moment
            out = engine.triage(report).model_dump_json()
            with lock:
                results.append(out)

    threads = [threading.Thread(target=work) for _ in range(width)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == rounds * width
    assert set(results) == {expected}


def test_report_matching_no_rule_default_pack(engine: TriageEngine) -> None:
    # Only the required field: no rule fires (questions do), the session is still deleted.
    for _ in range(50):
        result = engine.triage({"hours_since_procedure": 200})
        assert result.level is Urgency.SELF_CARE
        assert result.findings == ()
        assert {q.field for q in result.questions} >= {"temperature", "bleeding"}


def test_report_matching_no_rule_nor_question_custom_pack(tmp_path: Path) -> None:
    rules = [_rule("chest-pain", "emergency", {"chest_pain": {"is": True}},
                   "Chest pain reported: {chest_pain}.")]
    engine = TriageEngine.from_path(write_pack(tmp_path / "pack", rules))
    # Nothing at all matches these facts; deleting such a session segfaults raw
    # durable_rules unless a catch-all rule handled the fact.
    for report in ({"hours_since_procedure": 2.5, "chest_pain": False, "site_pain": 3},
                   {"hours_since_procedure": 0, "chest_pain": False}):
        for _ in range(100):
            result = engine.triage(report)
            assert result.findings == ()
            assert result.questions == ()
            assert result.level is Urgency.SELF_CARE
    # Unanswered, chest pain is asked (the pack has no question text: the fact's own).
    assert [q.field for q in engine.triage({"hours_since_procedure": 1}).questions] == [
        "chest_pain"]
    assert engine.triage({"hours_since_procedure": 1, "chest_pain": True}).level \
        is Urgency.EMERGENCY


def test_report_matching_every_rule_of_a_pack(tmp_path: Path) -> None:
    flags = ["chills", "site_redness", "site_swelling", "site_warmth", "chest_pain",
             "breathlessness", "new_confusion", "dizziness_or_fainting"]
    rules = [_rule(f"flag-{flag.replace('_', '-')}", "soon", {flag: {"is": True}},
                   f"Reported: {{{flag}}}.") for flag in flags]
    rules.append(_rule("any-temperature", "self_care", {"temperature_c": {"at_least": 30}},
                       "Temperature {temperature_c}, at least 30 °C."))
    rules.append({"id": "many-soon", "title": "many soon", "level": "urgent",
                  "when_findings": {"level": "soon", "at_least": 2},
                  "explanation": "{count} findings (2 or more): {findings}.", "advice": ["Call."],
                  "source": SOURCE})
    engine = TriageEngine.from_path(write_pack(tmp_path / "pack", rules))
    report = {"hours_since_procedure": 3, "temperature": {"value": 37, "unit": "C"},
              **{flag: True for flag in flags}}
    for _ in range(50):
        result = engine.triage(report)
        assert {f.rule_id for f in result.findings} == {r["id"] for r in rules}
        assert result.level is Urgency.URGENT


def test_report_with_every_warning_sign_default_pack(engine: TriageEngine) -> None:
    result = engine.triage(ALL_WARNING_SIGNS)
    fired = {f.rule_id for f in result.findings}
    pack = engine.pack
    # Every report-testing rule whose condition the report can meet fires: compare with
    # the warning-level rules that do not require a value this report does not have.
    expected_warning = {"fever", "bleeding-does-not-stop", "unusual-discharge",
                        "severe-site-pain", "severe-back-or-abdominal-pain", "site-redness",
                        "site-swelling", "dizziness-or-fainting", "large-bruising"}
    assert expected_warning <= {r.id for r in pack.rules}
    assert expected_warning <= fired
    # Every emergency rule's condition holds here, except the at-risk temperature bands
    # below 38.0 °C (the report's 39.0 °C is the fever band's).
    emergencies = {r.id for r in pack.rules if r.level is Urgency.EMERGENCY} - {
        "raised-temperature-with-neutropenia-risk", "low-temperature-with-neutropenia-risk"}
    assert emergencies <= fired
    assert result.level is Urgency.EMERGENCY
    for _ in range(20):
        assert engine.triage(ALL_WARNING_SIGNS).model_dump_json() == result.model_dump_json()


def test_every_matching_rule_fires_facts_not_events(engine: TriageEngine) -> None:
    # With events, the first matching rule consumes the report and the others never fire.
    report = {"hours_since_procedure": 48, "temperature": {"value": 38.6, "unit": "C"},
              "bleeding": "does_not_stop", "site_discharge": "unusual", "site_pain": 8,
              "back_or_abdominal_pain": 7}
    result = engine.triage(report)
    assert {f.rule_id for f in result.findings} >= {
        "fever", "bleeding-does-not-stop", "unusual-discharge", "severe-site-pain",
        "severe-back-or-abdominal-pain"}


def test_escalation_counts_findings_without_joins(engine: TriageEngine) -> None:
    # Two `soon` findings escalate to urgent. A join between finding facts segfaults or
    # leaves delete_state failing (error 309); the summary fact avoids both.
    report = {"hours_since_procedure": 40, "site_redness": True, "site_swelling": True,
              "temperature": {"value": 37, "unit": "C"}}
    for _ in range(300):
        result = engine.triage(report)
        assert result.level is Urgency.URGENT
        assert "multiple-amber-findings" in {f.rule_id for f in result.findings}


def test_more_than_a_thousand_evaluations_no_session_leak(engine: TriageEngine) -> None:
    # Undeleted durable_rules sessions end in MemoryError after about a thousand.
    reports = [{"hours_since_procedure": i % 300, "site_pain": i % 11,
                "bleeding": ["none", "spots_on_dressing", "does_not_stop"][i % 3]}
               for i in range(1500)]
    for report in reports:
        engine.triage(report)
    results = engine.triage_many(reports)
    assert len(results) == 1500
    assert results[2].level is Urgency.URGENT


@settings(max_examples=150, deadline=None)
@given(first=reports(), second=reports())
def test_nothing_carries_over_between_evaluations_on_one_host(
        engine: TriageEngine, first: SymptomReport, second: SymptomReport) -> None:
    # Each host keeps one durable_rules session and retracts every fact after an
    # evaluation (creating and deleting a session per report costs ~0.6 MB of C
    # allocations), and the explainer caches findings by the values they show. A fact
    # left behind, or a finding cached under too coarse a key, would change the result.
    alone = TriageEngine(engine.pack).triage(second)
    engine.triage(first)
    assert engine.triage(second).model_dump_json() == alone.model_dump_json()


def test_two_engines_from_the_same_pack_definitions_not_mutated() -> None:
    # durable_rules' Host mutates the definitions it is given (KeyError('run') on reuse).
    pack = RulePack.default()
    first, second = TriageEngine(pack), TriageEngine(pack)
    report = {"hours_since_procedure": 10, "chest_pain": True}
    for _ in range(5):
        assert first.triage(report).level is Urgency.EMERGENCY
        assert second.triage(report).level is Urgency.EMERGENCY
    # Many threads force each engine to build more hosts from the same compiled rules.
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def work(engine: TriageEngine) -> None:
        try:
            barrier.wait()
            for _ in range(30):
                assert engine.triage(report).level is Urgency.EMERGENCY
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(e,)) for e in (first, second) * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert TriageEngine(pack).triage(report).model_dump_json() == \
        first.triage(report).model_dump_json()


def test_no_background_durable_threads_left_running() -> None:
    before = set(threading.enumerate())
    engine = TriageEngine.default()
    engine.triage({"hours_since_procedure": 3, "site_pain": 2})
    engine.triage_many([{"hours_since_procedure": 3}] * 20)
    workers = [threading.Thread(target=engine.triage, args=({"hours_since_procedure": 1},))
               for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    after = set(threading.enumerate())
    assert after - before == set(), [t.name for t in after - before]


def test_question_only_rule_terminates(tmp_path: Path) -> None:
    # A durable_rules rule whose pattern is only `$nex` loops forever on the state fact.
    root = write_pack(tmp_path / "pack", [
        _rule("chest-pain", "emergency", {"chest_pain": {"is": True}}, "Chest pain: {chest_pain}.")
    ], questions=[{"id": "ask-temperature", "field": "temperature_c", "text": "Temperature?"}])
    script = textwrap.dedent(f"""
        from marrow_triage import TriageEngine
        engine = TriageEngine.from_path({str(root)!r})
        for _ in range(200):
            result = engine.triage({{"hours_since_procedure": 4}})
        print(result.level.value, [q.field for q in result.questions])
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # The pack asks only about temperature, which no rule reads; chest pain, which its
    # rule reads, is asked with the fact's description as the question.
    assert proc.stdout.strip() == "self_care ['chest_pain']"
