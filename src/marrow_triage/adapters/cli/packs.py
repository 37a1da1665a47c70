"""Options every command that runs a rule pack shares: ``--rules``, ``--base``, ``--locale``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from marrow_triage.adapters.cli.report_input import fail, problem_lines
from marrow_triage.engine.triage import TriageEngine
from marrow_triage.errors import RulePackError
from marrow_triage.pack.spec import RulePack

__all__ = ["BaseOption", "LocaleOption", "RulesOption", "load_engine", "load_pack",
           "pick_locale"]

RulesOption = Annotated[
    Path | None,
    typer.Option(
        "--rules",
        help="Directory of another rule pack, or of a site overlay that extends one "
        "(default: the packaged pack).",
        file_okay=False,
        dir_okay=True,
    ),
]
BaseOption = Annotated[
    Path | None,
    typer.Option(
        "--base",
        help="Directory of the pack an overlay given by --rules extends, instead of the "
        "packaged pack.",
        file_okay=False,
        dir_okay=True,
    ),
]
LocaleOption = Annotated[
    str | None,
    typer.Option("--locale", help="Language of the patient texts, e.g. es (default: en)."),
]


def load_pack(rules: Path | None, base: Path | None = None) -> RulePack:
    """The pack (or overlay chain) asked for; exit 2 with one line per problem."""
    if base is not None and rules is None:
        fail(["--base: give --rules OVERLAY as well; --base names the pack it extends"])
    try:
        return RulePack.default() if rules is None else RulePack.from_path(rules, base=base)
    except RulePackError as exc:
        fail(problem_lines(exc.problems, "rule pack: "))


def load_engine(rules: Path | None, base: Path | None = None) -> TriageEngine:
    """An engine for the pack asked for; exit 2 on a bad pack."""
    try:
        return TriageEngine(load_pack(rules, base))
    except RulePackError as exc:
        fail(problem_lines(exc.problems, "rule pack: "))


def pick_locale(engine: TriageEngine, locale: str | None) -> str | None:
    """The pack's locale for ``--locale``; exit 2 naming the locales it has."""
    if locale is None:
        return None
    matched = engine.pack.match_locale(locale)
    if matched is None:
        fail([f"--locale: no texts in {locale!r}; this rule pack has "
              f"{', '.join(engine.pack.locales)}"])
    return matched
