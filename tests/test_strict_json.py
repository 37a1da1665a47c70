"""Input that hides data: a key given twice is refused at every JSON entry point, naming the
key, and a UTF-8 byte-order mark is accepted (issue 11).

The example is the one that hid a fever: the second ``temperature`` (normal) would win
over the first (38.5 °C) in any ordinary JSON reader, and the result would be self-care.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from live_server import LiveServer
from marrow_triage import (
    BatchReportError,
    DuplicateKeyError,
    QuestionnaireResponseError,
    ReportError,
    TriageEngine,
    Urgency,
)
from marrow_triage._json import checked_text, loads
from marrow_triage.adapters.cds_hooks.hooks import SERVICE_ID
from marrow_triage.adapters.cli.main import app
from marrow_triage.adapters.fhir.resources import (
    from_questionnaire_response,
    to_questionnaire_response,
)
from marrow_triage.adapters.service.app import create_app

HIDDEN_FEVER = (
    '{"hours_since_procedure": 30, "temperature": {"value": 38.5, "unit": "C"}, '
    '"temperature": {"value": 36.5, "unit": "C"}}'
)
FEVER = '{"hours_since_procedure": 30, "temperature": {"value": 38.5, "unit": "C"}}'
BOM = "\ufeff"
TOKEN = "test-token-of-at-least-32-characters"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

runner = CliRunner()


# -- the reader itself ------------------------------------------------------------------


def test_the_example_would_hide_a_fever_in_a_plain_json_reader() -> None:
    # Why this module exists: Python's reader keeps the last value, a normal temperature.
    assert json.loads(HIDDEN_FEVER)["temperature"]["value"] == 36.5


@pytest.mark.parametrize(("text", "path"), [
    (HIDDEN_FEVER, ("temperature",)),
    ('{"temperature": {"value": 38.5, "unit": "C", "value": 36.5}}', ("temperature", "value")),
    ('[{"a": 1}, {"b": {"c": [0, {"d": 1, "d": 2}]}}]', (1, "b", "c", 1, "d")),
    ('{"x": 1, "y": 2, "x": 3, "x": 4}', ("x",)),
])
def test_duplicate_keys_are_refused_at_any_depth_naming_the_path(
        text: str, path: tuple[str | int, ...]) -> None:
    for reader in (loads, checked_text):
        with pytest.raises(DuplicateKeyError) as caught:
            reader(text)
        assert caught.value.paths == (path,)
        [problem] = caught.value.problems
        assert f"duplicate key {path[-1]!r}" in problem.message
        assert isinstance(caught.value, ReportError)


def test_every_duplicated_key_is_named() -> None:
    with pytest.raises(DuplicateKeyError) as caught:
        loads('{"a": 1, "a": 2, "b": {"c": 1, "c": 1}}')
    assert [p.field for p in caught.value.problems] == ["a", "b.c"]


def test_a_byte_order_mark_is_accepted() -> None:
    assert loads((BOM + FEVER).encode("utf-8")) == json.loads(FEVER)
    assert loads(BOM + FEVER) == json.loads(FEVER)
    assert checked_text((BOM + FEVER).encode("utf-8")) == FEVER


def test_loads_names_what_is_wrong_with_text_that_is_not_json() -> None:
    with pytest.raises(ReportError, match=r"not valid JSON: .* at line 2 column 1"):
        loads('{"a": 1}\n}')
    with pytest.raises(ReportError, match="not UTF-8"):
        loads(b"\xff{}")


def test_same_keys_in_different_objects_are_not_duplicates() -> None:
    text = '[{"value": 1, "unit": "C"}, {"value": 2, "unit": "C"}]'
    assert loads(text) == json.loads(text)
    assert checked_text(text) == text


# -- the library ------------------------------------------------------------------------


def test_triage_json_refuses_the_hidden_fever(engine: TriageEngine) -> None:
    with pytest.raises(DuplicateKeyError, match="duplicate key 'temperature'"):
        engine.triage_json(HIDDEN_FEVER)
    assert engine.triage_json((BOM + FEVER).encode()).level == Urgency.URGENT


def test_triage_many_names_the_index_of_each_invalid_report(engine: TriageEngine) -> None:
    reports: list[dict[str, Any]] = [
        {"hours_since_procedure": 30},
        {"hours_since_procedure": 30, "site_pain": 11},
        {"hours_since_procedure": 30},
        {"hours_since_procedure": 30, "temperature": {"value": 38.5}},
    ]
    with pytest.raises(BatchReportError) as caught:
        engine.triage_many(reports)
    error = caught.value
    assert (error.index, error.indices) == (1, (1, 3))
    assert [p.field for p in error.problems] == ["[1].site_pain", "[3].temperature.unit"]
    assert "index 1, 3" in str(error)


# -- the command line -------------------------------------------------------------------


def test_cli_check_refuses_the_hidden_fever_and_accepts_a_bom() -> None:
    result = runner.invoke(app, ["check", "-", "--json"], input=HIDDEN_FEVER)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("temperature: duplicate key 'temperature'")
    ok = runner.invoke(app, ["check", "-", "--json"], input=(BOM + FEVER).encode("utf-8"))
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["level"] == "urgent"


def test_timeline_record_refuses_the_hidden_fever(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    report = tmp_path / "report.json"
    report.write_text(HIDDEN_FEVER, "utf-8")
    args = ["timeline", "record", "--db", str(db), "--episode", "ep-1",
            "--at", "2026-11-25T08:00:00+00:00"]
    result = runner.invoke(app, [*args, str(report)])
    assert result.exit_code == 2
    assert "duplicate key 'temperature'" in result.stderr
    report.write_bytes((BOM + FEVER).encode("utf-8"))
    ok = runner.invoke(app, [*args, "--json", str(report)])
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["level"] == "urgent"


# -- FHIR -------------------------------------------------------------------------------


def test_fhir_text_with_a_duplicated_key_is_refused() -> None:
    qr = to_questionnaire_response(json.loads(FEVER))
    text = json.dumps(qr)
    assert from_questionnaire_response(text).temperature is not None
    assert from_questionnaire_response((BOM + text).encode("utf-8")) == (
        from_questionnaire_response(qr))
    # The same key twice in the resource: "status" given twice, last one "in-progress".
    doubled = text.replace('"status": "completed"',
                           '"status": "completed", "status": "in-progress"', 1)
    assert doubled != text
    with pytest.raises(QuestionnaireResponseError, match="duplicate key 'status'"):
        from_questionnaire_response(doubled)


# -- the HTTP service and CDS Hooks, over real HTTP -------------------------------------

EHR = "https://ehr.example.org"
EHR_KEY = ec.generate_private_key(ec.SECP384R1())


def _client_jwt(aud: str) -> str:
    now = int(time.time())
    return jwt.encode({"iss": EHR, "aud": aud, "iat": now, "exp": now + 120,
                       "jti": str(uuid.uuid4())}, EHR_KEY, algorithm="ES384",
                      headers={"kid": "ec-1"})


@pytest.fixture(scope="module")
def server(engine: TriageEngine) -> Any:
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(EHR_KEY.public_key()))
    clients = {EHR: {"keys": [{**public, "kid": "ec-1"}]}}
    with LiveServer(lambda url: create_app(engine, token=TOKEN, cds_keys=clients,
                                           public_url=url)) as live:
        yield live


def test_service_triage_refuses_the_hidden_fever(server: LiveServer) -> None:
    response = httpx.post(f"{server.url}/v1/triage", content=HIDDEN_FEVER, headers=AUTH)
    assert response.status_code == 422
    [detail] = response.json()["detail"]
    assert detail["loc"] == ["body", "temperature"]
    assert detail["type"] == "duplicate_key"
    assert "duplicate key 'temperature'" in detail["msg"]
    ok = httpx.post(f"{server.url}/v1/triage", content=(BOM + FEVER).encode(), headers=AUTH)
    assert ok.status_code == 200
    assert ok.json()["level"] == "urgent"


def test_service_batch_refuses_the_hidden_fever_naming_its_index(server: LiveServer) -> None:
    body = f'[{FEVER}, {HIDDEN_FEVER}]'
    response = httpx.post(f"{server.url}/v1/triage/batch", content=body, headers=AUTH)
    assert response.status_code == 422
    assert [d["loc"] for d in response.json()["detail"]] == [["body", 1, "temperature"]]


def test_service_batch_validation_error_names_the_index(server: LiveServer) -> None:
    body = [json.loads(FEVER), {"hours_since_procedure": 3, "site_pain": 11}]
    response = httpx.post(f"{server.url}/v1/triage/batch", json=body, headers=AUTH)
    assert response.status_code == 422
    assert [d["loc"] for d in response.json()["detail"]] == [["body", 1, "site_pain"]]


def test_service_answers_422_naming_the_body_for_text_that_is_not_json(
        server: LiveServer) -> None:
    response = httpx.post(f"{server.url}/v1/triage", content=b"temperature=38.5",
                          headers=AUTH)
    assert response.status_code == 422
    [detail] = response.json()["detail"]
    assert detail["loc"] == ["body"]
    assert detail["msg"].startswith("not valid JSON: Expecting value at line 1 column 1")


def test_cds_hooks_request_refuses_the_hidden_fever(server: LiveServer) -> None:
    url = f"{server.url}/cds-services/{SERVICE_ID}"
    hook = ('{"hook": "patient-view", "hookInstance": "%s", '
            '"context": {"userId": "Practitioner/1", "patientId": "1", "report": %s}}')
    headers = {"Authorization": f"Bearer {_client_jwt(url)}",
               "Content-Type": "application/json"}
    response = httpx.post(url, content=hook % (uuid.uuid4(), HIDDEN_FEVER), headers=headers)
    assert response.status_code == 422, response.text
    assert [d["loc"] for d in response.json()["detail"]] == [
        ["body", "context", "report", "temperature"]]
    headers["Authorization"] = f"Bearer {_client_jwt(url)}"
    ok = httpx.post(url, content=hook % (uuid.uuid4(), FEVER), headers=headers)
    assert ok.status_code == 200, ok.text
    assert ok.json()["cards"][0]["indicator"] == "critical"
