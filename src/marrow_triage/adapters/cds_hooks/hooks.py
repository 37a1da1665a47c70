"""CDS Hooks 2.0: the discovery document, cards from a triage result, and client JWTs.

Cards carry a ``uuid``; the feedback a CDS client posts about them is validated against
the CDS Hooks 2.0 Feedback shape and kept only as counts (:class:`FeedbackTally`).

A CDS client (an EHR) signs a short-lived JWT for every call. :class:`CdsClients` holds
the allow-list of issuers and the public keys each may sign with, and
:meth:`CdsClients.verify` checks a token the way CDS Hooks specifies: an asymmetric
signature (RS*/ES*/PS*) by one of the issuer's keys, ``aud`` equal to the endpoint URL,
``exp``, ``iat`` (numbers) and ``jti`` present, ``exp`` at most five minutes ahead, and
no ``jti`` used twice while it is valid. Keys are configured locally (a JWKS dict or file,
or a PEM public key); nothing is fetched over the network.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from marrow_triage.errors import CdsAuthError, InstallError
from marrow_triage.models import TriageResult, Urgency
from marrow_triage.pack.spec import RulePack

try:
    import jwt
except ImportError as exc:  # one line naming the extra, not a traceback
    raise InstallError.missing_extra("marrow_triage.adapters.cds_hooks", "service", exc) from None

__all__ = [
    "ALGORITHMS",
    "HOOK",
    "MAX_SUMMARY",
    "PREFETCH_KEY",
    "SERVICE_ID",
    "CdsAuthError",
    "CdsClients",
    "Feedback",
    "FeedbackRequest",
    "FeedbackTally",
    "build_cards",
    "discovery",
    "indicator",
]

SERVICE_ID = "marrow-aftercare-triage"
HOOK = "patient-view"
PREFETCH_KEY = "questionnaireResponse"
MAX_SUMMARY = 139  # CDS Hooks: "<140 characters"
ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512")
MAX_LIFETIME_SECONDS = 300
LEEWAY_SECONDS = 30

_INDICATORS = {
    Urgency.EMERGENCY: "critical",
    Urgency.URGENT: "critical",
    Urgency.SOON: "warning",
    Urgency.SELF_CARE: "info",
}

KeySpec = Mapping[str, Any] | str | Path
"""A JWKS (``{"keys": [...]}``), a single JWK dict, a PEM public key, or a path to either."""


def indicator(level: Urgency) -> str:
    """The card indicator for a level: critical, warning or info."""
    return _INDICATORS[level]


def discovery(questionnaire_url: str | None = None) -> dict[str, Any]:
    """The ``GET /cds-services`` document listing the triage service."""
    query = (
        "QuestionnaireResponse?subject={{context.patientId}}&status=completed"
        "&_sort=-authored&_count=1"
    )
    if questionnaire_url:
        query += f"&questionnaire={questionnaire_url}"
    return {
        "services": [
            {
                "hook": HOOK,
                "id": SERVICE_ID,
                "title": "Aftercare triage after a bone marrow aspiration or biopsy",
                "description": (
                    "Triages the patient's latest aftercare check-in (a QuestionnaireResponse, "
                    "or a report in context.report) and explains the urgency level with the "
                    "rules and sources behind it."
                ),
                "prefetch": {PREFETCH_KEY: query},
                "usageRequirements": (
                    "Send a JWT signed by a key configured for your issuer; audience is this "
                    "service's URL."
                ),
            }
        ]
    }


def _summary(result: TriageResult) -> str:
    text = result.summary
    if len(text) <= MAX_SUMMARY:
        return text
    short = f"{result.level_label or result.level.label}: {result.action}"
    if len(short) <= MAX_SUMMARY:
        return short
    return short[: MAX_SUMMARY - 1].rstrip() + "…"


_MARKDOWN = re.compile(r"([\\`*_\[\]<>#!|])")


def _plain(text: str) -> str:
    """``text`` shown as written in the card's markdown: an explanation can quote the
    patient's own words (``other_concern``), which must never become a link, an image or
    markup in the EHR."""
    return _MARKDOWN.sub(r"\\\1", text)


def _detail(result: TriageResult) -> str:
    lines = [f"**{result.level_label or result.level.label}**: {result.action}", ""]
    if result.findings:
        lines.append("Findings:")
        lines.append("")
        for f in result.findings:
            lines.append(f"- **{f.level.label}** (`{f.rule_id}`): {_plain(f.explanation)}")
            lines.append(f"  - Source: {f.source.title}, \"{f.source.section}\": "
                         f"\"{f.source.quote}\"")
            lines += [f"  - Site policy, less cautious than the base pack: {reason}"
                      for reason in f.acknowledged_downgrades]
        lines.append("")
    if result.advice:
        lines += ["Advice:", "", *(f"- {a}" for a in result.advice), ""]
    if result.reassurance:
        lines += ["Reassurance:", "", *(f"- {r}" for r in result.reassurance), ""]
    if result.questions:
        lines += ["Not yet answered:", "", *(f"- {q.text}" for q in result.questions), ""]
    info = result.ruleset
    lines.append(f"Rule pack {info.name} {info.version}, sha256 `{info.sha256}`. "
                 "Supports, and does not replace, clinical judgement.")
    return "\n".join(lines)


def build_cards(result: TriageResult, pack: RulePack) -> list[dict[str, Any]]:
    """One card for the result: a fresh ``uuid`` (what feedback refers to), indicator by
    level, short summary, markdown detail."""
    top = result.findings[0].source.url if result.findings else None
    url = top or next((d.url for d in pack.documents.values() if d.url), None)
    source: dict[str, Any] = {"label": f"{result.ruleset.name} {result.ruleset.version}"}
    if url:
        source["url"] = url
    return [
        {
            "uuid": str(uuid.uuid4()),
            "summary": _summary(result),
            "indicator": indicator(result.level),
            "detail": _detail(result),
            "source": source,
        }
    ]


def _times_are_numbers(claims: Mapping[str, Any]) -> None:
    """``exp``, ``iat`` and ``nbf`` as JSON numbers only: PyJWT also takes ``"1700000000"``,
    which CDS Hooks (and RFC 7519's NumericDate) does not."""
    for name in ("exp", "iat", "nbf"):
        value = claims.get(name)
        if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise CdsAuthError(f"JWT {name} must be a number (seconds since the epoch)")


@dataclass(frozen=True)
class _Key:
    kid: str | None
    alg: str | None  # the JWK's "alg", when it names one
    key: Any  # a cryptography public key


def _load_key_spec(spec: KeySpec) -> list[_Key]:
    """The public keys of one issuer."""
    if isinstance(spec, Path):
        spec = spec.read_text(encoding="utf-8")
    if isinstance(spec, str):
        stripped = spec.strip()
        if stripped.startswith("-----BEGIN"):
            from cryptography.hazmat.primitives.serialization import load_pem_public_key

            return [_Key(None, None, load_pem_public_key(stripped.encode("ascii")))]
        if stripped.startswith("{"):
            return _load_key_spec(json.loads(stripped))
        return _load_key_spec(Path(stripped))
    jwks = spec.get("keys", [spec])
    keys = []
    for entry in jwks:
        if "d" in entry:
            raise ValueError("a private key was configured; give the public key only")
        jwk = jwt.PyJWK(dict(entry))
        keys.append(_Key(entry.get("kid"), entry.get("alg"), jwk.key))
    return keys


class CdsClients:
    """The CDS clients allowed to call: issuer -> public keys.

    >>> CdsClients({}).issuers
    ()
    """

    def __init__(self, clients: Mapping[str, KeySpec]) -> None:
        self._keys: dict[str, list[_Key]] = {}
        for issuer, spec in clients.items():
            try:
                keys = _load_key_spec(spec)
            except (ValueError, TypeError, KeyError, OSError, jwt.PyJWTError) as exc:
                raise ValueError(f"CDS client {issuer!r}: unusable key: {exc}") from exc
            if not keys:
                raise ValueError(f"CDS client {issuer!r}: no keys")
            self._keys[issuer] = keys
        self._seen: dict[str, float] = {}
        self._purged = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str | Path) -> CdsClients:
        """Clients from a JSON file ``{"issuer": JWKS | JWK | "PEM text" | "path"}``."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected an object mapping issuer to keys")
        return cls(data)

    @property
    def issuers(self) -> tuple[str, ...]:
        """The allow-listed issuers."""
        return tuple(self._keys)

    def verify(self, token: str, audience: str | Sequence[str]) -> dict[str, Any]:
        """The claims of a valid token for ``audience`` (one URL, or any of several);
        :class:`CdsAuthError` otherwise."""
        header, issuer = self._read_unverified(token)
        claims = self._decode_with_issuer_keys(token, header, issuer, audience)
        self._check_lifetime_and_replay(claims, issuer)
        return claims

    def _read_unverified(self, token: str) -> tuple[dict[str, Any], str]:
        """The JWT header and issuer, before any signature is checked: the algorithm must
        be accepted and the issuer an allowed client."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise CdsAuthError(f"malformed JWT: {exc}") from None
        _times_are_numbers(unverified)
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise CdsAuthError(f"JWT algorithm {alg!r} is not accepted")
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or issuer not in self._keys:
            raise CdsAuthError("JWT issuer is not an allowed CDS client")
        return header, issuer

    def _decode_with_issuer_keys(self, token: str, header: Mapping[str, Any], issuer: str,
                                 audience: str | Sequence[str]) -> dict[str, Any]:
        """The claims, verified with the first of the issuer's keys that fits the header."""
        alg: str = header["alg"]  # checked by _read_unverified
        kid = header.get("kid")
        candidates = [
            k for k in self._keys[issuer]
            if (kid is None or k.kid in (kid, None)) and k.alg in (alg, None)
        ]
        last = "no key of this issuer matches the JWT"
        for candidate in candidates:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token, candidate.key, algorithms=[alg],
                    audience=audience if isinstance(audience, str) else list(audience),
                    issuer=issuer,
                    leeway=LEEWAY_SECONDS,
                    options={"require": ["iss", "aud", "exp", "iat", "jti"]},
                )
                return claims
            except (jwt.InvalidSignatureError, jwt.InvalidKeyError,
                    jwt.InvalidAlgorithmError) as exc:
                last = str(exc) or type(exc).__name__
            except (jwt.PyJWTError, ValueError, TypeError) as exc:
                raise CdsAuthError(f"JWT rejected: {exc}") from None
        raise CdsAuthError(f"JWT rejected: {last}")

    def _check_lifetime_and_replay(self, claims: Mapping[str, Any], issuer: str) -> None:
        """Short-lived tokens only, and each ``jti`` once per issuer."""
        now = time.time()
        exp = float(claims["exp"])
        if exp > now + MAX_LIFETIME_SECONDS + LEEWAY_SECONDS:
            raise CdsAuthError("JWT expires too far in the future (at most 5 minutes)")
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            raise CdsAuthError("JWT jti must be a non-empty string")
        with self._lock:
            if now - self._purged > LEEWAY_SECONDS:  # forget expired jtis now and then
                self._seen = {k: v for k, v in self._seen.items() if v + LEEWAY_SECONDS >= now}
                self._purged = now
            if (issuer + "\0" + jti) in self._seen:
                raise CdsAuthError("JWT jti was already used")
            self._seen[issuer + "\0" + jti] = exp


