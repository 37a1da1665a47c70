"""The HTTP service over real HTTP: a uvicorn server on a loopback port, httpx as client."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from live_server import LiveServer
from marrow_triage import SymptomReport, TriageEngine, TriageResult
from marrow_triage.adapters.service.app import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_BODY_BYTES,
    create_app,
)
from marrow_triage.errors import MAX_LISTED_PROBLEMS
from marrow_triage.testing import report_dicts

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "service-tests-api-token-4f1c9a7e2b"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FEVER = json.loads((ROOT / "examples" / "fever-101F.json").read_text())


@pytest.fixture(scope="module")
def engine() -> TriageEngine:
    return TriageEngine.default()


@pytest.fixture(scope="module")
def server(engine: TriageEngine) -> Iterator[LiveServer]:
    factory = lambda url: create_app(engine, token=TOKEN, max_body_bytes=4096, max_batch=5)  # noqa: E731
    with LiveServer(factory) as live:
        yield live


@pytest.fixture()
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url) as c:
        yield c


def expected(engine: TriageEngine, report: dict[str, Any]) -> Any:
    return json.loads(engine.triage(report).model_dump_json())


def test_healthz_is_open(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/healthz", "/v1/triage", "/v1/rules", "/cds-services",
                                  "/openapi.json", "/nowhere"])
def test_security_headers_on_every_answer(client: httpx.Client, path: str) -> None:
    response = client.post(path, json=FEVER, headers=AUTH) if path == "/v1/triage" else (
        client.get(path, headers=AUTH))
    headers = response.headers
    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    assert headers["content-security-policy"].startswith("default-src 'none';")


def test_no_swagger_ui_from_a_cdn(client: httpx.Client) -> None:
    """Issue 13: /docs loaded Swagger UI's scripts from a third-party CDN."""
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert client.get(path, headers=AUTH).status_code == 404
        assert client.get(path).status_code == 401
    assert "cdn" not in client.get("/openapi.json").text.lower()


