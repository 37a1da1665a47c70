"""Pack versions that mean something: each released version's hash and levels, recorded.

``changes:`` in pack.yaml lists every version of the pack with the SHA-256 of its content
and the level of each rule. :func:`check_versions` finds what a release must not do: change
the content without a new version (the hash recorded for this version differs), or lower a
level (or drop a rule above self_care) without a new major version. :func:`record_version`
gives the pack.yaml text that records the current version; ``marrow-triage rules release
--record`` writes it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from marrow_triage.errors import Problem
from marrow_triage.models import Urgency
from marrow_triage.pack.spec import RulePack, VersionRecord

__all__ = [
    "RECORD_COMMAND",
    "LevelChange",
    "check_versions",
    "content_sha256",
    "level_changes",
    "levels_of",
    "parse_version",
    "record_version",
]

RECORD_COMMAND = "marrow-triage rules release --record {directory}"
"""The one command that records (or re-records) the current version of a pack."""

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$")


def parse_version(version: str) -> tuple[int, int, int] | None:
    """``(major, minor, patch)`` of a ``MAJOR.MINOR.PATCH`` version, else None."""
    match = _VERSION.match(version)
    return None if match is None else (int(match[1]), int(match[2]), int(match[3]))


def levels_of(pack: RulePack) -> dict[str, Urgency]:
    """Every rule's level (report rules and timeline rules), by rule id, sorted."""
    levels = {rule.id: rule.level for rule in pack.rules}
    levels.update((rule.id, rule.level) for rule in pack.timeline_rules)
    return dict(sorted(levels.items()))


@dataclass(frozen=True)
class LevelChange:
    """How one rule's level differs between two versions (None: the rule is absent)."""

    rule_id: str
    old: Urgency | None
    new: Urgency | None
    replaced_by: str | None = None
    """The rule that replaces a removed one (its level is ``new``)."""

    @property
    def lowers(self) -> bool:
        """True when some report can now get a lower level because of this change."""
        if self.old is None:
            return False
        if self.new is None:
            return self.old > Urgency.SELF_CARE
        return self.new < self.old

    def __str__(self) -> str:
        if self.replaced_by is not None:
            return f"{self.rule_id} ({self.old}) replaced by {self.replaced_by} ({self.new})"
        if self.old is None:
            return f"{self.rule_id} added ({self.new})"
        if self.new is None:
            return f"{self.rule_id} removed (was {self.old})"
        return f"{self.rule_id}: {self.old} → {self.new}"


def level_changes(old: Mapping[str, Urgency], new: Mapping[str, Urgency],
                  replaced: Mapping[str, str] | None = None) -> list[LevelChange]:
    """Rules added, removed (or ``replaced``: old id -> new id) or at another level."""
    replaced = replaced or {}
    changes = []
    for rule_id in sorted(set(old) | set(new)):
        if rule_id in replaced and rule_id not in new:
            successor = replaced[rule_id]
            changes.append(LevelChange(rule_id, old.get(rule_id), new.get(successor),
                                       successor))
        elif old.get(rule_id) != new.get(rule_id):
            changes.append(LevelChange(rule_id, old.get(rule_id), new.get(rule_id)))
    return changes


def content_sha256(pack: RulePack) -> str:
    """The hash a version record holds: the pack's own content (for an overlay, its own
    files, whatever the pack it extends; for a full pack, :attr:`RulePack.sha256`)."""
    return pack.chain[-1].sha256 if pack.chain else pack.sha256


def _is_overlay(pack: RulePack) -> bool:
    return len(pack.chain) > 1


def _previous(pack: RulePack) -> VersionRecord | None:
    """The latest recorded version before the pack's own."""
    current = parse_version(pack.version)
    earlier = [r for r in pack.changes
               if current is not None and (v := parse_version(r.version)) is not None
               and v < current]
    return max(earlier, key=lambda r: parse_version(r.version) or (0, 0, 0), default=None)


