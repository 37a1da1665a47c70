"""The HTTP service (FastAPI): ``/v1`` for apps, ``/cds-services`` for EHRs (CDS Hooks 2.0).

Reports are health data, so:

* Everything but ``/healthz``, the CDS discovery document and ``/openapi.json`` needs
  ``Authorization: Bearer <token>`` (the token from ``create_app(token=...)`` or
  ``MARROW_TRIAGE_API_TOKEN``, 32 characters or more); with no token configured it
  refuses (503) and ``/healthz`` says not-ready, never runs open.
* ``POST /cds-services/marrow-aftercare-triage`` (and its ``/feedback``) needs a CDS
  client JWT (see :mod:`marrow_triage.adapters.cds_hooks.hooks`) whose audience is the
  configured public URL (``MARROW_TRIAGE_PUBLIC_URL``), never one built from the
  request's ``Host``; it is verified before the body is read.
* Every answer carries ``Cache-Control: no-store`` and the usual security headers; no
  Swagger UI is served (it loads scripts from a CDN): the API is ``/openapi.json``.
* The body size limit (413) is enforced while reading, whatever ``Content-Length`` says.
* A JSON body is read strictly before any handler sees it: a key given twice, or a body
  that is not JSON, is a 422 naming it (``detail[].loc`` starts with ``"body"``).
* Nothing here logs a request body or an error message that could quote one; a failure
  inside a handler is logged by exception class only and answered with a generic 500.

Needs the ``[service]`` extra.

>>> app = create_app(token="a-secret-of-at-least-32-characters")
>>> sorted({r.path for r in app.routes if r.path.startswith("/v1")})
... # doctest: +NORMALIZE_WHITESPACE
['/v1/cds-feedback', '/v1/episodes/{episode_id}', '/v1/episodes/{episode_id}/checkins',
 '/v1/rules', '/v1/triage', '/v1/triage/batch']
"""

import enum
import hmac
import importlib
import json
import logging
import os
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from marrow_triage import _json as strict_json
from marrow_triage._version import __version__
from marrow_triage.errors import DuplicateKeyError, InstallError, ReportError

try:
    from fastapi import Body, Depends, FastAPI, Request, Response
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from fastapi.security import HTTPBearer
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
except ImportError as exc:  # one line naming the extra, not a traceback into fastapi
    raise InstallError.missing_extra("marrow_triage.adapters.service", "service", exc) from None

from marrow_triage.adapters.cds_hooks.hooks import (
    PREFETCH_KEY,
    SERVICE_ID,
    CdsAuthError,
    CdsClients,
    FeedbackRequest,
    FeedbackTally,
    KeySpec,
    build_cards,
    discovery,
)
from marrow_triage.adapters.service.language import AcceptLanguage, negotiate_locale
from marrow_triage.adapters.service.timeline import TimelineService, timeline_router
from marrow_triage.engine.triage import TriageEngine
from marrow_triage.errors import CdsPrefetchError
from marrow_triage.errors import Problem as ErrorProblem
from marrow_triage.models import (
    PackRef,
    Source,
    SymptomReport,
    TriageResult,
    Urgency,
    listed_errors,
)
from marrow_triage.pack.catalogue import rule_condition_in_words
from marrow_triage.pack.spec import RuleSpec
from marrow_triage.timeline.timeline import Timeline

__all__ = ["DEFAULT_MAX_BATCH", "DEFAULT_MAX_BODY_BYTES", "create_app"]

