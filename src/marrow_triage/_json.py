"""The one strict JSON reader behind every way a report comes in as text.

Python's ``json`` (and pydantic's parser) keep the last of two values given for one key,
so ``{"temperature": 38.5 °C, "temperature": 36.5 °C}`` would silently become a normal
temperature: a fever hidden by a sender's bug. Here a key given twice, at any depth, is
refused with its path. A leading UTF-8 byte-order mark (as Windows tools write) is
accepted and dropped.

* :func:`loads` parses to Python values (for callers that need the parsed JSON).
* :func:`checked_text` only checks, and returns the text for a pydantic ``*_json``
  validator, so that numbers keep pydantic's exact parsing and its error messages.
"""

from __future__ import annotations

import json
from typing import Any

from marrow_triage.errors import DuplicateKeyError, Problem, ReportError

__all__ = ["checked_text", "loads", "render_path"]

_BOM = "\ufeff"
JsonPath = tuple[str | int, ...]


class _Duplicated(dict[str, Any]):
    """An object in which some key was given more than once (``duplicates`` says which)."""

    __slots__ = ("duplicates",)

    def __init__(self, pairs: list[tuple[str, Any]], duplicates: list[str]) -> None:
        super().__init__(pairs)
        self.duplicates = duplicates


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    duplicates: list[str] = []
    for key, _ in pairs:
        if key in seen and key not in duplicates:
            duplicates.append(key)
        seen.add(key)
    return _Duplicated(pairs, duplicates)


def _ignore(_text: str) -> None:
    """Numbers are not needed to find duplicate keys (and may be too long for ``int``)."""


_FULL = json.JSONDecoder(object_pairs_hook=_pairs_hook)
_KEYS_ONLY = json.JSONDecoder(object_pairs_hook=_pairs_hook, parse_float=_ignore,
                              parse_int=_ignore, parse_constant=_ignore)


def render_path(path: JsonPath) -> str:
    """``("entry", 0, "resource")`` as ``entry[0].resource``; ``(1, "x")`` as ``[1].x``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _duplicate_paths(value: Any) -> list[JsonPath]:
    """The path of every duplicated key in a parsed value, in document order."""
    found: list[JsonPath] = []
    stack: list[tuple[JsonPath, Any]] = [((), value)]
    while stack:  # iterative: a value json could parse may be nested past Python's stack
        path, node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node, _Duplicated):
                found.extend((*path, key) for key in node.duplicates)
            stack.extend(((*path, key), child) for key, child in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend(((*path, i), child) for i, child in reversed(list(enumerate(node))))
    return found


def _refuse_duplicates(value: Any) -> None:
    paths = _duplicate_paths(value)
    raise DuplicateKeyError(
        [Problem(render_path(path),
                 f"duplicate key {path[-1]!r}: refused, because a JSON reader keeps "
                 "only one of its values and would silently drop the other")
         for path in paths],
        paths,
    )


def _text(data: str | bytes | bytearray) -> str:
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ReportError([Problem(
                None, f"not UTF-8 text (byte {exc.start}: {exc.reason})")]) from None
    else:
        text = data
    return text[1:] if text.startswith(_BOM) else text


def checked_text(data: str | bytes | bytearray) -> str | bytes:
    """The JSON text with any byte-order mark dropped, after refusing duplicate keys.

    Raises :class:`~marrow_triage.errors.DuplicateKeyError` naming each duplicated key's
    path. Bytes that are not UTF-8, and text that is not JSON, are returned as they are
    for the validator to report.
    """
    if isinstance(data, bytes | bytearray):
        raw = bytes(data)
        try:
            data = raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw  # not UTF-8, so not JSON: the validator says where
    text = _text(data)
    try:
        value = _KEYS_ONLY.decode(text)
    except (ValueError, RecursionError):
        return text  # not JSON (or nested past any report): the validator says where
    if _has_duplicates(value):
        _refuse_duplicates(value)
    return text


def loads(data: str | bytes | bytearray) -> Any:
    """Parse JSON, refusing duplicate keys; a byte-order mark is accepted.

    Raises :class:`~marrow_triage.errors.ReportError` (a
    :class:`~marrow_triage.errors.DuplicateKeyError` for duplicate keys) with one
    problem per fault.
    """
    text = _text(data)
    try:
        value = _FULL.decode(text)
    except json.JSONDecodeError as exc:
        raise ReportError([Problem(
            None, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")],
        ) from None
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ReportError([Problem(None, f"not usable JSON: {reason}")]) from None
    if _has_duplicates(value):
        _refuse_duplicates(value)
    return value


def _has_duplicates(value: Any) -> bool:
    # The common case (no duplicates anywhere) must stay cheap: one walk, no paths built.
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node, _Duplicated):
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False
