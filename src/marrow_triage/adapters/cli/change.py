"""``marrow-triage rules diff``, ``rules release`` and ``rules trace``: see a rule change's
impact, record a version, trace sentences to rules to examples."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from marrow_triage._json import checked_text
from marrow_triage.adapters.cli.files import write_atomic
from marrow_triage.adapters.cli.report_input import fail, validation_lines
from marrow_triage.change import compare_engines, impact_json, impact_markdown, impact_text
from marrow_triage.change.impact import (
    EPISODE_SAMPLES,
    compare_timelines,
    episode_batches,
    report_batches,
    timeline_differs,
)
from marrow_triage.change.trace import TracedExample, build_trace, render_trace
from marrow_triage.engine.triage import EngineError, TriageEngine
from marrow_triage.errors import ReportError, RulePackError
from marrow_triage.models import SymptomReport
from marrow_triage.pack.spec import RulePack
from marrow_triage.pack.versions import RECORD_COMMAND, check_versions, record_version

__all__ = ["rules_diff", "rules_release", "rules_trace"]

PACKAGED = "packaged"
_PROGRESS_FROM = 20_000
"""Runs of at least this many reports show progress on stderr."""
_EPISODE_PROGRESS_FROM = 2_000
"""... or of this many episodes (each weighs a timeline in both packs, one at a time)."""


def _load(which: str, role: str, base: Path | None = None) -> TriageEngine:
    try:
        if which == PACKAGED:
            return TriageEngine(RulePack.default())
        return TriageEngine.from_path(which, base=base)
    except RulePackError as exc:
        fail([f"{role} {which}: {p}" for p in exc.problems])


def _read_ndjson(path: Path) -> list[SymptomReport]:
    """Reports, one JSON object per line (blank lines skipped); exits 2 naming the line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        fail([f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}"])
    reports = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:  # read strictly: a key given twice must not hide a value from the diff
            reports.append(SymptomReport.model_validate_json(checked_text(line)))
        except ValidationError as exc:
            problems += [f"{path.name}:{number}: {line}" for line in validation_lines(exc)]
        except ReportError as exc:
            problems += [f"{path.name}:{number}: {problem}" for problem in exc.problems]
        if len(problems) >= 10:
            break
    if problems:
        fail(problems)
    return reports


def rules_diff(
    old: Annotated[str, typer.Argument(help="Old pack: a directory (a pack or an overlay), "
                                            "or `packaged`.")],
    new: Annotated[str, typer.Argument(help="New pack: a directory, or `packaged`.")],
    base: Annotated[Path | None, typer.Option(
        help="Pack an overlay's `extends` is resolved against (default: the packaged pack).",
        file_okay=False)] = None,
    reports: Annotated[Path | None, typer.Option(
        "--reports", help="Also compare these reports (NDJSON: one report per line).",
        dir_okay=False)] = None,
    samples: Annotated[int, typer.Option(help="Seeded sample reports to add.", min=0,
                                         max=10_000_000)] = 100_000,
    seed: Annotated[int, typer.Option(help="Seed of the sample.")] = 0,
    episodes: Annotated[int, typer.Option(help="Seeded sample episodes of check-ins to add "
                                          "when the timeline rules or history settings "
                                          "differ.", min=0, max=1_000_000)] = EPISODE_SAMPLES,
    workers: Annotated[int, typer.Option(help="Processes comparing reports (0: one per core, "
                                              "up to 2).", min=0, max=64)] = 0,
    locales: Annotated[str, typer.Option(help="Locales whose wording to compare besides "
                                         "English: `all` (every locale both packs have), "
                                         "`none`, or a list such as es,cy.")] = "all",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print Markdown for a change "
                                                              "request.")] = False,
) -> None:
    """Show which reports a rule change moves, and why, before it ships.

    Both packs triage the same reports: every field's classes at and either side of every
    threshold either pack tests, combined pairwise, plus a seeded sample and --reports.
    Wording is compared in English and in each locale both packs have (--locales). When the
    timeline rules or history settings differ, both packs' timelines also weigh the same
    episodes: a current report after up to a few earlier check-ins, at and either side of
    every history cut-off, pairwise, plus --episodes seeded ones. Exit 0: no level
    changes; 1: some levels go up, none down; 3: at least one report or episode gets a
    lower level (possible under-triage); 2: bad input.

    Example: marrow-triage rules diff packaged my-rules/ --markdown > impact.md
    """
    if as_json and markdown:
        fail(["--json and --markdown: choose one"])
    before, after = _load(old, "old pack", base), _load(new, "new pack", base)
    common = [loc for loc in after.pack.locales if loc in before.pack.locales and loc != "en"]
    if locales == "all":
        chosen = common
    elif locales == "none":
        chosen = []
    else:
        chosen = [loc.strip() for loc in locales.split(",") if loc.strip() and loc != "en"]
        unknown = [loc for loc in chosen if loc not in common]
        if unknown:
            fail([f"--locales: {', '.join(unknown)} not in both packs; both have: "
                  f"{', '.join(['en', *common])}"])
    extra = [(reports.name, _read_ndjson(reports))] if reports is not None else []
    batches = report_batches([before.pack, after.pack], samples=samples, seed=seed,
                             extra=extra)
    total = sum(b.count for b in batches)
    started = time.monotonic()
    last = [started]

    def progress(done: int, expected: int) -> None:
        now = time.monotonic()
        if expected >= _PROGRESS_FROM and (now - last[0] >= 1 or done == expected):
            last[0] = now
            typer.echo(f"compared {done:,}/{expected:,} reports ({now - started:.1f} s)",
                       err=True)

    try:
        impact = compare_engines(before, after, batches, old_label=old, new_label=new,
                                 workers=workers or min(2, os.cpu_count() or 1),
                                 locales=chosen,
                                 progress=progress if total >= _PROGRESS_FROM else None)
        if timeline_differs(before.pack, after.pack):
            episode_space = episode_batches([before.pack, after.pack], samples=episodes,
                                            seed=seed)
            episode_total = sum(b.count for b in episode_space)
            episodes_started = time.monotonic()

            def episode_progress(done: int, expected: int) -> None:
                now = time.monotonic()
                if now - last[0] >= 1 or done == expected:
                    last[0] = now
                    typer.echo(f"compared {done:,}/{expected:,} episodes "
                               f"({now - episodes_started:.1f} s)", err=True)

            impact.timeline = compare_timelines(
                before, after, episode_space, old_label=old, new_label=new,
                progress=episode_progress if episode_total >= _EPISODE_PROGRESS_FROM
                else None)
    except EngineError as exc:
        fail([f"internal error: {exc}"], code=1)
    output = impact_json(impact) if as_json else impact_markdown(impact) if markdown else \
        impact_text(impact)
    sys.stdout.write(output)
    raise typer.Exit(impact.exit_code)


