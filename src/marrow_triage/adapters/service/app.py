"""The HTTP service (FastAPI): ``/v1`` for apps, ``/cds-services`` for EHRs (CDS Hooks 2.0).

Reports are health data, so:

* Everything but ``/healthz``, the CDS discovery document and the OpenAPI pages needs
  ``Authorization: Bearer <token>`` (the token from ``create_app(token=...)`` or
  ``MARROW_TRIAGE_API_TOKEN``); with no token configured it refuses (503), never runs open.
* ``POST /cds-services/marrow-aftercare-triage`` needs a CDS client JWT (see
  :mod:`marrow_triage.adapters.cds_hooks.hooks`), verified before the body is read.
* The body size limit (413) is enforced while reading, whatever ``Content-Length`` says.
* Nothing here logs a request body or an error message that could quote one; a failure
  inside a handler is logged by exception class only and answered with a generic 500.

Needs the ``[service]`` extra.

>>> app = create_app(token="s3cret")
>>> sorted(r.path for r in app.routes if r.path.startswith("/v1"))
['/v1/rules', '/v1/triage', '/v1/triage/batch']
"""

import enum
import hmac
import importlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marrow_triage.adapters.cds_hooks.hooks import (
    PREFETCH_KEY,
    SERVICE_ID,
    CdsAuthError,
    CdsClients,
    KeySpec,
    build_cards,
    discovery,
)
from marrow_triage.engine.triage import TriageEngine
from marrow_triage.errors import Problem as ErrorProblem
from marrow_triage.errors import ReportError
from marrow_triage.models import Source, SymptomReport, TriageResult, Urgency, listed_errors
from marrow_triage.pack.catalogue import condition_in_words
from marrow_triage.pack.spec import RuleSpec

__all__ = ["DEFAULT_MAX_BATCH", "DEFAULT_MAX_BODY_BYTES", "create_app"]

TOKEN_ENV = "MARROW_TRIAGE_API_TOKEN"
CDS_CLIENTS_ENV = "MARROW_TRIAGE_CDS_CLIENTS"
PUBLIC_URL_ENV = "MARROW_TRIAGE_PUBLIC_URL"
DEFAULT_MAX_BODY_BYTES = 256 * 1024
DEFAULT_MAX_BATCH = 100
CDS_PATH = f"/cds-services/{SERVICE_ID}"
# Everything else needs the bearer token (or, under /cds-services/, a CDS client JWT).
OPEN_PATHS = frozenset(
    {"/healthz", "/cds-services", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)

_log = logging.getLogger("marrow_triage.adapters.service.app")


class Problem(BaseModel):
    """An error answer: what went wrong, never echoing the report."""

    detail: str


class RuleEntry(BaseModel):
    """One rule of the pack as listed by ``GET /v1/rules``."""

    id: str
    title: str
    level: Urgency
    when: str = Field(description="The condition in words.")
    source: Source


class RulesInfo(BaseModel):
    """The rule pack the service triages with, and its catalogue."""

    name: str
    version: str
    sha256: str
    description: str
    rules: list[RuleEntry]


class CdsRequest(BaseModel):
    """A CDS Hooks 2.0 service request (fields this service reads; others are allowed)."""

    model_config = ConfigDict(extra="allow")

    hook: str
    hookInstance: str
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None


class CdsCard(BaseModel):
    """One CDS Hooks card."""

    summary: str = Field(max_length=139)
    indicator: str
    detail: str
    source: dict[str, str]


class CdsResponse(BaseModel):
    """The cards answering a hook call."""

    cards: list[CdsCard]


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The body is not parseable JSON."},
    401: {"model": Problem, "description": "Missing or wrong credentials."},
    413: {"model": Problem, "description": "Request body too large."},
    503: {"model": Problem, "description": "Authentication is not configured."},
}


def _problem(status: int, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=dict(headers or {}))


class _Unread(enum.Enum):
    """Why the gate read no body to pass on."""

    TOO_LARGE = enum.auto()
    CLIENT_GONE = enum.auto()