TOKEN_ENV = "MARROW_TRIAGE_API_TOKEN"
CDS_CLIENTS_ENV = "MARROW_TRIAGE_CDS_CLIENTS"
PUBLIC_URL_ENV = "MARROW_TRIAGE_PUBLIC_URL"
DEFAULT_MAX_BODY_BYTES = 256 * 1024
DEFAULT_MAX_BATCH = 100
MIN_TOKEN_LENGTH = 32
CDS_PATH = f"/cds-services/{SERVICE_ID}"
# Everything else needs the bearer token (or, under /cds-services/, a CDS client JWT).
OPEN_PATHS = frozenset({"/healthz", "/cds-services", "/openapi.json"})
# Sent with every answer. The API serves JSON only: nothing may load, frame or cache it.
SECURITY_HEADERS = (
    (b"cache-control", b"no-store"),
    (b"content-security-policy",
     b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
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
    chain: list[PackRef] = Field(description="The base pack, then each site overlay.")
    locales: list[str] = Field(description="Languages results can be given in.")
    routes: dict[str, str] = Field(description="Contact routes, as filled in (English).")
    rules: list[RuleEntry]


class CdsRequest(BaseModel):
    """A CDS Hooks 2.0 service request (fields this service reads; others are allowed)."""

    model_config = ConfigDict(extra="allow")

    hook: Literal["patient-view"] = Field(description="The hook the service declares.")
    hookInstance: uuid.UUID = Field(
        description="A UUID for this hook call (CDS Hooks 2.0: REQUIRED, universally unique).")
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None


class CdsCard(BaseModel):
    """One CDS Hooks card."""

    uuid: str = Field(description="Identifies the card in feedback.")
    summary: str = Field(max_length=139)
    indicator: str
    detail: str
    source: dict[str, str]


class CdsResponse(BaseModel):
    """The cards answering a hook call."""

    cards: list[CdsCard]


class Health(BaseModel):
    """``ok``, or ``not-ready`` with the reasons (answered with 503)."""

    status: Literal["ok", "not-ready"]
    problems: list[str] = Field(default_factory=list)


class FeedbackReceived(BaseModel):
    """How many feedback entries were counted."""

    received: int


class FeedbackCounts(BaseModel):
    """CDS Hooks feedback received since the service started, by outcome."""

    accepted: int
    overridden: int
    overridden_with_reason: int
    with_user_comment: int


_ERRORS: dict[int | str, dict[str, Any]] = {
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
                 public_urls: Sequence[str], max_body_bytes: int) -> None:
        self.app = app
        self.token = token
        self.cds = cds
        self.public_urls = tuple(public_urls)
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
            refusal = _unreadable_json(body) if body and _is_json(
                headers.get("content-type")) else None
            if refusal is not None:
                await refusal(scope, receive, send)
            else:
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
            if not self.public_urls:  # create_app refuses this; kept for direct use
                return _problem(503, f"no public URL is configured: set {PUBLIC_URL_ENV}")
            if not bearer:
                return _problem(401, "missing CDS client JWT", challenge)
            # The audience comes from configuration only: built from Host or
            # X-Forwarded-Proto, a token minted for another service would pass.
            audience = [base + route for base in self.public_urls]
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


class _SecurityHeaders:
    """ASGI middleware: :data:`SECURITY_HEADERS` on every answer (the app's own
    ``Cache-Control`` wins)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message = {**message, "headers": [
                    *message.get("headers", []),
                    *((k, v) for k, v in SECURITY_HEADERS if k not in present),
                ]}
            await send(message)

        await self.app(scope, receive, with_headers)


def _settings(token: str | None, cds_keys: CdsClients | Mapping[str, KeySpec] | None,
              public_url: str | Sequence[str] | None,
              ) -> tuple[str | None, CdsClients | None, tuple[str, ...]]:
    """Token, CDS clients and public URLs, from the arguments or the environment;
    ValueError for a configuration that cannot be served safely."""
    token = _checked_token(token if token is not None else os.environ.get(TOKEN_ENV) or None)
    clients = _cds_clients(cds_keys)
    public_urls = _public_urls(public_url)
    if clients is not None and clients.issuers and not public_urls:
        raise ValueError(
            f"CDS clients are configured but no public URL: set {PUBLIC_URL_ENV} to the "
            "service's external base URL (the JWT audience is never taken from a request)"
        )
    return token, clients, public_urls


def _checked_token(token: str | None) -> str | None:
    """The API token, refused when too short to resist guessing."""
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(f"the API token must be at least {MIN_TOKEN_LENGTH} characters "
                         f"(this one has {len(token)}); set {TOKEN_ENV}")
    return token


def _public_urls(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """The service's external base URLs: one, or an allow-list separated by commas."""
    if value is None:
        value = os.environ.get(PUBLIC_URL_ENV) or ""
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    urls = []
    for item in items:
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query \
                or parts.fragment:
            raise ValueError(f"{PUBLIC_URL_ENV}: {item!r} is not a base URL such as "
                             "https://triage.example.org")
        urls.append(item.rstrip("/"))
    return tuple(urls)


def _operation_outcome(status: int, text: str, diagnostics: str) -> JSONResponse:
    """A CDS Hooks error answer: a FHIR OperationOutcome, as the spec recommends."""
    return JSONResponse({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "details": {"text": text},
                   "diagnostics": diagnostics}],
    }, status_code=status)


