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
FEEDBACK = PATH + "/feedback"
TOKEN = "cds-tests-api-token-0123456789abcdef"

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
    with LiveServer(lambda url: create_app(engine, token=TOKEN, cds_keys=CLIENTS,
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
    cards = [[{k: v for k, v in card.items() if k != "uuid"} for card in r.json()["cards"]]
             for r in (direct, via_resource, via_bundle)]
    assert cards[0] == cards[1] == cards[2]  # the same card but for its own uuid
    assert direct.json()["cards"][0]["indicator"] == "critical"


def test_no_questionnaire_response_found_gives_no_cards(
    client: httpx.Client, server: LiveServer
) -> None:
    empty = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    for value in (None, empty):
        response = call(client, server, hook_body(prefetch={"questionnaireResponse": value}))
        assert response.status_code == 200
        assert response.json() == {"cards": []}


def test_a_missing_prefetch_is_412_with_an_operation_outcome(
    client: httpx.Client, server: LiveServer
) -> None:
    """CDS Hooks 2.0: a service that cannot get the data it needs SHALL answer 412."""
    for body in (hook_body(), hook_body(prefetch={}), hook_body(prefetch={"other": None})):
        response = call(client, server, body)
        assert response.status_code == 412, response.text
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        [issue] = outcome["issue"]
        assert issue["severity"] == "error"
        assert "questionnaireResponse" in issue["details"]["text"]


# The shape of the spec's example OperationOutcome (a failed prefetch), our own copy.
FAILED_PREFETCH = {
    "resourceType": "OperationOutcome",
    "id": "prefetch-failed",
    "issue": [{"severity": "error", "code": "processing",
               "details": {"text": "The FHIR server did not answer: patient Jane Doe"},
               "diagnostics": "timeout"},
              {"severity": "fatal", "code": "Jane Doe, born 1950"}],
}


@pytest.mark.parametrize("where", ["in place", "in the Bundle"])
def test_an_operation_outcome_in_prefetch_is_a_clear_412(
    client: httpx.Client, server: LiveServer, where: str
) -> None:
    value: dict[str, Any] = FAILED_PREFETCH
    if where == "in the Bundle":
        qr = to_questionnaire_response(LEVEL_REPORTS[Urgency.SELF_CARE])
        value = {"resourceType": "Bundle", "type": "searchset", "entry": [
            {"resource": FAILED_PREFETCH, "search": {"mode": "outcome"}},
            {"resource": qr, "search": {"mode": "match"}}]}
    response = call(client, server, hook_body(prefetch={"questionnaireResponse": value}))
    assert response.status_code == 412
    text = response.json()["issue"][0]["details"]["text"]
    assert "could not prefetch questionnaireResponse" in text
    assert "OperationOutcome (issue code processing)" in text
    assert "Jane" not in response.text  # the client's free text is not repeated


def test_an_operation_outcome_of_warnings_only_does_not_hide_the_check_in(
    client: httpx.Client, server: LiveServer
) -> None:
    note = {"resourceType": "OperationOutcome",
            "issue": [{"severity": "warning", "code": "informational"}]}
    qr = to_questionnaire_response(LEVEL_REPORTS[Urgency.URGENT])
    bundle = {"resourceType": "Bundle", "type": "searchset",
              "entry": [{"resource": note}, {"resource": qr}]}
    response = call(client, server, hook_body(prefetch={"questionnaireResponse": bundle}))
    assert response.status_code == 200
    assert response.json()["cards"][0]["indicator"] == "critical"


@pytest.mark.parametrize("hook", ["order-select", "patient-view ", "encounter-start", ""])
def test_a_hook_other_than_patient_view_is_refused(
    client: httpx.Client, server: LiveServer, hook: str
) -> None:
    body = {**hook_body(context={"report": LEVEL_REPORTS[Urgency.EMERGENCY]}), "hook": hook}
    response = call(client, server, body)
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "hook"]]
    assert "cards" not in response.json()


def test_invalid_input_is_422_naming_the_field(
    client: httpx.Client, server: LiveServer
) -> None:
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


def test_every_card_has_its_own_uuid(client: httpx.Client, server: LiveServer) -> None:
    body = hook_body(context={"report": LEVEL_REPORTS[Urgency.SOON]})
    first = call(client, server, body).json()["cards"][0]["uuid"]
    second = call(client, server, body).json()["cards"][0]["uuid"]
    assert uuid.UUID(first) != uuid.UUID(second)


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
        "exp as a string": token(aud, exp=str(now + 60)),
        "iat as a string": token(aud, iat=str(now)),
        "exp as true": token(aud, exp=True),
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