class _Gate:
    """ASGI middleware: authentication and size limit before the body is read, and a
    last-resort 500 that logs the exception class only."""

    def __init__(self, app: ASGIApp, *, token: str | None, cds: CdsClients | None,
                 public_url: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.token = token
        self.cds = cds
        self.public_url = public_url.rstrip("/") if public_url else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._authenticate(scope, scope["path"], headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        body = await self._read_body(scope, receive, headers)
        if body is _Unread.TOO_LARGE:
            await self._too_large(scope, receive, send)
        elif body is not _Unread.CLIENT_GONE:
            await self._run_guarded(scope, _replaying(body, receive), send)

    async def _read_body(self, scope: Scope, receive: Receive,
                         headers: Mapping[str, str]) -> bytes | _Unread:
        """The whole request body; TOO_LARGE once it is over the limit (declared or read),
        CLIENT_GONE when the client went away (or was cut off): nothing to answer."""
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            return _Unread.TOO_LARGE
        body = bytearray()
        more = scope["method"] in ("POST", "PUT", "PATCH")
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return _Unread.CLIENT_GONE
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                return _Unread.TOO_LARGE
            more = message.get("more_body", False)
        return bytes(body)

    async def _run_guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; an exception becomes a generic 500, logged by class name only."""
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:  # never let a message quoting a report reach the logs
            _log.error("internal error handling %s %s: %s", scope["method"], scope["path"],
                       type(exc).__name__)
            if not started:
                await _problem(500, "internal error")(scope, receive, send)

    def _authenticate(self, scope: Scope, path: str,
                      headers: Mapping[str, str]) -> JSONResponse | None:
        """Deny by default: only the OPEN paths need no credentials."""
        root = scope.get("root_path", "")
        route = path[len(root):] if root and path.startswith(root) else path
        if route in OPEN_PATHS and scope["method"] in ("GET", "HEAD"):
            return None
        auth = headers.get("authorization", "")
        scheme, _, credential = auth.partition(" ")
        bearer = credential.strip() if scheme.lower() == "bearer" else ""
        challenge = {"WWW-Authenticate": "Bearer"}
        if route.startswith("/cds-services/"):
            if self.cds is None or not self.cds.issuers:
                return _problem(
                    503, f"no CDS clients are configured: set {CDS_CLIENTS_ENV}"
                )
            if not bearer:
                return _problem(401, "missing CDS client JWT", challenge)
            audience = (self.public_url + route if self.public_url
                        else f"{scope.get('scheme', 'http')}://{headers.get('host', '')}{path}")
            try:
                self.cds.verify(bearer, audience)
            except CdsAuthError as exc:
                return _problem(401, str(exc), challenge)
            return None
        if not self.token:
            return _problem(503, f"the API token is not configured: set {TOKEN_ENV}")
        if not bearer:
            return _problem(401, "missing bearer token", challenge)
        if not hmac.compare_digest(bearer.encode(), self.token.encode()):
            return _problem(401, "wrong bearer token", challenge)
        return None

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = _problem(413, f"request body larger than {self.max_body_bytes} bytes",
                            {"Connection": "close"})
        await response(scope, receive, send)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the body already read, then what follows."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _rule_entry(engine: TriageEngine, rule: RuleSpec) -> RuleEntry:
    if rule.when_findings is not None:
        when = (f"{rule.when_findings.at_least} or more findings at level "
                f"{rule.when_findings.level.value}")
    else:
        assert rule.when is not None
        when = condition_in_words(rule.when)
    return RuleEntry(id=rule.id, title=rule.title, level=rule.level, when=when,
                     source=engine.pack.source(rule))


def _cds_clients(cds_keys: CdsClients | Mapping[str, KeySpec] | None) -> CdsClients | None:
    if isinstance(cds_keys, CdsClients):
        return cds_keys
    if cds_keys is not None:
        return CdsClients(cds_keys)
    path = os.environ.get(CDS_CLIENTS_ENV)
    if not path:
        return None
    try:
        return CdsClients.from_file(Path(path))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{CDS_CLIENTS_ENV}={path}: {exc}") from exc


def _errors(loc_prefix: tuple[str, ...], exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": [*loc_prefix, *e["loc"]], "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def _problem_errors(loc_prefix: tuple[str, ...],
                    problems: Iterable[ErrorProblem]) -> list[dict[str, Any]]:
    """Problems in the 422 ``detail`` shape; a FHIR problem is located by its item linkId."""
    return [
        {"loc": [*loc_prefix, *(["item", p.field] if p.field else [])],
         "msg": p.message, "type": "value_error"}
        for p in problems
    ]


def _unreadable(msg: str, *loc: str | int) -> RequestValidationError:
    return RequestValidationError([{
        "loc": ["body", "prefetch", PREFETCH_KEY, *loc], "type": "value_error", "msg": msg,
    }])


def _first_questionnaire_response(value: Any) -> dict[str, Any] | None:
    """The QuestionnaireResponse in a prefetch value: the resource itself, or the first in
    a search Bundle; ``None`` when the prefetch found none."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _unreadable("expected a QuestionnaireResponse or a Bundle of them")
    if value.get("resourceType") != "Bundle":
        return value
    entries = value.get("entry") or []
    if not isinstance(entries, list):
        raise _unreadable("a Bundle's entry must be a list", "entry")
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == (
            "QuestionnaireResponse"
        ):
            return resource
    return None


def create_app(
    engine: TriageEngine | None = None,
    *,
    token: str | None = None,
    cds_keys: CdsClients | Mapping[str, KeySpec] | None = None,
    public_url: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> FastAPI:
    """The FastAPI application.

    ``token`` defaults to ``$MARROW_TRIAGE_API_TOKEN``; ``cds_keys`` (issuer -> JWKS, JWK
    or PEM public key) defaults to the JSON file named by ``$MARROW_TRIAGE_CDS_CLIENTS``;
    ``public_url`` (the service's external base URL, the JWT audience prefix) defaults to
    ``$MARROW_TRIAGE_PUBLIC_URL``, else the URL the request was sent to.
    """
    engine = engine if engine is not None else TriageEngine.default()
    app = FastAPI(
        title="marrow_triage",
        version=engine.pack.version,
        description=(
            "Explained urgency triage of symptoms reported after a bone marrow aspiration or "
            "biopsy. Supports, and does not replace, clinical judgement."
        ),
    )
    app.add_middleware(
        _Gate,
        token=token if token is not None else os.environ.get(TOKEN_ENV) or None,
        cds=_cds_clients(cds_keys),
        public_url=public_url or os.environ.get(PUBLIC_URL_ENV) or None,
        max_body_bytes=max_body_bytes,
    )
    _answer_invalid_requests(app)
    _add_ops_routes(app)
    secured = [Depends(HTTPBearer(auto_error=False, description=f"The token in ${TOKEN_ENV}."))]
    _add_triage_routes(app, engine, secured, max_batch)
    _add_rules_route(app, engine, secured)
    _add_cds_routes(app, engine)
    return app


def _answer_invalid_requests(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # Field paths and messages only: the input itself is not echoed back. At most
        # MAX_LISTED_PROBLEMS, then a count: 29,612 unknown keys made a 2.6 MB answer.
        listed, rest = listed_errors(exc.errors())
        detail = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")),
             "type": str(e.get("type", ""))}
            for e in listed
        ]
        if rest:
            detail.append({"loc": ["body"], "msg": f"and {rest} more problem(s), not listed",
                           "type": "too_many_errors"})
        return JSONResponse({"detail": detail}, status_code=422)


def _add_ops_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """Liveness for load balancers; needs no credentials."""
        return {"status": "ok"}


def _add_triage_routes(app: FastAPI, engine: TriageEngine, secured: list[Any],
                       max_batch: int) -> None:
    @app.post("/v1/triage", response_model=TriageResult, responses=_ERRORS,
              dependencies=secured, tags=["triage"])
    async def triage_one(report: SymptomReport) -> TriageResult:
        """Triage one symptom report."""
        return await engine.triage_async(report)

    Batch = Annotated[list[SymptomReport], Body(max_length=max_batch)]

    @app.post("/v1/triage/batch", response_model=list[TriageResult], responses=_ERRORS,
              dependencies=secured, tags=["triage"])
    async def triage_batch(reports: Batch) -> list[TriageResult]:
        """Triage up to the batch limit of reports; results keep the input order."""
        return await run_in_threadpool(engine.triage_many, reports)


def _add_rules_route(app: FastAPI, engine: TriageEngine, secured: list[Any]) -> None:
    pack = engine.pack

    @app.get("/v1/rules", response_model=RulesInfo, responses=_ERRORS, dependencies=secured,
             tags=["rules"])
    async def rules() -> RulesInfo:
        """The rule pack in use: name, version, sha256 and its rules."""
        return RulesInfo(
            name=pack.name, version=pack.version, sha256=pack.sha256,
            description=pack.description,
            rules=[_rule_entry(engine, r) for r in sorted(
                pack.rules, key=lambda r: (-r.level.rank, r.id))],
        )


def _add_cds_routes(app: FastAPI, engine: TriageEngine) -> None:
    @app.get("/cds-services", tags=["cds-hooks"])
    async def cds_discovery() -> dict[str, Any]:
        """CDS Hooks discovery: the services offered here."""
        return discovery(_questionnaire_url())

    @app.post(CDS_PATH, response_model=CdsResponse, tags=["cds-hooks"],
              responses={**_ERRORS, 401: {"model": Problem, "description": "JWT rejected."}})
    async def cds_triage(request: CdsRequest) -> dict[str, Any]:
        """CDS Hooks call: triage ``context.report`` or the prefetched QuestionnaireResponse."""
        report = await run_in_threadpool(_cds_report, request)
        if report is None:
            return {"cards": []}
        result = await engine.triage_async(report)
        return {"cards": build_cards(result, engine.pack)}


def _questionnaire_url() -> str | None:
    try:
        fhir = importlib.import_module("marrow_triage.adapters.fhir.resources")
        url: str = fhir.questionnaire()["url"]
    except Exception:  # the [fhir] extra is optional
        return None
    return url


def _cds_report(request: CdsRequest) -> SymptomReport | None:
    """The report a hook call carries, ``None`` when the prefetch found none."""
    if "report" in request.context:
        try:
            return SymptomReport.model_validate(request.context["report"])
        except ValidationError as exc:
            raise RequestValidationError(_errors(("body", "context", "report"), exc)) from None
    prefetch = request.prefetch or {}
    if PREFETCH_KEY not in prefetch:
        raise RequestValidationError([{
            "loc": ["body", "prefetch", PREFETCH_KEY], "type": "missing",
            "msg": "no report: send context.report or prefetch.questionnaireResponse",
        }])
    qr = _first_questionnaire_response(prefetch[PREFETCH_KEY])
    if qr is None:
        return None
    try:
        fhir = importlib.import_module("marrow_triage.adapters.fhir.resources")
    except ImportError as exc:
        raise RequestValidationError([{
            "loc": ["body", "prefetch", PREFETCH_KEY], "type": "unsupported",
            "msg": f"FHIR input needs the [fhir] extra: {exc}",
        }]) from None
    try:
        report: SymptomReport = fhir.from_questionnaire_response(qr)
    except ReportError as exc:
        raise RequestValidationError(
            _problem_errors(("body", "prefetch", PREFETCH_KEY), exc.problems)) from None
    except (TypeError, KeyError, AttributeError, RecursionError, OverflowError, ValueError):
        raise _unreadable("cannot be read as a QuestionnaireResponse") from None
    return report


def openapi_json(app: FastAPI) -> str:
    """The OpenAPI document as JSON text."""
    return json.dumps(app.openapi(), indent=2, sort_keys=True)
