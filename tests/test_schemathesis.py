"""Schemathesis against the service's OpenAPI schema, over HTTP to a live uvicorn server.

Every operation gets schema-valid and schema-violating requests (with credentials, and a
fresh CDS client JWT for the CDS Hooks call); no answer may be a 5xx, every answer must
match the schema's documented status codes, content types and response bodies.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import schemathesis
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from live_server import LiveServer
from marrow_triage import TriageEngine
from marrow_triage.adapters.cds_hooks.hooks import SERVICE_ID
from marrow_triage.adapters.service.app import create_app
from marrow_triage.timeline import SQLiteStore, Timeline

TOKEN = "schemathesis-api-token-0123456789abcdef"
ISSUER = "https://ehr.example.org"
KEY = ec.generate_private_key(ec.SECP384R1())
CDS_PATH = f"/cds-services/{SERVICE_ID}"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    public = KEY.public_key()
    clients = {ISSUER: {"keys": [{**jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True),
                                  "kid": "k1"}]}}
    engine = TriageEngine.default()
    store = SQLiteStore(tmp_path_factory.mktemp("schemathesis") / "timeline.db")
    timeline = Timeline(store, engine)
    with LiveServer(lambda url: create_app(engine, token=TOKEN, cds_keys=clients,
                                           public_url=url, max_batch=20,
                                           timeline=timeline)) as live:
        yield live
    store.close()


@pytest.fixture(scope="module")
def schema(server: LiveServer) -> Any:
    return schemathesis.openapi.from_url(server.url + "/openapi.json")


def _headers(server: LiveServer, path: str) -> dict[str, str]:
    if path.startswith(CDS_PATH):
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": server.url + path, "iat": now, "exp": now + 60,
                  "jti": str(uuid.uuid4())}
        bearer = jwt.encode(claims, KEY, algorithm="ES384", headers={"kid": "k1"})
    else:
        bearer = TOKEN
    return {"Authorization": f"Bearer {bearer}"}


OPERATIONS = ["GET /healthz", "POST /v1/triage", "POST /v1/triage/batch", "GET /v1/rules",
              "GET /v1/cds-feedback", "GET /cds-services", f"POST {CDS_PATH}",
              f"POST {CDS_PATH}/feedback",
              "POST /v1/episodes/{episode_id}/checkins", "GET /v1/episodes/{episode_id}",
              "DELETE /v1/episodes/{episode_id}"]


def test_schema_lists_every_operation(schema: Any) -> None:
    labels = sorted(result.ok().label for result in schema.get_all_operations())
    assert labels == sorted(OPERATIONS)


# Negative (schema-violating) data exists only for operations that take a body.
CASES = [(label, GenerationMode.POSITIVE) for label in OPERATIONS] + [
    (label, GenerationMode.NEGATIVE) for label in OPERATIONS if label.startswith("POST")
]


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_operation_conforms_and_never_fails(
    schema: Any, server: LiveServer, label: str, mode: GenerationMode
) -> None:
    [operation] = [r.ok() for r in schema.get_all_operations() if r.ok().label == label]
    examples = 25 if label.startswith("POST") else 3

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        headers = _headers(server, operation.path)
        case.call_and_validate(base_url=server.url, headers=headers, checks=CHECKS)

    run()