class _FeedbackPart(BaseModel):
    # Extensions and fields of later spec versions are allowed, and ignored.
    model_config = ConfigDict(extra="allow", frozen=True)


class Coding(_FeedbackPart):
    """A CDS Hooks Coding (an override reason the user picked)."""

    code: str
    system: str
    display: str | None = None


class OverrideReason(_FeedbackPart):
    """Why a card was overridden: a reason, a user comment, or both (cds-fb-3)."""

    reason: Coding | None = None
    userComment: str | None = None

    @model_validator(mode="after")
    def _reason_or_comment(self) -> OverrideReason:
        if self.reason is None and self.userComment is None:
            raise ValueError("an overrideReason needs a reason, a userComment, or both")
        return self


class AcceptedSuggestion(_FeedbackPart):
    """A suggestion the user accepted, by its ``uuid``."""

    id: str = Field(min_length=1)


class Feedback(_FeedbackPart):
    """What the user did with one card (CDS Hooks 2.0, Feedback)."""

    card: uuid.UUID = Field(description="The card's uuid.")
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = None
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: AwareDatetime

    @model_validator(mode="after")
    def _accepted_names_suggestions(self) -> Feedback:
        if self.outcome == "accepted" and not self.acceptedSuggestions:
            raise ValueError("an accepted outcome needs acceptedSuggestions (cds-fb-2)")
        return self


class FeedbackRequest(_FeedbackPart):
    """The body of ``POST /cds-services/{id}/feedback``."""

    feedback: list[Feedback] = Field(min_length=1, max_length=100)


class FeedbackTally:
    """Counts of feedback outcomes, and nothing else.

    Card uuids, timestamps, suggestion ids, reason codes and comments are dropped on
    arrival: a comment may name the patient, and a card uuid plus a time can be joined
    with an EHR's audit log. The counts live as long as the service process.
    """

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, request: FeedbackRequest) -> None:
        """Count each feedback's outcome, and whether a reason or a comment came with it."""
        counts: Counter[str] = Counter()
        for item in request.feedback:
            counts[item.outcome] += 1
            if item.overrideReason is not None and item.overrideReason.reason is not None:
                counts["overridden_with_reason"] += 1
            if item.overrideReason is not None and item.overrideReason.userComment:
                counts["with_user_comment"] += 1
        with self._lock:
            self._counts.update(counts)

    def counts(self) -> dict[str, int]:
        """Feedback received so far, by outcome."""
        keys = ("accepted", "overridden", "overridden_with_reason", "with_user_comment")
        with self._lock:
            return {key: self._counts[key] for key in keys}