def check_versions(pack: RulePack, directory: str | Path) -> list[Problem]:
    """What is wrong with the pack's version history; empty when it is sound.

    A pack without a ``changes:`` record of its version is a problem too: nothing would
    tell a later change of its content from the released one. ``directory`` is the pack's
    folder, named in the command each problem tells to run.
    """
    command = RECORD_COMMAND.format(directory=directory)
    problems: list[Problem] = []

    def problem(message: str) -> None:
        problems.append(Problem.in_pack("pack.yaml", None, "changes", message))

    if not pack.changes:
        problem(f"no version history: version {pack.version} is not recorded, so a later "
                f"change of the content cannot be told from it; record it with `{command}`")
        return problems
    current = parse_version(pack.version)
    if current is None:
        problems.append(Problem.in_pack("pack.yaml", None, "version", f"{pack.version!r} is not "
                                        "MAJOR.MINOR.PATCH, so its changes cannot be checked"))
        return problems
    seen: set[tuple[int, int, int]] = set()
    for record in pack.changes:
        parsed = parse_version(record.version)
        if parsed is None or parsed in seen:
            problem(f"version {record.version!r} is recorded twice or is not MAJOR.MINOR.PATCH")
        elif seen and parsed < max(seen):
            problem(f"version {record.version} is out of order: list versions oldest first")
        if parsed is not None:
            seen.add(parsed)
    recorded = next((r for r in pack.changes if r.version == pack.version), None)
    if recorded is None:
        problem(f"version {pack.version} is not recorded: after checking the change "
                f"(`marrow-triage rules diff`), record it with `{command}`")
    elif recorded.sha256 != content_sha256(pack):
        problem(f"the rules changed but the version did not: the content's sha256 is "
                f"{content_sha256(pack)}, the hash recorded for {pack.version} is "
                f"{recorded.sha256}. "
                f"If {pack.version} is not released yet, re-record it with `{command}`; if it "
                f"is, set a new `version:` in pack.yaml first, then run that command")
    # An overlay's merged levels also follow the pack it extends, which is released on its
    # own (and checked there); the overlay's own content is what its hash identifies.
    elif recorded.levels != levels_of(pack) and not _is_overlay(pack):
        problem(f"the levels recorded for {pack.version} are not the pack's: re-record them "
                f"with `{command}`")
    previous = _previous(pack)
    replaced = recorded.replaced if recorded is not None else {}
    levels = levels_of(pack)
    for old_id, new_id in sorted(replaced.items()):
        if previous is None or old_id not in previous.levels or old_id in levels:
            problem(f"{pack.version} says it replaces {old_id}, which is not a rule of the "
                    "previous version that this one removed")
        if new_id not in levels:
            problem(f"{pack.version} says {old_id} is replaced by {new_id}, which is not a rule")
    if previous is not None:
        lowered = [c for c in level_changes(previous.levels, levels, replaced) if c.lowers]
        previous_major = (parse_version(previous.version) or (0, 0, 0))[0]
        if lowered and current[0] <= previous_major:
            problem(f"version {pack.version} lowers levels set in {previous.version} "
                    f"({'; '.join(map(str, lowered))}), so it must be a new major version: set "
                    f"`version: {previous_major + 1}.0.0` in pack.yaml, then run `{command}`")
    return problems


def record_version(directory: str | Path, note: str | None = None,
                   replaced: Mapping[str, str] | None = None,
                   base: str | Path | None = None) -> tuple[str, VersionRecord]:
    """The new text of ``directory``/pack.yaml recording the pack's current version.

    An existing record of the same version is replaced (keeping its note and replaced
    rules unless ``note`` or ``replaced`` are given); other versions' records are kept as
    they are. An overlay's record holds its own content's hash and the merged pack's
    levels (``base``: what its ``extends`` is resolved against). Raises RulePackError when
    the pack does not load.
    """
    pack = RulePack.from_path(directory, base=base)
    old = next((r for r in pack.changes if r.version == pack.version), None)
    if replaced is None:
        replaced = old.replaced if old is not None else {}
    record = VersionRecord(version=pack.version, sha256=content_sha256(pack),
                           note=note if note is not None else (old.note if old else None),
                           replaced=dict(sorted(replaced.items())), levels=levels_of(pack))
    records = [r for r in pack.changes if r.version != pack.version] + [record]
    records.sort(key=lambda r: parse_version(r.version) or (0, 0, 0))
    text = (Path(directory) / "pack.yaml").read_text(encoding="utf-8")
    return _with_changes(text, records, directory), record


class _IndentedDumper(yaml.SafeDumper):
    """Indents list items under their key, as the rest of pack.yaml does."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _with_changes(text: str, records: list[VersionRecord], directory: str | Path) -> str:
    """``text`` with its top-level ``changes:`` block replaced (or appended)."""
    data = [{k: v for k, v in r.model_dump(mode="json").items() if v not in (None, {})}
            for r in records]
    block = yaml.dump({"changes": data}, Dumper=_IndentedDumper, sort_keys=False,
                      allow_unicode=True, width=88)
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith("changes:")), None)
    if start is None:
        head = text if text.endswith("\n") or not text else text + "\n"
        return head + _CHANGES_COMMENT.format(directory=directory) + block
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end][0] in " \t#"):
        end += 1
    # Comment lines just before the next key belong to that key.
    while end > start + 1 and lines[end - 1].startswith("#"):
        end -= 1
    return "".join(lines[:start]) + block + "".join(lines[end:])


_CHANGES_COMMENT = (
    "# Version history: each released version's sha256 and rule levels. `marrow-triage\n"
    "# rules check` fails when the rules change without a new version, or lower a level\n"
    "# without a new major version. After changing rules, run\n"
    "#   marrow-triage rules release --record {directory}\n"
    "# (it re-records the current version; set a new `version:` first if this one is\n"
    "# released).\n"
)