def test_cds_clients_without_a_public_url_are_refused(
    engine: TriageEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: with no public URL the audience came from the Host header."""
    monkeypatch.delenv("MARROW_TRIAGE_PUBLIC_URL", raising=False)
    with pytest.raises(ValueError, match="MARROW_TRIAGE_PUBLIC_URL"):
        create_app(engine, token=TOKEN, cds_keys=CLIENTS)
    for bad in ("triage.example.org", "ftp://triage.example.org", "https://x.org/?a=1"):
        with pytest.raises(ValueError, match="not a base URL"):
            create_app(engine, token=TOKEN, cds_keys=CLIENTS, public_url=bad)


def test_the_audience_never_comes_from_host_or_forwarded_headers(
    engine: TriageEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    public = "https://triage.example.org"
    monkeypatch.setenv("MARROW_TRIAGE_PUBLIC_URL", public)
    factory = lambda url: create_app(engine, token=TOKEN, cds_keys=CLIENTS)  # noqa: E731
    with LiveServer(factory) as live, httpx.Client(base_url=live.url) as c:
        body = hook_body(context={"report": LEVEL_REPORTS[Urgency.SOON]})
        host = live.url.removeprefix("http://")
        # A token minted for another vendor's service, sent with headers naming it.
        for aud, headers in ((live.url + PATH, {}),
                             ("https://vendor.example" + PATH,
                              {"Host": "vendor.example", "X-Forwarded-Proto": "https"}),
                             (f"https://{host}{PATH}", {"X-Forwarded-Proto": "https"})):
            response = c.post(PATH, json=body, headers={
                **headers, "Authorization": f"Bearer {token(aud)}"})
            assert response.status_code == 401, aud
        assert call(c, live, body, token(public + PATH)).status_code == 200


def test_an_allow_list_of_public_urls(engine: TriageEngine) -> None:
    urls = "https://triage.example.org, https://triage.example.net/api/"
    factory = lambda url: create_app(engine, token=TOKEN, cds_keys=CLIENTS,  # noqa: E731
                                     public_url=urls)
    with LiveServer(factory) as live, httpx.Client(base_url=live.url) as c:
        body = hook_body(context={"report": LEVEL_REPORTS[Urgency.SOON]})
        for aud in ("https://triage.example.org" + PATH, "https://triage.example.net/api" + PATH):
            assert call(c, live, body, token(aud)).status_code == 200
        assert call(c, live, body, token("https://triage.example.com" + PATH)).status_code == 401


def test_without_configured_clients_the_service_refuses(
    engine: TriageEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MARROW_TRIAGE_CDS_CLIENTS", raising=False)
    with LiveServer(lambda url: create_app(engine, token=TOKEN)) as live, httpx.Client(
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
    factory = lambda url: create_app(engine, token=TOKEN, public_url=url)  # noqa: E731
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
    assert response.status_code in (200, 412, 422), response.text
    if response.status_code == 200:
        assert response.json() == {"cards": []}
    elif response.status_code == 412:
        assert response.json()["resourceType"] == "OperationOutcome"
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


# Feedback bodies shaped like the CDS Hooks 2.0 examples (suggestion accepted, overridden
# without a reason, overridden with a reason and a comment); uuids and texts are our own.
ACCEPTED = {"feedback": [{
    "card": "0b6b4e7e-0d1c-4a84-9a51-5d4f2a6c1e01", "outcome": "accepted",
    "acceptedSuggestions": [{"id": "6f1d9f0a-3c9e-4c55-8a0e-2b7d0c9e4a12"}],
    "outcomeTimestamp": "2026-11-25T10:05:31Z"}]}
OVERRIDDEN = {"feedback": [{
    "card": "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f", "outcome": "overridden",
    "outcomeTimestamp": "2026-11-25T00:00:00Z"}]}
OVERRIDDEN_WITH_REASON = {"feedback": [{
    "card": "2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a", "outcome": "overridden",
    "overrideReason": {
        "reason": {"code": "already-seen", "system": "https://ehr.example.org/override"},
        "userComment": "Spoke with Mrs Example on the phone at 09:12"},
    "outcomeTimestamp": "2026-11-25T00:00:00.52Z"}]}


def _feedback(client: httpx.Client, server: LiveServer, body: Any) -> httpx.Response:
    bearer = token(server.url + FEEDBACK)
    return client.post(FEEDBACK, json=body, headers={"Authorization": f"Bearer {bearer}"})


def test_feedback_is_counted_and_nothing_identifying_kept(
    engine: TriageEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    factory = lambda url: create_app(engine, token=TOKEN, cds_keys=CLIENTS,  # noqa: E731
                                     public_url=url)
    with LiveServer(factory) as live, httpx.Client(base_url=live.url) as c:
        for body in (ACCEPTED, OVERRIDDEN, OVERRIDDEN_WITH_REASON, OVERRIDDEN):
            response = _feedback(c, live, body)
            assert response.status_code == 200, response.text
            assert response.json() == {"received": 1}
        counts = c.get("/v1/cds-feedback", headers={"Authorization": f"Bearer {TOKEN}"})
        assert counts.json() == {"accepted": 1, "overridden": 3, "overridden_with_reason": 1,
                                 "with_user_comment": 1}
        assert c.get("/v1/cds-feedback").status_code == 401
        app = live.app
    kept = repr(vars(app.state)) + caplog.text
    for body in (ACCEPTED, OVERRIDDEN_WITH_REASON):
        item = body["feedback"][0]
        assert item["card"] not in kept
    assert "Mrs Example" not in kept and "already-seen" not in kept
    assert "6f1d9f0a" not in kept
    assert "CDS feedback: 1 overridden" in caplog.text


BAD_FEEDBACK: dict[str, Any] = {
    "no feedback": {},
    "empty list": {"feedback": []},
    "card not a uuid": {"feedback": [{**OVERRIDDEN["feedback"][0], "card": "card-1"}]},
    "unknown outcome": {"feedback": [{**OVERRIDDEN["feedback"][0], "outcome": "ignored"}]},
    "accepted without suggestions (cds-fb-2)": {"feedback": [{
        **ACCEPTED["feedback"][0], "acceptedSuggestions": []}]},
    "empty override reason (cds-fb-3)": {"feedback": [{
        **OVERRIDDEN["feedback"][0], "overrideReason": {}}]},
    "no outcomeTimestamp": {"feedback": [{"card": OVERRIDDEN["feedback"][0]["card"],
                                          "outcome": "overridden"}]},
    "timestamp without zone": {"feedback": [{**OVERRIDDEN["feedback"][0],
                                             "outcomeTimestamp": "2026-11-25T00:00:00"}]},
}


@pytest.mark.parametrize("case", sorted(BAD_FEEDBACK))
def test_feedback_not_in_the_spec_shape_is_422(
    client: httpx.Client, server: LiveServer, case: str
) -> None:
    response = _feedback(client, server, BAD_FEEDBACK[case])
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][0] == "body"


def test_feedback_needs_a_cds_client_jwt_for_its_own_url(
    client: httpx.Client, server: LiveServer
) -> None:
    assert client.post(FEEDBACK, json=OVERRIDDEN).status_code == 401
    hook_token = token(server.url + PATH)  # minted for the hook endpoint, not feedback
    response = client.post(FEEDBACK, json=OVERRIDDEN,
                           headers={"Authorization": f"Bearer {hook_token}"})
    assert response.status_code == 401


def _spec_shaped_call(prefetch: dict[str, Any]) -> dict[str, Any]:
    """A hook call shaped like the spec's patient-view example: fhirServer,
    fhirAuthorization, context with encounterId, prefetch (values are our own)."""
    return {
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": "https://fhir.ehr.example.org",
        "hook": "patient-view",
        "fhirAuthorization": {"access_token": "opaque", "token_type": "Bearer",
                              "expires_in": 300, "scope": "user/Patient.read",
                              "subject": "marrow-triage"},
        "context": {"userId": "Practitioner/example", "patientId": "1288992",
                    "encounterId": "89284"},
        "prefetch": prefetch,
    }


def test_the_spec_shaped_call_is_answered(client: httpx.Client, server: LiveServer) -> None:
    patient = {"resourceType": "Patient", "id": "1288992", "active": True}
    response = call(client, server, _spec_shaped_call({"patientToGreet": patient}))
    assert response.status_code == 412  # our prefetch key is not there
    qr = to_questionnaire_response(LEVEL_REPORTS[Urgency.EMERGENCY])
    response = call(client, server, _spec_shaped_call(
        {"patientToGreet": patient, "questionnaireResponse": qr}))
    assert response.status_code == 200
    [card] = response.json()["cards"]
    assert card["indicator"] == "critical"
    uuid.UUID(card["uuid"])


def test_the_patients_own_words_never_become_markup_in_a_card(engine: TriageEngine) -> None:
    """A free-text concern is quoted as written: no link, image or HTML in the EHR."""
    words = "see ![x](http://evil.example/a.png) and [call](http://evil.example) <b>now</b>"
    result = engine.triage({"hours_since_procedure": 30, "other_concern": words})
    assert result.level is Urgency.SOON
    [card] = build_cards(result, engine.pack)
    detail = card["detail"]
    assert "![x](http" not in detail and "[call](http" not in detail and "<b>" not in detail
    assert r"\!\[x\](http://evil.example/a.png) and \[call\](http://evil.example) \<b\>now" \
        in detail


@pytest.mark.parametrize("instance", ["not-a-uuid", "", "1234"])
def test_a_hook_instance_that_is_not_a_uuid_is_refused_naming_it(
        client: httpx.Client, server: LiveServer, instance: str) -> None:
    """CDS Hooks 2.0: hookInstance is a UUID for the hook call."""
    body = hook_body()
    body["hookInstance"] = instance
    response = call(client, server, body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "hookInstance"]