def _is_json(content_type: str | None) -> bool:
    """Whether FastAPI would read the body as JSON (it does when no type is given)."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/")
                                            and media.endswith("+json"))


def _unreadable_json(body: bytes) -> JSONResponse | None:
    """A 422 for a body that is not JSON or gives a key twice (FastAPI's own parser would
    keep the last value, so a duplicated ``temperature`` could hide a fever)."""
    try:
        strict_json.loads(body)
    except DuplicateKeyError as exc:
        detail = [{"loc": ["body", *path], "msg": problem.message, "type": "duplicate_key"}
                  for path, problem in zip(exc.paths, exc.problems, strict=True)]
    except ReportError as exc:
        detail = [{"loc": ["body"], "msg": problem.message, "type": "json_invalid"}
                  for problem in exc.problems]
    else:
        return None
    return JSONResponse({"detail": detail}, status_code=422)


def _rule_entry(engine: TriageEngine, rule: RuleSpec) -> RuleEntry:
    return RuleEntry(id=rule.id, title=rule.title, level=rule.level,
                     when=rule_condition_in_words(rule), source=engine.pack.source(rule))


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
    a search Bundle; ``None`` when the prefetch found none.

    An OperationOutcome with an error in its place (or in the Bundle) means the CDS
    client could not fetch it: :class:`CdsPrefetchError`, not "no check-in".
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _unreadable("expected a QuestionnaireResponse or a Bundle of them")
    if value.get("resourceType") != "Bundle":
        _refuse_failed_prefetch(value)
        return value
    entries = value.get("entry") or []
    if not isinstance(entries, list):
        raise _unreadable("a Bundle's entry must be a list", "entry")
    resources = [entry.get("resource") for entry in entries if isinstance(entry, dict)]
    for resource in resources:
        if isinstance(resource, dict):
            _refuse_failed_prefetch(resource)
    for resource in resources:
        if isinstance(resource, dict) and resource.get("resourceType") == (
            "QuestionnaireResponse"
        ):
            return resource
    return None


_ISSUE_CODE = re.compile(r"[a-z][a-z-]{0,39}")


def _refuse_failed_prefetch(resource: Mapping[str, Any]) -> None:
    """Raise :class:`CdsPrefetchError` for an OperationOutcome reporting an error."""
    if resource.get("resourceType") != "OperationOutcome":
        return
    issues = resource.get("issue")
    failed = [issue for issue in issues if isinstance(issue, dict)
              and issue.get("severity") in ("error", "fatal")] if isinstance(issues, list) else []
    if not failed and isinstance(issues, list) and issues:
        return  # warnings or information only (e.g. a search's outcome notes)
    # FHIR issue codes only (lower-case words): the client's free text, or anything
    # posing as a code, could quote patient data.
    codes = sorted({code for issue in failed
                    if isinstance(code := issue.get("code"), str) and _ISSUE_CODE.fullmatch(code)})
    said = f" (issue code {', '.join(codes)})" if codes else ""
    raise CdsPrefetchError(
        f"the CDS client could not prefetch {PREFETCH_KEY}: it sent an OperationOutcome"
        f"{said} instead of the patient's check-in"
    )


def create_app(
    engine: TriageEngine | None = None,
    *,
    token: str | None = None,
    cds_keys: CdsClients | Mapping[str, KeySpec] | None = None,
    public_url: str | Sequence[str] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_batch: int = DEFAULT_MAX_BATCH,
    timeline: Timeline | None = None,
) -> FastAPI:
    """The FastAPI application.

    ``token`` defaults to ``$MARROW_TRIAGE_API_TOKEN`` (32 characters or more; without
    one the app starts not-ready); ``cds_keys`` (issuer -> JWKS, JWK or PEM public key)
    defaults to the JSON file named by ``$MARROW_TRIAGE_CDS_CLIENTS``; ``public_url`` (the
    service's external base URL, the JWT audience prefix; several separated by commas)
    defaults to ``$MARROW_TRIAGE_PUBLIC_URL`` and is required with CDS clients.

    Raises ValueError for a configuration it cannot serve safely. ``app.state.problems``
    lists why the app is not ready (``/healthz`` answers 503 with them). ``timeline``
    serves ``/v1/episodes``; by default it is opened on first use from the store URL in
    ``$MARROW_TRIAGE_DB`` (unset: those endpoints answer 503).
    """
    engine = engine if engine is not None else TriageEngine.default()
    token, clients, public_urls = _settings(token, cds_keys, public_url)
    app = FastAPI(
        # No Swagger UI or ReDoc: both load their scripts from a third-party CDN.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        title="marrow_triage",
        version=__version__,  # the library's; the rule pack's is in GET /v1/rules
        description=(
            "Explained urgency triage of symptoms reported after a bone marrow aspiration or "
            "biopsy. Supports, and does not replace, clinical judgement."
        ),
    )
    app.state.problems = [] if token else [f"the API token is not configured: set {TOKEN_ENV}"]
    app.add_middleware(_Gate, token=token, cds=clients, public_urls=public_urls,
                       max_body_bytes=max_body_bytes)
    app.add_middleware(_SecurityHeaders)
    _answer_invalid_requests(app)
    _add_ops_routes(app, app.state.problems)
    secured = [Depends(HTTPBearer(auto_error=False, description=f"The token in ${TOKEN_ENV}."))]
    _add_triage_routes(app, engine, secured, max_batch)
    _add_rules_route(app, engine, secured)
    _add_timeline_routes(app, engine, secured, timeline)
    _add_cds_routes(app, engine)
    _add_cds_feedback_routes(app, secured)
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


def _add_ops_routes(app: FastAPI, problems: list[str]) -> None:
    @app.get("/healthz", tags=["ops"], response_model=Health,
             responses={503: {"model": Health, "description": "Not ready: the reasons."}})
    async def healthz() -> JSONResponse:
        """Readiness for load balancers: 503 while ``/v1`` would refuse every call."""
        if problems:
            return JSONResponse({"status": "not-ready", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ok"})


def _add_triage_routes(app: FastAPI, engine: TriageEngine, secured: list[Any],
                       max_batch: int) -> None:
    @app.post("/v1/triage", response_model=TriageResult, responses=_ERRORS,
              dependencies=secured, tags=["triage"])
    async def triage_one(report: SymptomReport, response: Response,
                         accept_language: AcceptLanguage = None) -> TriageResult:
        """Triage one symptom report; texts in the best language of ``Accept-Language``
        the rule pack has (English otherwise), named in ``Content-Language``."""
        locale = negotiate_locale(accept_language, engine.pack.locales)
        response.headers["Content-Language"] = locale
        return await engine.triage_async(report, locale)

    Batch = Annotated[list[SymptomReport], Body(max_length=max_batch)]

    @app.post("/v1/triage/batch", response_model=list[TriageResult], responses=_ERRORS,
              dependencies=secured, tags=["triage"])
    async def triage_batch(reports: Batch, response: Response,
                           accept_language: AcceptLanguage = None) -> list[TriageResult]:
        """Triage up to the batch limit of reports; results keep the input order."""
        locale = negotiate_locale(accept_language, engine.pack.locales)
        response.headers["Content-Language"] = locale
        return await run_in_threadpool(engine.triage_many, reports, locale)


def _add_rules_route(app: FastAPI, engine: TriageEngine, secured: list[Any]) -> None:
    pack = engine.pack

    @app.get("/v1/rules", response_model=RulesInfo, responses=_ERRORS, dependencies=secured,
             tags=["rules"])
    async def rules() -> RulesInfo:
        """The rule pack in use: name, version, sha256 and its rules."""
        return RulesInfo(
            name=pack.name, version=pack.version, sha256=pack.sha256,
            description=pack.description, chain=list(pack.chain),
            locales=list(pack.locales), routes=dict(pack.routes),
            rules=[_rule_entry(engine, r) for r in sorted(
                pack.rules, key=lambda r: (-r.level.rank, r.id))],
        )


def _add_timeline_routes(app: FastAPI, engine: TriageEngine, secured: list[Any],
                         timeline: Timeline | None) -> None:
    episodes = (TimelineService(lambda: timeline) if timeline is not None else
                TimelineService.from_environment(lambda store: Timeline(store, engine)))
    app.include_router(timeline_router(episodes), dependencies=secured)


def _add_cds_routes(app: FastAPI, engine: TriageEngine) -> None:
    @app.exception_handler(CdsPrefetchError)
    async def _no_prefetch(_request: Request, exc: CdsPrefetchError) -> JSONResponse:
        return _operation_outcome(412, str(exc), f"CDS Hooks prefetch key {PREFETCH_KEY!r}")

    @app.get("/cds-services", tags=["cds-hooks"])
    async def cds_discovery() -> dict[str, Any]:
        """CDS Hooks discovery: the services offered here."""
        return discovery(_questionnaire_url())

    @app.post(CDS_PATH, response_model=CdsResponse, tags=["cds-hooks"],
              responses={**_ERRORS, 401: {"model": Problem, "description": "JWT rejected."},
                         412: {"description": "The check-in was not prefetched (a FHIR "
                               "OperationOutcome says why)."}})
    async def cds_triage(request: CdsRequest,
                         accept_language: AcceptLanguage = None) -> dict[str, Any]:
        """CDS Hooks call: triage ``context.report`` or the prefetched QuestionnaireResponse.

        The card's texts are in the QuestionnaireResponse's ``language`` when the pack has
        it, else in the best language of ``Accept-Language``, else English.
        """
        report = await run_in_threadpool(_cds_report, request)
        if report is None:
            return {"cards": []}
        pack = engine.pack
        language = _prefetched_language(request)
        locale = (pack.match_locale(language) if language else None) or \
            negotiate_locale(accept_language, pack.locales)
        result = await engine.triage_async(report, locale)
        return {"cards": build_cards(result, pack)}


def _add_cds_feedback_routes(app: FastAPI, secured: list[Any]) -> None:
    feedback = FeedbackTally()  # per app: counts only, see FeedbackTally

    @app.post(CDS_PATH + "/feedback", response_model=FeedbackReceived, tags=["cds-hooks"],
              responses={**_ERRORS, 401: {"model": Problem, "description": "JWT rejected."}})
    async def cds_feedback(request: FeedbackRequest) -> FeedbackReceived:
        """CDS Hooks feedback on cards: validated, then only the outcomes are counted."""
        feedback.add(request)
        _log.info("CDS feedback: %s", ", ".join(
            f"{n} {outcome}" for outcome, n in sorted(
                Counter(item.outcome for item in request.feedback).items())))
        return FeedbackReceived(received=len(request.feedback))

    @app.get("/v1/cds-feedback", response_model=FeedbackCounts, responses=_ERRORS,
             dependencies=secured, tags=["cds-hooks"])
    async def cds_feedback_counts() -> FeedbackCounts:
        """CDS Hooks feedback counted since the service started (counts only)."""
        return FeedbackCounts(**feedback.counts())


def _prefetched_language(request: CdsRequest) -> str | None:
    """The ``language`` of the prefetched QuestionnaireResponse, if it says one."""
    if "report" in request.context:
        return None
    value = (request.prefetch or {}).get(PREFETCH_KEY)
    try:
        qr = _first_questionnaire_response(value)
    except RequestValidationError:
        return None
    language = qr.get("language") if isinstance(qr, dict) else None
    return language if isinstance(language, str) else None


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
        # CDS Hooks: a client leaves a prefetch key out when it could not fetch it (it
        # sends null for "nothing found"), and this service fetches nothing itself: 412.
        raise CdsPrefetchError(
            f"no report: the prefetch key {PREFETCH_KEY!r} is missing (and there is no "
            "context.report); this service does not query the FHIR server itself"
        )
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
