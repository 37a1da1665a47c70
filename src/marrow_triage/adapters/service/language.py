"""``Accept-Language``: which of a rule pack's locales an answer's patient texts are in.

One negotiation for every endpoint that gives a result (``/v1/triage``, its batch, the
timeline's check-ins, the CDS Hooks fallback), so they all choose the same language for
the same header.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Header

__all__ = ["AcceptLanguage", "negotiate_locale"]

AcceptLanguage = Annotated[
    str | None,
    Header(description="Language of the patient texts, e.g. `es` or `es-MX, en;q=0.5`; "
           "English when the pack has none of them. The answer's `Content-Language` says "
           "which was used."),
]


def negotiate_locale(header: str | None, locales: tuple[str, ...]) -> str:
    """The best of ``locales`` for an ``Accept-Language`` header (RFC 9110); ``en`` when
    none matches. ``es-MX`` matches ``es``; a ``q=0`` range is refused, not chosen."""
    if not header:
        return "en"
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, index, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        if tag == "*":
            return "en"
        primary = tag.split("-", 1)[0]
        for candidate in (tag, primary):
            if candidate in locales:
                return candidate
    return "en"
