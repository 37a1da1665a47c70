"""An EHR calling the marrow-aftercare-triage CDS Hooks service, end to end.

Needs the [examples] extra: pip install 'marrow-triage[examples]' (make demo installs it).
Run from the repository root: python examples/cds_hooks_client.py
It starts the service on a free loopback port, signs a CDS client JWT with the EHR's
private key, sends a patient-view hook with the patient's latest aftercare
QuestionnaireResponse as prefetch, prints the card, and sends feedback on it.
"""

import json
import secrets
import socket
import threading
import time
import uuid
from pathlib import Path

import httpx
import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec

from marrow_triage.adapters.service import create_app

EHR_ISSUER = "https://ehr.example.org"

# The EHR's signing key. The service is configured with the public half only, as a JWKS
# (in production: a JSON file named by MARROW_TRIAGE_CDS_CLIENTS).
ehr_key = ec.generate_private_key(ec.SECP384R1())
public_jwk = jwt.algorithms.ECAlgorithm.to_jwk(ehr_key.public_key(), as_dict=True)
cds_clients = {EHR_ISSUER: {"keys": [{**public_jwk, "kid": "ehr-2026", "alg": "ES384"}]}}

# Start the service (in production: `marrow-triage serve` with MARROW_TRIAGE_PUBLIC_URL,
# the URL EHRs call it by: the JWT audience is built from it, never from the request).
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
app = create_app(token=secrets.token_urlsafe(32), cds_keys=cds_clients, public_url=base_url)
server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
thread.start()
while not server.started and thread.is_alive():
    time.sleep(0.05)

try:
    # 1. Discovery (open): which hook, which prefetch.
    [service] = httpx.get(f"{base_url}/cds-services").json()["services"]
    print("service:", service["id"], "on", service["hook"])
    print("prefetch:", service["prefetch"]["questionnaireResponse"])
    endpoint = f"{base_url}/cds-services/{service['id']}"

    # 2. The CDS client JWT: signed by the EHR, audience = the URL being called,
    #    short-lived, with a unique jti (CDS Hooks 2.0).
    def client_jwt(audience: str) -> str:
        now = int(time.time())
        return jwt.encode(
            {"iss": EHR_ISSUER, "aud": audience, "iat": now, "exp": now + 300,
             "jti": str(uuid.uuid4())},
            ehr_key, algorithm="ES384", headers={"kid": "ehr-2026", "typ": "JWT"},
        )

    token = client_jwt(endpoint)

    # 3. The hook call, with the prefetched QuestionnaireResponse (101.3 °F and chills).
    qr = json.loads(Path("examples/fhir/fever-101F.json").read_text())
    hook = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/example", "patientId": "example"},
        "prefetch": {"questionnaireResponse": qr},
    }
    response = httpx.post(endpoint, json=hook, headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    [card] = response.json()["cards"]
    print(card["indicator"], "-", card["summary"])
    print(card["source"]["label"], card["source"]["url"])
    print(card["detail"])
    assert card["indicator"] == "critical"

    # 4. The same token again is refused: a jti is used once.
    replay = httpx.post(endpoint, json=hook, headers={"Authorization": f"Bearer {token}"})
    print("replayed token:", replay.status_code, replay.json()["detail"])
    assert replay.status_code == 401

    # 5. Feedback: the clinician dismissed the card. The service counts the outcome and
    #    keeps nothing else (no card uuid, time or comment).
    feedback = {"feedback": [{"card": card["uuid"], "outcome": "overridden",
                              "outcomeTimestamp": "2026-11-25T10:05:31Z"}]}
    sent = httpx.post(f"{endpoint}/feedback", json=feedback,
                      headers={"Authorization": f"Bearer {client_jwt(endpoint + '/feedback')}"})
    print("feedback:", sent.status_code, sent.json())
    assert sent.status_code == 200
finally:
    server.should_exit = True
    thread.join()
