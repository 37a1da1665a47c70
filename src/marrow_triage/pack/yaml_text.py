"""Reading one YAML file of a rule pack with bounded work, before any validation runs.

People write rule packs, so the YAML features that let a small file stand for a huge
document are refused rather than expanded: anchors and aliases (a 1 KB file of 25
doubling aliases under ``any:`` is a condition of 2^25 parts), and nesting deeper than
any pack needs. Files are capped in size, and a key written twice in one mapping (which
YAML would resolve silently, the later value replacing the earlier condition) is refused
too. The check walks the parser's events, which costs time linear in the file's length;
only a file that passes is built into Python objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "YamlLimitError", "read_yaml_file"]

MAX_FILE_BYTES = 1_000_000
"""Largest rule file read (the default pack's files are ~10 KB each)."""
MAX_DEPTH = 48
"""Deepest nesting of mappings and lists in a file. Each ``any:``/``all:`` level of a
condition is two (a list and a mapping), and the engine refuses conditions long before
this (see docs/rules-format.md); the cap bounds the work of reaching that check."""

_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML was built with it: the pure-Python one was most of
the time it took to load the pack, and so of cold start (benchmarks/README.md)."""


class YamlLimitError(ValueError):
    """A YAML file that uses a refused feature or exceeds a limit; the message says where."""


def read_yaml_file(path: Path) -> object:
    """The YAML document in ``path``, read with the limits above.

    Raises :class:`YamlLimitError` for a refused feature or a limit, ``yaml.YAMLError``
    for bad syntax, ``UnicodeDecodeError`` for bytes that are not UTF-8 and ``OSError``
    when the file cannot be read.
    """
    with path.open("rb") as stream:
        raw = stream.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise YamlLimitError(f"is larger than {MAX_FILE_BYTES:,} bytes; split the rules "
                             "over several files")
    text = raw.decode("utf-8")
    check_events(text)
    try:
        return yaml.load(text, Loader=_SAFE_LOADER)
    except (ValueError, OverflowError, TypeError) as exc:  # e.g. an int of 10,000 digits
        raise YamlLimitError(f"a value cannot be read: {' '.join(str(exc).split())}") from None


@dataclass(slots=True)
class _Open:
    """A mapping or list being read: for a mapping, whether a key comes next, and its keys."""

    mapping: bool
    key_next: bool = True
    keys: set[str] = field(default_factory=set)


def check_events(text: str) -> None:
    """Refuse anchors, aliases, nesting past :data:`MAX_DEPTH` and repeated keys."""
    frames: list[_Open] = []

    def node_done() -> None:
        if frames and frames[-1].mapping:
            frames[-1].key_next = not frames[-1].key_next

    for event in yaml.parse(text, Loader=_SAFE_LOADER):
        if isinstance(event, yaml.AliasEvent):
            raise YamlLimitError(f"{_line(event)}alias *{event.anchor} refused: write the "
                                 "value out (anchors and aliases are not allowed in rule "
                                 "files)")
        if isinstance(event, yaml.NodeEvent) and event.anchor is not None:
            raise YamlLimitError(f"{_line(event)}anchor &{event.anchor} refused: anchors and "
                                 "aliases are not allowed in rule files")
        if isinstance(event, yaml.ScalarEvent):
            if frames and frames[-1].mapping and frames[-1].key_next:
                keys = frames[-1].keys
                if event.value in keys:
                    raise YamlLimitError(f"{_line(event)}key {event.value!r} is written twice "
                                         "in one mapping; the later would silently replace "
                                         "the earlier")
                keys.add(event.value)
            node_done()
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(frames) >= MAX_DEPTH:
                raise YamlLimitError(f"{_line(event)}nested more than {MAX_DEPTH} levels deep")
            frames.append(_Open(isinstance(event, yaml.MappingStartEvent)))
        elif isinstance(event, yaml.CollectionEndEvent):
            frames.pop()
            node_done()


def _line(event: yaml.Event) -> str:
    mark = getattr(event, "start_mark", None)
    return "" if mark is None else f"line {mark.line + 1}: "