def rules_release(
    directory: Annotated[Path, typer.Argument(help="The pack's (or overlay's) directory.",
                                              file_okay=False)] = Path("rules"),
    record: Annotated[bool, typer.Option("--record", help="Record the current version's "
                                                          "sha256 and levels in pack.yaml.")
                      ] = False,
    note: Annotated[str | None, typer.Option(help="What changed in this version (kept in "
                                                  "the record).")] = None,
    replaced: Annotated[list[str] | None, typer.Option(
        "--replaced", metavar="OLD=NEW", help="A rule of the previous version that this one "
        "replaces with another (repeat it); its level is compared with the new rule's.")
                        ] = None,
    base: Annotated[Path | None, typer.Option(
        help="Pack an overlay's `extends` is resolved against (default: the packaged pack).",
        file_okay=False)] = None,
) -> None:
    """Show, or with --record write, the current version's record in pack.yaml (changes:).

    An overlay has its own record: the hash of its own files, so a change of the pack it
    extends does not change it, and the merged pack's levels.

    Run it with --record after every change to the rules (set a new `version:` first when
    the current one is released); `rules check` fails until the record matches. A rule
    removed in favour of another is named with --replaced OLD=NEW (after `rules diff`
    shows no report goes down), so its level is compared with its successor's. Exit 0: the
    record is sound; 1: it fails the release check (the problems are listed); 2: bad input.

    Example: marrow-triage rules release --record rules/

    Example: marrow-triage rules release --record examples/overlays/uk-site
    """
    pairs = None
    if replaced:
        pairs = dict(item.split("=", 1) for item in replaced if "=" in item)
        if len(pairs) != len(replaced):
            fail(["--replaced: write OLD=NEW, e.g. --replaced site-pain-persisting="
                  "site-pain-beyond-several-days"])
    try:
        text, entry = record_version(directory, note, pairs, base=base)
        pack = RulePack.from_path(directory, base=base)
    except RulePackError as exc:
        fail([str(p) for p in exc.problems])
    where = str(directory) if base is None else f"{directory} --base {base}"
    if not record:
        problems = check_versions(pack, where)
        for problem in problems:
            typer.echo(str(problem))
        typer.echo(json.dumps(entry.model_dump(mode="json", exclude_none=True), indent=2))
        if problems:
            typer.echo(f"record it with: {RECORD_COMMAND.format(directory=where)}")
        raise typer.Exit(1 if problems else 0)
    try:
        write_atomic(directory / "pack.yaml", text)
    except OSError as exc:
        fail([f"{directory / 'pack.yaml'}: cannot write: {exc.strerror or exc}"])
    remaining = check_versions(RulePack.from_path(directory, base=base), where)
    for problem in remaining:
        typer.echo(f"{directory.name}/{problem}", err=True)
    typer.echo(f"recorded {pack.name} {entry.version}: sha256 {entry.sha256}, "
               f"{len(entry.levels)} rule levels", err=True)
    raise typer.Exit(1 if remaining else 0)  # recorded, but the release check still fails


