"""``/v1/episodes`` over real HTTP: record, read and forget an episode's check-ins, with the
same token, validation, size limit and quiet logs as ``/v1/triage``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from live_server import LiveServer
from marrow_triage import TriageEngine
from marrow_triage.adapters.service.app import create_app
from marrow_triage.timeline import SQLiteStore, Timeline

TOKEN = "timeline-token-5e0d-000000000000000000"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOW = datetime.now(UTC).replace(microsecond=0)
FEVER = {"hours_since_procedure": 50, "temperature": {"value": 38.1, "unit": "C"}}


def _at(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).isoformat().replace("+00:00", "Z")


@pytest.fixture()
def server(tmp_path: Path, engine: TriageEngine) -> Iterator[LiveServer]:
    store = SQLiteStore(tmp_path / "service.db")
    timeline = Timeline(store, engine)
    with LiveServer(lambda _url: create_app(engine, token=TOKEN, max_body_bytes=4096,
                                            timeline=timeline)) as live:
        yield live
    store.close()


@pytest.fixture()
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as c:
        yield c


def post(client: httpx.Client, episode: str, report: dict[str, Any], at: str,
         **extra: Any) -> httpx.Response:
    return client.post(f"/v1/episodes/{episode}/checkins",
                       json={"report": report, "at": at, **extra})


def test_record_read_and_forget_an_episode(client: httpx.Client) -> None:
    first = post(client, "ep-1", FEVER, _at(70))
    assert first.status_code == 200, first.text
    assert first.json()["result"]["level"] == "soon"
    second = post(client, "ep-1", FEVER, _at(0))
    body = second.json()
    assert body["result"]["level"] == "urgent"
    assert "fever-sustained" in {f["rule_id"] for f in body["result"]["findings"]}
    assert (body["episode_id"], body["replayed"], body["seq"]) == ("ep-1", False, 2)

    episode = client.get("/v1/episodes/ep-1")
    assert episode.status_code == 200
    listed = episode.json()
    assert [c["result"]["level"] for c in listed["checkins"]] == ["soon", "urgent"]
    assert listed["checkins"][1]["result"] == body["result"]
    assert listed["unreadable"] == 0

    assert client.delete("/v1/episodes/ep-1").status_code == 204
    assert client.get("/v1/episodes/ep-1").status_code == 404


def test_a_retry_with_the_same_checkin_id_records_once(client: httpx.Client) -> None:
    first = post(client, "ep-2", FEVER, _at(5), checkin_id="visit-7")
    again = post(client, "ep-2", FEVER, _at(5), checkin_id="visit-7")
    assert again.status_code == 200
    assert again.json()["replayed"] is True
    assert again.json()["seq"] == first.json()["seq"]
    assert len(client.get("/v1/episodes/ep-2").json()["checkins"]) == 1
    conflict = post(client, "ep-2", {**FEVER, "site_pain": 4}, _at(5), checkin_id="visit-7")
    assert conflict.status_code == 409
    assert "already recorded" in conflict.json()["detail"]


# --- languages: Accept-Language as on /v1/triage ----------------------------------------

CHEMO_FEVER = {**FEVER, "bleeding": "stops_with_pressure", "recent_chemotherapy": True}
BLEEDING_FEVER = {**FEVER, "bleeding": "soaks_dressing"}


def _outcome(result: dict[str, Any]) -> tuple[Any, ...]:
    return (result["level"], [(f["rule_id"], f["level"], f["based_on"])
                              for f in result["findings"]])


def test_checkins_are_in_the_language_accept_language_asks_for(client: httpx.Client) -> None:
    english = [post(client, "ep-en", CHEMO_FEVER, _at(70)),
               post(client, "ep-en", BLEEDING_FEVER, _at(0))]
    spanish_header = {"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"}
    spanish = [client.post("/v1/episodes/ep-es/checkins", headers=spanish_header,
                           json={"report": report, "at": at})
               for report, at in ((CHEMO_FEVER, _at(70)), (BLEEDING_FEVER, _at(0)))]
    for response in (*english, *spanish):
        assert response.status_code == 200, response.text
    assert [r.headers["Content-Language"] for r in english] == ["en", "en"]
    assert [r.headers["Content-Language"] for r in spanish] == ["es", "es"]
    last_en, last_es = english[-1].json()["result"], spanish[-1].json()["result"]
    assert _outcome(last_es) == _outcome(last_en)
    assert {"fever-sustained", "bleeding-again",
            "raised-temperature-with-neutropenia-risk-in-history"} <= {
        f["rule_id"] for f in last_es["findings"]}
    assert last_es["locale"] == "es" and last_es["fallbacks"] == []
    explanations = " ".join(f["explanation"] for f in last_es["findings"])
    assert "Se tuvieron en cuenta sus controles anteriores" in explanations
    assert "(sangrado: se detiene al presionar)" in explanations
    assert "(quimioterapia reciente)" in explanations
    for phrase in ("Earlier check-ins used", "bleeding stops", "recent chemotherapy"):
        assert phrase not in explanations
    assert "Earlier check-ins used" in " ".join(f["explanation"] for f in last_en["findings"])
    # Stored as given: the episode reads back in the language each check-in was given in.
    stored = client.get("/v1/episodes/ep-es").json()["checkins"]
    assert [c["result"] for c in stored] == [r.json()["result"] for r in spanish]


def test_a_retry_returns_the_stored_language_and_says_so(client: httpx.Client) -> None:
    first = client.post("/v1/episodes/ep-r/checkins", headers={"Accept-Language": "es"},
                        json={"report": FEVER, "at": _at(5), "checkin_id": "visit-1"})
    again = client.post("/v1/episodes/ep-r/checkins", headers={"Accept-Language": "en"},
                        json={"report": FEVER, "at": _at(5), "checkin_id": "visit-1"})
    assert again.json()["replayed"] is True
    assert again.json()["result"] == first.json()["result"]
    assert again.headers["Content-Language"] == "es" == again.json()["result"]["locale"]


@pytest.mark.parametrize("header", [None, "es", "ES-mx", "fr", "fr, es;q=0.1", "es;q=0, en",
                                    "*", "es;q=abc", "pt-BR, en;q=0.8, es;q=0.9"])
def test_checkins_negotiate_the_language_as_v1_triage_does(client: httpx.Client,
                                                           header: str | None) -> None:
    headers = {} if header is None else {"Accept-Language": header}
    triaged = client.post("/v1/triage", json=FEVER, headers=headers)
    checkin = client.post("/v1/episodes/ep-lang/checkins", headers=headers,
                          json={"report": FEVER, "at": _at(0)})
    assert checkin.status_code == triaged.status_code == 200
    assert checkin.headers["Content-Language"] == triaged.headers["Content-Language"]
    assert checkin.json()["result"]["locale"] == triaged.json()["locale"]
    assert checkin.json()["result"]["action"] == triaged.json()["action"]


def test_openapi_documents_accept_language_on_checkins(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/v1/episodes/{episode_id}/checkins"]["post"]
    [header] = [p for p in operation["parameters"] if p["in"] == "header"]
    assert header["name"].lower() == "accept-language"
    assert "Content-Language" in header["description"]
    assert "Accept-Language" in operation["description"]


@pytest.mark.parametrize(("body", "loc", "message"), [
    ({"report": FEVER, "at": "2026-11-25T08:00:00"}, ["body", "at"], "timezone"),
    ({"report": FEVER, "at": "0001-01-01T00:00:00+14:00"}, ["body", "at"], "outside the times"),
    ({"report": FEVER, "at": "2999-01-01T00:00:00Z"}, ["body", "at"], "ahead of it is refused"),
    ({"report": {"hours_since_procedure": -1}, "at": "2026-11-25T08:00:00Z"},
     ["body", "report", "hours_since_procedure"], "greater than or equal"),
    ({"report": FEVER, "at": "2026-11-25T08:00:00Z", "checkin_id": "no spaces"},
     ["body", "checkin_id"], "pattern"),
    ({"report": FEVER}, ["body", "at"], "Field required"),
    ({"report": FEVER, "at": "2026-11-25T08:00:00Z", "extra": 1}, ["body", "extra"],
     "Extra inputs"),
])
def test_bad_checkins_are_422_naming_the_field(client: httpx.Client, body: dict[str, Any],
                                               loc: list[str], message: str) -> None:
    response = client.post("/v1/episodes/ep-3/checkins", json=body)
    assert response.status_code == 422, response.text
    details = response.json()["detail"]
    assert any(d["loc"] == loc and message in d["msg"] for d in details), details
    assert client.get("/v1/episodes/ep-3").status_code == 404  # nothing stored


def test_a_time_far_from_the_episode_is_422(client: httpx.Client) -> None:
    assert post(client, "ep-4", FEVER, _at(0)).status_code == 200
    far = post(client, "ep-4", FEVER, _at(60 * 24 * 365))
    assert far.status_code == 422
    assert "from the episode's nearest other check-in" in far.json()["detail"][0]["msg"]


def test_bad_episode_ids_are_422(client: httpx.Client) -> None:
    assert client.get("/v1/episodes/bad%20id").status_code == 422
    assert post(client, "-starts-with-dash", FEVER, _at(0)).status_code == 422
    assert client.delete(f"/v1/episodes/{'x' * 129}").status_code == 422


def test_needs_the_token(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.get("/v1/episodes/ep-1").status_code == 401
        assert anonymous.delete("/v1/episodes/ep-1").status_code == 401
        assert anonymous.post("/v1/episodes/ep-1/checkins", json={}).status_code == 401


def test_the_size_limit_applies(client: httpx.Client) -> None:
    response = client.post("/v1/episodes/ep-5/checkins", content=b"{" + b" " * 5000 + b"}",
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_no_report_content_in_logs(client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    marker_pain = {**FEVER, "site_pain": 7, "hours_since_procedure": 51.123456}
    post(client, "ep-6", marker_pain, _at(0))
    post(client, "ep-6", {**marker_pain, "site_pain": 99}, _at(0))  # a 422
    post(client, "ep-6", marker_pain, "2999-01-01T00:00:00Z")  # refused time
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "51.123456" not in logged and "2999" not in logged


def test_without_a_store_the_endpoints_say_how_to_configure_one(
        engine: TriageEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MARROW_TRIAGE_DB", raising=False)
    with LiveServer(lambda _url: create_app(engine, token=TOKEN)) as live, \
            httpx.Client(base_url=live.url, headers=AUTH) as c:
        response = c.get("/v1/episodes/ep-1")
        assert response.status_code == 503
        assert response.json() == {
            "detail": "the timeline store is not configured: set MARROW_TRIAGE_DB"}


def test_the_store_comes_from_marrow_triage_db(tmp_path: Path, engine: TriageEngine,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARROW_TRIAGE_DB", f"sqlite:///{tmp_path / 'env.db'}")
    with LiveServer(lambda _url: create_app(engine, token=TOKEN)) as live, \
            httpx.Client(base_url=live.url, headers=AUTH) as c:
        assert post(c, "ep-env", FEVER, _at(0)).status_code == 200
    with SQLiteStore(tmp_path / "env.db") as store:
        assert len(store.checkins("ep-env")) == 1


def test_serve_stops_at_once_when_the_store_cannot_be_opened(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from marrow_triage.adapters.cli.main import app

    result = CliRunner().invoke(app, ["serve", "--port", "0", "--db",
                                      "postgresql://marrow@127.0.0.1:1/none?connect_timeout=2"],
                                env={"MARROW_TRIAGE_API_TOKEN": TOKEN})
    assert result.exit_code == 2
    assert result.output.startswith("--db: postgresql://marrow@127.0.0.1:1/none")
    assert "cannot connect" in result.output and "Traceback" not in result.output
