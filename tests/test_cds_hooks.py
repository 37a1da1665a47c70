"""CDS Hooks 2.0 over real HTTP: discovery, cards by level, FHIR prefetch, client JWTs."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from live_server import LiveServer
from marrow_triage import TriageEngine, Urgency
from marrow_triage.adapters.cds_hooks.hooks import (
    MAX_SUMMARY,
    SERVICE_ID,
    CdsAuthError,
    CdsClients,
    build_cards,
)
from marrow_triage.adapters.fhir.resources import to_questionnaire_response
from marrow_triage.adapters.service.app import create_app
from marrow_triage.models import Finding, TriageResult

EHR = "https://ehr.example.org"
OTHER = "https://other-ehr.example.org"
PATH = f"/cds-services/{SERVICE_ID}"

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP384R1())
OTHER_KEY = ec.generate_private_key(ec.SECP384R1())
STRANGER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(private: Any, kid: str) -> dict[str, Any]:
    public = private.public_key()
    algorithm = jwt.algorithms.RSAAlgorithm if isinstance(public, rsa.RSAPublicKey) else (
        jwt.algorithms.ECAlgorithm)
    data: dict[str, Any] = json.loads(algorithm.to_jwk(public))
    data["kid"] = kid
    return data


def pem(private: Any) -> str:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


CLIENTS = {
    EHR: {"keys": [jwk(RSA_KEY, "rsa-1"), jwk(EC_KEY, "ec-1")]},
    OTHER: pem(OTHER_KEY),
}

LEVEL_REPORTS = {
    Urgency.EMERGENCY: {"hours_since_procedure": 20, "chest_pain": True},
    Urgency.URGENT: {"hours_since_procedure": 20, "bleeding": "does_not_stop"},
    Urgency.SOON: {"hours_since_procedure": 20, "chills": True},
    Urgency.SELF_CARE: {"hours_since_procedure": 48, "site_pain": 3},
}
INDICATORS = {Urgency.EMERGENCY: "critical", Urgency.URGENT: "critical",
              Urgency.SOON: "warning", Urgency.SELF_CARE: "info"}


def token(aud: str, *, key: Any = RSA_KEY, alg: str = "RS256", kid: str | None = "rsa-1",
          drop: tuple[str, ...] = (), **claims: Any) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"iss": EHR, "aud": aud, "iat": now, "exp": now + 120,
                               "jti": str(uuid.uuid4()), **claims}
    for name in drop:
        payload.pop(name)
    headers = {"kid": kid} if kid else None
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def hook_body(**extra: Any) -> dict[str, Any]:
    return {"hook": "patient-view", "hookInstance": str(uuid.uuid4()),
            "context": {"userId": "Practitioner/1", "patientId": "123"}, **extra}


@pytest.fixture(scope="module")
def engine() -> TriageEngine:
    return TriageEngine.default()


@pytest.fixture(scope="module")
def server(engine: TriageEngine) -> Iterator[LiveServer]:
    with LiveServer(lambda url: create_app(engine, token="t", cds_keys=CLIENTS,
                                           public_url=url)) as live:
        yield live


@pytest.fixture()
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url) as c:
        yield c


def call(client: httpx.Client, server: LiveServer, body: dict[str, Any],
         jwt_token: str | None = None) -> httpx.Response:
    bearer = jwt_token if jwt_token is not None else token(server.url + PATH)
    return client.post(PATH, json=body, headers={"Authorization": f"Bearer {bearer}"})


def test_discovery_lists_the_service(client: httpx.Client) -> None:
    response = client.get("/cds-services")
    assert response.status_code == 200
    [service] = response.json()["services"]
    assert service["id"] == SERVICE_ID
    assert service["hook"] == "patient-view"
    assert service["prefetch"]["questionnaireResponse"].startswith(
        "QuestionnaireResponse?subject={{context.patientId}}")
    assert "questionnaire=https://" in service["prefetch"]["questionnaireResponse"]


@pytest.mark.parametrize("level", list(Urgency))
def test_cards_by_level_from_context_report(
    client: httpx.Client, server: LiveServer, engine: TriageEngine, level: Urgency
) -> None:
    report = LEVEL_REPORTS[level]
    result = engine.triage(report)
    assert result.level is level
    response = call(client, server, hook_body(context={"patientId": "1", "report": report}))
    assert response.status_code == 200, response.text
    [card] = response.json()["cards"]
    assert card["indicator"] == INDICATORS[level]
    assert len(card["summary"]) < 140
    assert card["summary"] == result.summary
    for finding in result.findings:
        assert finding.explanation in card["detail"]
        assert finding.source.quote in card["detail"]
    pack = engine.pack
    assert card["source"]["label"] == f"{pack.name} {pack.version}"
    assert card["source"]["url"] == result.findings[0].source.url
    assert card["source"]["url"].startswith("https://")


def test_prefetched_questionnaire_response_gives_the_same_card(
    client: httpx.Client, server: LiveServer
) -> None:
    report = LEVEL_REPORTS[Urgency.URGENT]
    direct = call(client, server, hook_body(context={"patientId": "1", "report": report}))
    qr = to_questionnaire_response(report, subject_reference="Patient/1")
    via_resource = call(client, server, hook_body(prefetch={"questionnaireResponse": qr}))
    bundle = {"resourceType": "Bundle", "type": "searchset",
              "entry": [{"resource": qr}]}
    via_bundle = call(client, server, hook_body(prefetch={"questionnaireResponse": bundle}))
    assert direct.status_code == via_resource.status_code == via_bundle.status_code == 200
    assert direct.json() == via_resource.json() == via_bundle.json()
    assert direct.json()["cards"][0]["indicator"] == "critical"


def test_no_questionnaire_response_found_gives_no_cards(
    client: httpx.Client, server: LiveServer
) -> None:
    empty = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    for value in (None, empty):
        response = call(client, server, hook_body(prefetch={"questionnaireResponse": value}))
        assert response.status_code == 200
        assert response.json() == {"cards": []}


def test_missing_or_invalid_input_is_422_naming_the_field(
    client: httpx.Client, server: LiveServer
) -> None:
    response = call(client, server, hook_body())
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "prefetch", "questionnaireResponse"]

    bad = {"hours_since_procedure": 20, "site_pain": "high"}
    response = call(client, server, hook_body(context={"patientId": "1", "report": bad}))
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [
        ["body", "context", "report", "site_pain"]]

    qr = to_questionnaire_response({"hours_since_procedure": 20, "site_pain": 4})
    for item in qr["item"]:
        if item["linkId"] == "site_pain":
            item["answer"] = [{"valueString": "four"}]
    response = call(client, server, hook_body(prefetch={"questionnaireResponse": qr}))
    assert response.status_code == 422
    assert any("site_pain" in e["loc"] for e in response.json()["detail"])

    response = call(client, server, {"hook": "patient-view"})
    assert response.status_code == 422


def test_es384_token_is_accepted(client: httpx.Client, server: LiveServer) -> None:
    good = token(server.url + PATH, key=EC_KEY, alg="ES384", kid="ec-1")
    body = hook_body(context={"report": LEVEL_REPORTS[Urgency.SOON]})
    assert call(client, server, body, good).status_code == 200
    pem_issuer = token(server.url + PATH, key=OTHER_KEY, alg="ES384", kid=None, iss=OTHER)
    assert call(client, server, body, pem_issuer).status_code == 200


def _bad_tokens(aud: str) -> dict[str, str]:
    now = int(time.time())
    public_pem = pem(RSA_KEY).encode()
    return {
        "wrong key": token(aud, key=STRANGER_KEY),
        "unknown issuer": token(aud, iss="https://evil.example"),
        "other issuer's key": token(aud, key=EC_KEY, alg="ES384", kid=None, iss=OTHER),
        "wrong audience": token("https://elsewhere.example" + PATH),
        "audience of another service": token(aud.replace(SERVICE_ID, "other-service")),
        "expired": token(aud, iat=now - 600, exp=now - 300),
        "no exp": token(aud, drop=("exp",)),
        "no jti": token(aud, drop=("jti",)),
        "no iat": token(aud, drop=("iat",)),
        "exp too far ahead": token(aud, exp=now + 3600),
        "kid of another key": token(aud, kid="ec-1"),
        "alg none": jwt.encode({"iss": EHR, "aud": aud, "exp": now + 60, "iat": now,
                                "jti": "x"}, None, algorithm="none"),
        "hmac with the public key": _hmac_token(public_pem, aud, now),
        "garbage": "not.a.jwt",
    }


def _hmac_token(secret: bytes, aud: str, now: int) -> str:
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps({"iss": EHR, "aud": aud, "exp": now + 60, "iat": now,
                              "jti": "y"}).encode())
    sig = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(sig)}"


@pytest.mark.parametrize("case", sorted(_bad_tokens("https://x/" + PATH)))
def test_unacceptable_jwts_get_401(client: httpx.Client, server: LiveServer, case: str) -> None:
    bad = _bad_tokens(server.url + PATH)[case]
    body = hook_body(context={"report": LEVEL_REPORTS[Urgency.EMERGENCY]})
    response = call(client, server, body, bad)
    assert response.status_code == 401, (case, response.text)
    assert "cards" not in response.json()


def test_missing_jwt_and_replayed_jti_get_401(client: httpx.Client, server: LiveServer) -> None:
    body = hook_body(context={"report": LEVEL_REPORTS[Urgency.SOON]})
    assert client.post(PATH, json=body).status_code == 401
    once = token(server.url + PATH)
    assert call(client, server, body, once).status_code == 200
    replay = call(client, server, body, once)
    assert replay.status_code == 401
    assert "already used" in replay.json()["detail"]


def test_audience_from_the_request_url_when_no_public_url(engine: TriageEngine) -> None:
    factory = lambda url: create_app(engine, token="t", cds_keys=CLIENTS)  # noqa: E731
    with LiveServer(factory) as live, httpx.Client(base_url=live.url) as c:
        body = hook_body(context={"report": LEVEL_REPORTS[Urgency.SOON]})
        good = call(c, live, body, token(live.url + PATH))
        assert good.status_code == 200
        wrong = call(c, live, body, token("https://public.example" + PATH))
        assert wrong.status_code == 401


def test_without_configured_clients_the_service_refuses(
    engine: TriageEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MARROW_TRIAGE_CDS_CLIENTS", raising=False)
    with LiveServer(lambda url: create_app(engine, token="t")) as live, httpx.Client(
        base_url=live.url
    ) as c:
        body = hook_body(context={"report": LEVEL_REPORTS[Urgency.SOON]})
        response = call(c, live, body, token(live.url + PATH))
        assert response.status_code == 503
        assert "MARROW_TRIAGE_CDS_CLIENTS" in response.json()["detail"]
        assert c.get("/cds-services").status_code == 200


def test_clients_from_a_file(tmp_path: Any, engine: TriageEngine,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "clients.json"
    path.write_text(json.dumps(CLIENTS))
    monkeypatch.setenv("MARROW_TRIAGE_CDS_CLIENTS", str(path))
    factory = lambda url: create_app(engine, token="t", public_url=url)  # noqa: E731
    with LiveServer(factory) as live, httpx.Client(base_url=live.url) as c:
        body = hook_body(context={"report": LEVEL_REPORTS[Urgency.SOON]})
        assert call(c, live, body, token(live.url + PATH)).status_code == 200


def test_private_keys_and_bad_key_files_are_refused() -> None:
    private_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY))
    with pytest.raises(ValueError, match="private key"):
        CdsClients({EHR: private_jwk})
    with pytest.raises(ValueError, match="unusable key"):
        CdsClients({EHR: {"keys": [{"kty": "RSA"}]}})
    with pytest.raises(CdsAuthError):
        CdsClients({EHR: pem(RSA_KEY)}).verify("abc", "https://x")


def test_long_summaries_are_cut_below_140(engine: TriageEngine) -> None:
    result = engine.triage(LEVEL_REPORTS[Urgency.SOON])
    finding = result.findings[0]
    many = tuple(
        Finding(rule_id=f"r{i}", level=Urgency.SOON, explanation=finding.explanation,
                source=finding.source)
        for i in range(12)
    )
    long = TriageResult.model_validate({**result.model_dump(), "findings": many,
                                        "summary": "Soon: " + ", ".join(["Chills"] * 40)})
    [card] = build_cards(long, engine.pack)
    assert len(card["summary"]) <= MAX_SUMMARY < 140
    assert card["summary"].startswith("Soon:")
    assert card["detail"].count(finding.explanation) == 12


HOSTILE_PREFETCH: list[Any] = [
    "QuestionnaireResponse",
    [],
    5,
    {"resourceType": "Bundle", "entry": 5},
    {"resourceType": "Bundle", "entry": "abc"},
    {"resourceType": "Bundle", "entry": [1, None, {"resource": "x"}]},
    {"resourceType": "Patient", "id": "1"},
    {"resourceType": "QuestionnaireResponse"},
    {"resourceType": "QuestionnaireResponse", "status": "completed", "item": 5},
    {"resourceType": "QuestionnaireResponse", "status": "completed",
     "item": [{"linkId": "hours_since_procedure", "answer": [{"valueDecimal": 1e308}]}]},
]


@pytest.mark.parametrize("value", HOSTILE_PREFETCH, ids=range(len(HOSTILE_PREFETCH)))
def test_hostile_prefetch_is_a_client_error_or_no_cards(
    client: httpx.Client, server: LiveServer, value: Any
) -> None:
    response = call(client, server, hook_body(prefetch={"questionnaireResponse": value}))
    assert response.status_code in (200, 422), response.text
    if response.status_code == 200:
        assert response.json() == {"cards": []}
    else:
        assert response.json()["detail"][0]["loc"][:3] == [
            "body", "prefetch", "questionnaireResponse"]


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b"[" * 3000 + b"]" * 3000, b"\xff",
                                  b'{"hook": 1, "hookInstance": [], "context": null}'])
def test_hostile_hook_bodies_are_client_errors(
    client: httpx.Client, server: LiveServer, body: bytes
) -> None:
    headers = {"Authorization": f"Bearer {token(server.url + PATH)}",
               "Content-Type": "application/json"}
    response = client.post(PATH, content=body, headers=headers)
    assert 400 <= response.status_code < 500, response.text
