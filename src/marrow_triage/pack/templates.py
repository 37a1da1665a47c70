"""Text templates of a rule pack: explanations (and any other text a pack fills in).

A template may hold only plain ``{name}`` placeholders: no conversions (``{x!r}``), no
format specs (``{x:d}``, ``{x:>300000000}``), no attribute or index access (``{x.y}``,
``{x[0]}``) and no positional ``{}``. ``{{`` and ``}}`` write a literal brace. Anything
richer lets a pack author (or a damaged file) crash or exhaust the process when the
rule fires, long after ``rules check`` said the pack was fine, so it is refused when the
pack is loaded; :func:`render` never interprets it either.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, Field

__all__ = ["Template", "TemplateText", "check_template", "placeholders", "render",
           "rendered_names"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FORMATTER = string.Formatter()


def _parts(template: str) -> list[tuple[str, str | None]]:
    """``(literal, name)`` pairs, or ValueError saying what is not a plain placeholder."""
    out: list[tuple[str, str | None]] = []
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:  # an unmatched brace, an unclosed field
        raise ValueError(f"bad template: {exc}; write {{{{ or }}}} for a literal brace") \
            from None
    for literal, name, spec, conversion in parsed:
        if name is None:
            out.append((literal, None))
            continue
        shown = "{" + name + (f"!{conversion}" if conversion else "") + \
            (f":{spec}" if spec else "") + "}"
        if conversion is not None:
            raise ValueError(f"placeholder {shown} has a conversion (!{conversion}); "
                             "only plain {name} placeholders are allowed")
        if spec:
            raise ValueError(f"placeholder {shown} has a format spec (:{spec}); "
                             "only plain {name} placeholders are allowed")
        if not _NAME.fullmatch(name):
            what = ("is positional" if name == "" or name.isdigit()
                    else "uses attribute or index access" if re.search(r"[.\[]", name)
                    else "is not a name")
            raise ValueError(f"placeholder {shown} {what}; only plain {{name}} placeholders "
                             "are allowed")
        out.append((literal, name))
    return out


def check_template(template: str) -> str:
    """``template`` if it holds only plain ``{name}`` placeholders, else ValueError."""
    _parts(template)
    return template


def placeholders(template: str) -> list[str]:
    """Names of the template's placeholders in first-use order (ValueError if not plain)."""
    return list(dict.fromkeys(name for _, name in _parts(template) if name is not None))


def rendered_names(template: str) -> list[str]:
    """Names :func:`render` would look up, in first-use order: the plain placeholders,
    even in a template that also holds other braces (which render leaves as written)."""
    names = (match.group(1) for match in _TOKEN.finditer(template))
    return list(dict.fromkeys(name for name in names if name and _NAME.fullmatch(name)))


def render(template: str, value_of: Callable[[str], str | None]) -> str:
    """Fill the template's placeholders with ``value_of(name)``.

    Plain text substitution that never fails and never formats: ``{{``/``}}`` become
    braces, a plain ``{name}`` its value, and anything else (a placeholder whose value is
    None, one that is not plain, a stray brace: impossible in a loaded pack) stays as
    written, so its cost is bounded by the template's length.
    """
    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1)
        value = value_of(name) if _NAME.fullmatch(name) else None
        return token if value is None else value

    return _TOKEN.sub(substitute, template)


_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


class Template:
    """A template split once into text and placeholders: :meth:`render` gives what
    :func:`render` gives, without matching the template again for every result."""

    __slots__ = ("_pieces", "text")

    def __init__(self, template: str) -> None:
        self.text = template
        pieces: list[tuple[str, str | None]] = []  # (text, None) or (token as written, name)
        literal: list[str] = []
        position = 0
        for match in _TOKEN.finditer(template):
            literal.append(template[position:match.start()])
            position = match.end()
            token = match.group(0)
            name = match.group(1)
            if token in ("{{", "}}") or name is None or not _NAME.fullmatch(name):
                literal.append(token[0] if token in ("{{", "}}") else token)
                continue
            pieces.append(("".join(literal), None))
            literal = []
            pieces.append((token, name))
        literal.append(template[position:])
        pieces.append(("".join(literal), None))
        self._pieces = tuple((text, name) for text, name in pieces if text or name)

    def __eq__(self, other: object) -> bool:
        """Templates of the same text are equal (they render the same)."""
        return isinstance(other, Template) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def render(self, value_of: Callable[[str], str | None]) -> str:
        """Fill the placeholders with ``value_of(name)``, exactly as :func:`render`."""
        out = []
        for text, name in self._pieces:
            if name is None:
                out.append(text)
            else:
                value = value_of(name)
                out.append(text if value is None else value)
        return "".join(out)


TemplateText = Annotated[str, Field(min_length=1), AfterValidator(check_template)]
"""A non-empty pack text whose placeholders are all plain ``{name}`` ones."""