def test_triage_matches_the_engine(client: httpx.Client, engine: TriageEngine) -> None:
    response = client.post("/v1/triage", json=FEVER, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json() == expected(engine, FEVER)
    assert response.json()["level"] == "urgent"
    TriageResult.model_validate(response.json())


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "missing bearer token"),
        ({"Authorization": "Bearer wrong"}, "wrong bearer token"),
        ({"Authorization": f"Basic {TOKEN}"}, "missing bearer token"),
        ({"Authorization": f"Bearer {TOKEN}x"}, "wrong bearer token"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/triage", "/v1/triage/batch", "/v1/rules"])
def test_v1_needs_the_bearer_token(
    client: httpx.Client, path: str, headers: dict[str, str], detail: str
) -> None:
    if path == "/v1/rules":
        response = client.get(path, headers=headers)
    else:
        response = client.post(path, json=FEVER, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": detail}
    assert response.headers["www-authenticate"] == "Bearer"


def test_without_a_configured_token_v1_refuses(
    engine: TriageEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MARROW_TRIAGE_API_TOKEN", raising=False)
    with LiveServer(lambda url: create_app(engine)) as live, httpx.Client(base_url=live.url) as c:
        for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer x"}):
            response = c.post("/v1/triage", json=FEVER, headers=headers)
            assert response.status_code == 503
            assert "MARROW_TRIAGE_API_TOKEN" in response.json()["detail"]
        # Issues 11 and 13: /healthz said ok while every /v1 call answered 503.
        health = c.get("/healthz")
        assert health.status_code == 503
        assert health.json()["status"] == "not-ready"
        assert "MARROW_TRIAGE_API_TOKEN" in health.json()["problems"][0]


@pytest.mark.parametrize("short", ["x", "from-env", "a" * 31])
def test_a_short_token_is_refused(
    engine: TriageEngine, monkeypatch: pytest.MonkeyPatch, short: str
) -> None:
    with pytest.raises(ValueError, match="at least 32 characters") as info:
        create_app(engine, token=short)
    assert short not in str(info.value) or short == "x"
    monkeypatch.setenv("MARROW_TRIAGE_API_TOKEN", short)
    with pytest.raises(ValueError, match="at least 32 characters"):
        create_app(engine)


def test_token_from_the_environment(
    engine: TriageEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env = "token-from-the-environment-0123456789"
    monkeypatch.setenv("MARROW_TRIAGE_API_TOKEN", from_env)
    with LiveServer(lambda url: create_app(engine)) as live, httpx.Client(base_url=live.url) as c:
        ok = c.post("/v1/triage", json=FEVER, headers={"Authorization": f"Bearer {from_env}"})
        assert ok.status_code == 200
        assert c.post("/v1/triage", json=FEVER, headers=AUTH).status_code == 401


def test_invalid_report_is_422_naming_each_field(client: httpx.Client) -> None:
    bad = {
        "hours_since_procedure": "30",
        "temperature": {"value": 38.5, "unit": "K"},
        "site_pain": 11,
        "chils": True,
    }
    response = client.post("/v1/triage", json=bad, headers=AUTH)
    assert response.status_code == 422
    locs = {tuple(e["loc"]) for e in response.json()["detail"]}
    assert locs == {
        ("body", "hours_since_procedure"),
        ("body", "temperature", "unit"),
        ("body", "site_pain"),
        ("body", "chils"),
    }
    # The answer names fields; it does not echo the submitted values back.
    assert all(set(e) == {"loc", "msg", "type"} for e in response.json()["detail"])


def test_batch_keeps_order_and_matches_the_engine(
    client: httpx.Client, engine: TriageEngine
) -> None:
    reports = [
        FEVER,
        {"hours_since_procedure": 20, "chest_pain": True},
        {"hours_since_procedure": 48, "site_pain": 3},
    ]
    response = client.post("/v1/triage/batch", json=reports, headers=AUTH)
    assert response.status_code == 200
    assert response.json() == [expected(engine, r) for r in reports]
    assert [r["level"] for r in response.json()] == ["urgent", "emergency", "self_care"]
    assert client.post("/v1/triage/batch", json=[], headers=AUTH).json() == []


def test_batch_limit_and_one_bad_report_fail_the_whole_batch(client: httpx.Client) -> None:
    too_many = [{"hours_since_procedure": 1}] * 6
    response = client.post("/v1/triage/batch", json=too_many, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body"]
    one_bad = [{"hours_since_procedure": 1}, {"hours_since_procedure": -1}]
    response = client.post("/v1/triage/batch", json=one_bad, headers=AUTH)
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", 1, "hours_since_procedure"]]


def test_body_size_limit(client: httpx.Client) -> None:
    big = {"hours_since_procedure": 1, "padding": "x" * 5000}
    response = client.post("/v1/triage", json=big, headers=AUTH)
    assert response.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        yield b'{"hours_since_procedure": 1, "x": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    response = client.post(
        "/v1/triage", content=chunks(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 413


@pytest.fixture(scope="module")
def roomy(engine: TriageEngine) -> Iterator[httpx.Client]:
    """A server with the default body and batch limits."""
    with LiveServer(lambda url: create_app(engine, token=TOKEN)) as live, \
            httpx.Client(base_url=live.url, headers=AUTH) as c:
        yield c


def test_many_unknown_keys_give_a_small_422(roomy: httpx.Client) -> None:
    """Issue 13: a 256 KB body of 29,612 unknown keys answered 2.6 MB listing each."""
    keys = ["".join(k) for k in itertools.product(string.ascii_letters + string.digits,
                                                  repeat=3)][:29_612]
    body = {"hours_since_procedure": 1, **dict.fromkeys(keys, 1)}
    raw = json.dumps(body, separators=(",", ":")).encode()
    assert len(raw) <= DEFAULT_MAX_BODY_BYTES
    response = roomy.post("/v1/triage", content=raw,
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert len(response.content) < 4096
    detail = response.json()["detail"]
    assert len(detail) == MAX_LISTED_PROBLEMS + 1
    assert detail[0]["loc"] == ["body", "aaa"]
    assert detail[-1]["msg"] == f"and {29_612 - MAX_LISTED_PROBLEMS} more problem(s), not listed"


def test_a_batch_of_bad_reports_gives_a_small_422(roomy: httpx.Client) -> None:
    bad = {"hours_since_procedure": -1, "site_pain": 11, "chills": "yes", "bleeding": "x"}
    response = roomy.post("/v1/triage/batch", json=[bad] * DEFAULT_MAX_BATCH)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert len(detail) == MAX_LISTED_PROBLEMS + 1
    assert detail[0]["loc"] == ["body", 0, "hours_since_procedure"]
    assert detail[-1]["msg"] == (
        f"and {4 * DEFAULT_MAX_BATCH - MAX_LISTED_PROBLEMS} more problem(s), not listed")


def test_422_does_not_repeat_the_reported_values(roomy: httpx.Client) -> None:
    report = {"hours_since_procedure": 1, "temperature": {"value": 49.37, "unit": "C"},
              "site_pain": 17}
    response = roomy.post("/v1/triage", json=report)
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [
        ["body", "temperature"], ["body", "site_pain"]]
    assert "49.37" not in response.text
    assert "17" not in response.text


HOSTILE: list[bytes] = [
    b"",
    b"{",
    b"null",
    b"[]",
    b'"report"',
    b"[" * 3000 + b"]" * 3000,
    b'{"a":' * 1000 + b"1" + b"}" * 1000,
    b'{"hours_since_procedure": NaN}',
    b'{"hours_since_procedure": Infinity}',
    b'{"hours_since_procedure": 1e999}',
    b'{"hours_since_procedure": ' + b"9" * 3000 + b"}",
    b'{"hours_since_procedure": 1, "temperature": {"value": -0.0, "unit": "C"}}',
    b'{"hours_since_procedure": 1, "temperature": [38, "C"]}',
    b'{"hours_since_procedure": 1, "hours_since_procedure": "x"}',
    b"\xff\xfe\x00{",
    b'{"hours_since_procedure": 1, "bleeding": "\\ud800"}',
    b'{"__proto__": {"x": 1}, "hours_since_procedure": 1}',
]


@pytest.mark.parametrize("body", HOSTILE, ids=range(len(HOSTILE)))
@pytest.mark.parametrize("path", ["/v1/triage", "/v1/triage/batch"])
def test_hostile_bodies_never_give_a_server_error(
    client: httpx.Client, path: str, body: bytes
) -> None:
    response = client.post(path, content=body,
                           headers={**AUTH, "Content-Type": "application/json"})
    if path == "/v1/triage/batch" and body == b"[]":
        assert response.json() == []  # an empty batch is valid
        return
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert "detail" in response.json()


def test_wrong_content_type_is_a_client_error(client: httpx.Client) -> None:
    response = client.post("/v1/triage", content=json.dumps(FEVER),
                           headers={**AUTH, "Content-Type": "text/plain"})
    assert 400 <= response.status_code < 500


def test_rules_lists_pack_identity_and_catalogue(
    client: httpx.Client, engine: TriageEngine
) -> None:
    response = client.get("/v1/rules", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    pack = engine.pack
    assert (body["name"], body["version"], body["sha256"]) == (pack.name, pack.version,
                                                              pack.sha256)
    assert sorted(r["id"] for r in body["rules"]) == sorted(r.id for r in pack.rules)
    by_id = {r["id"]: r for r in body["rules"]}
    fever = by_id["fever"]
    assert fever["level"] == "urgent"
    assert "temperature_c is at least" in fever["when"]
    assert fever["source"]["quote"] == pack.source(pack.rule("fever")).quote
    assert all(r["title"] and r["source"]["title"] for r in body["rules"])


def test_openapi_is_generated_from_the_models(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert set(SymptomReport.model_fields) == set(schemas["SymptomReport"]["properties"])
    assert "TriageResult" in schemas
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    batch = spec["paths"]["/v1/triage/batch"]["post"]["requestBody"]["content"]
    assert batch["application/json"]["schema"]["maxItems"] == 5


def test_concurrent_requests_all_answer_correctly(
    server: LiveServer, engine: TriageEngine
) -> None:
    reports = [{"hours_since_procedure": h, "site_pain": h % 11} for h in range(40)]

    async def run() -> list[Any]:
        async with httpx.AsyncClient(base_url=server.url, headers=AUTH) as c:
            responses = await asyncio.gather(*(c.post("/v1/triage", json=r) for r in reports))
        return [r.json() for r in responses]

    assert asyncio.run(run()) == [expected(engine, r) for r in reports]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=report_dicts())
def test_any_valid_report_is_answered_like_the_engine(
    client: httpx.Client, engine: TriageEngine, payload: dict[str, Any]
) -> None:
    response = client.post("/v1/triage", json=payload, headers=AUTH)
    assert response.status_code == 200
    assert response.json() == expected(engine, payload)


class _FailingEngine(TriageEngine):
    """Fault injection: an engine whose evaluation fails with the report in the message."""

    async def triage_async(self, report: Any, locale: str | None = None) -> TriageResult:
        raise RuntimeError(f"evaluation failed for {report!r}")


MARKERS = ("37.77", "123.456", "does_not_stop", "spots_on_dressing", "Sensitive-Marker")


def test_no_report_content_in_logs(
    engine: TriageEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    report = {"hours_since_procedure": 123.456, "temperature": {"value": 37.77, "unit": "C"},
              "bleeding": "does_not_stop"}
    invalid = {"hours_since_procedure": 123.456, "bleeding": "spots_on_dressing",
               "temperature": {"value": 37.77, "unit": "X"}, "Sensitive-Marker": 1}
    failing = _FailingEngine(engine.pack)
    for app_engine in (engine, failing):
        factory = lambda url, e=app_engine: create_app(e, token=TOKEN)  # noqa: E731
        with LiveServer(factory) as live, httpx.Client(base_url=live.url, headers=AUTH) as c:
            first = c.post("/v1/triage", json=report)
            assert c.post("/v1/triage", json=invalid).status_code == 422
            assert c.post("/v1/triage/batch", json=[report, invalid]).status_code == 422
            assert c.post("/v1/triage", content=b"{" + json.dumps(report).encode()).is_error
            if app_engine is failing:
                assert first.status_code == 500
                assert first.json() == {"detail": "internal error"}
            else:
                assert first.status_code == 200
    text = caplog.text
    assert "POST /v1/triage" in text  # the access log was captured...
    assert "RuntimeError" in text  # ...and so was the failure, by class only
    for marker in MARKERS:
        assert marker not in text


def test_deny_by_default(client: httpx.Client) -> None:
    assert client.get("/v2/triage").status_code == 401
    assert client.get("/v2/triage", headers=AUTH).status_code == 404
    assert client.post("/healthz").status_code == 401  # only GET/HEAD are open
    assert client.head("/healthz").status_code in (200, 405)
    assert client.get("/openapi.json").status_code == 200