def _source_texts(pack: RulePack, sources: Path) -> dict[str, str]:
    """Document id -> text, for each cited document whose text (a .txt file whose first
    line is the document's title) is in ``sources``."""
    texts: dict[str, str] = {}
    candidates = sorted(sources.glob("*.txt")) if sources.is_dir() else []
    for path in candidates:
        text = path.read_text(encoding="utf-8")
        first = text.splitlines()[0].strip() if text else ""
        for document, spec in pack.documents.items():
            if spec.title == first:
                texts[document] = text
    return texts


def _load_examples(path: Path, engine: TriageEngine) -> list[TracedExample]:
    """``traced_examples(engine)`` of the Python file at ``path``."""
    spec = importlib.util.spec_from_file_location("marrow_triage_traced_examples", path)
    if spec is None or spec.loader is None or not path.is_file():
        fail([f"--examples {path}: not a Python file"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    examples: list[TracedExample] = module.traced_examples(engine)
    return examples


def rules_trace(
    output: Annotated[str, typer.Option("--output", "-o", help="Where to write it; - for "
                                        "stdout.")] = "docs/safety/traceability.md",
    rules: Annotated[Path | None, typer.Option("--rules", help="Pack directory (default: "
                                               "the packaged pack).", file_okay=False)] = None,
    sources: Annotated[Path, typer.Option(help="Folder with the cited documents' text.",
                                          file_okay=False)] = Path("../shared/sources"),
    examples: Annotated[Path, typer.Option(help="Python file whose traced_examples(engine) "
                                           "gives the worked examples.", dir_okay=False)
                        ] = Path("tests/trace_examples.py"),
) -> None:
    """Write the traceability matrix: source sentence → rules → examples on each side of
    each threshold. Exits 2 listing what a reviewer could not follow.

    Example: marrow-triage rules trace --sources ../shared/sources
    """
    engine = _load(PACKAGED if rules is None else str(rules), "rule pack")
    texts = _source_texts(engine.pack, sources)
    if not texts:
        fail([f"--sources {sources}: no text of any document the pack cites (a .txt file "
              "whose first line is the document's title)"])
    trace = build_trace(engine.pack, texts, _load_examples(examples, engine))
    text = render_trace(engine.pack, trace)
    if output == "-":
        sys.stdout.write(text)
    else:
        try:
            write_atomic(Path(output), text)
        except OSError as exc:
            fail([f"{output}: cannot write: {exc.strerror or exc}"])
        typer.echo(f"wrote {output} ({len(trace.thresholds)} thresholds, "
                   f"{len(trace.sentences)} sentences)", err=True)
    if trace.problems:
        fail(trace.problems)
