"""An :class:`~marrow_triage.change.impact.Impact` as text, Markdown (for a change request)
or JSON."""

from __future__ import annotations

import json
from typing import Any

from marrow_triage.change.impact import (
    Impact,
    Transition,
    counted_text,
    counts_line,
    example_json,
    firing_sorted,
)

__all__ = ["impact_json", "impact_markdown", "impact_text"]

def _verdict(impact: Impact) -> str:
    what, some = ("report", "reports") if impact.timeline is None else \
        ("report or episode", "reports or episodes")
    return {
        0: f"No {what} changes level.",
        1: f"Some {some} get a higher level; none gets a lower one.",
        3: f"AT LEAST ONE {what.upper()} NOW GETS A LOWER LEVEL (possible under-triage): "
           "review each downward transition before release.",
    }[impact.exit_code]


def _pack_line(side: dict[str, str]) -> str:
    return f"{side['label']} ({side['name']} {side['version']}, sha256 {side['sha256'][:12]})"


def _transition_title(t: Transition, what: str = "report") -> str:
    direction = "down" if t.steps < 0 else "up"
    steps = abs(t.steps)
    return (f"{t.old} → {t.new}: {t.count:,} {what}{'s' if t.count != 1 else ''} "
            f"({steps} level{'s' if steps != 1 else ''} {direction})")


def _share(count: int, total: int) -> str:
    return f"{100 * count / total:.2f} %" if total else "0 %"


def _moves_text(impact: Impact, what: str) -> list[str]:
    """Level changes, firing and wording of one comparison (reports or episodes)."""
    moved = impact.lower + impact.higher
    lines = [f"Level changes: {moved:,} {what}s ({_share(moved, impact.total)}): "
             f"{impact.lower:,} lower, {impact.higher:,} higher"]
    for t in impact.sorted_transitions():
        lines.append(f"  {_transition_title(t, what)}")
        for cause in sorted(t.causes.values(), key=lambda c: (-c.count, c.added, c.removed)):
            lines.append(f"    {cause.count:>9,}  {cause.describe()}")
            lines.append(f"               e.g. {example_json(cause.example)}")
    lines += ["", "Rules whose firing changed:"]
    firing = firing_sorted(impact)
    lines += [f"  {r.rule_id}: fires for {r.more:,} more and {r.fewer:,} fewer {what}s"
              for r in firing] or ["  none"]
    lines += ["", "Text-only changes (same level, same rules):"]
    text = counted_text(impact)
    for change in text:
        lines.append(f"  {change.rule_id} {change.part} [{change.locale}]: "
                     f"{change.count:,} {what}s")
        lines.append(f"    was: {change.old_text}")
        lines.append(f"    now: {change.new_text}")
        lines.append(f"    e.g. {example_json(change.example)}")
    if not text:
        lines.append("  none")
    return lines


def impact_text(impact: Impact) -> str:
    """A readable summary for a terminal."""
    lines = [f"Rule change: {_pack_line(impact.old)} → {_pack_line(impact.new)}",
             counts_line(impact), ""]
    lines += _moves_text(impact, "report")
    lines += ["", "Rule definitions changed:"]
    lines += [f"  {d.kind} {d.rule_id}: {d.detail}" for d in impact.definitions] or ["  none"]
    for d in impact.timeline_lowering:
        lines.append(f"  note: timeline rule {d.rule_id} is lowered or removed; "
                     + ("what it does to patients is measured over the episodes below"
                        if impact.timeline is not None else
                        "no episode was compared, so it counts as a lower level"))
    if impact.timeline is not None:
        lines += ["", "Timeline episodes (a report after earlier check-ins, both packs' "
                  "timelines):", counts_line(impact.timeline, "episodes"), ""]
        lines += _moves_text(impact.timeline, "episode")
    lines += ["", f"{_verdict(impact)} (exit {impact.exit_code})"]
    return "\n".join(lines) + "\n"


def impact_markdown(impact: Impact) -> str:
    """Markdown to paste into a change request."""
    lines = [
        "## Impact of the rule change",
        "",
        f"- **From**: {_pack_line(impact.old)}",
        f"- **To**: {_pack_line(impact.new)}",
        f"- **Reports compared**: {counts_line(impact)}",
    ]
    if impact.timeline is not None:
        lines.append(f"- **Episodes compared** (a report after earlier check-ins): "
                     f"{counts_line(impact.timeline, 'episodes')}")
    lines += [f"- **Verdict**: {_verdict(impact)}", ""]
    lines += _moves_markdown(impact, "report", "###")
    lines += ["", "### Rule definitions changed", ""]
    lines += [f"- {d.kind} `{d.rule_id}`: {d.detail}" for d in impact.definitions] or ["None."]
    for d in impact.timeline_lowering:
        lines.append(f"- note: timeline rule `{d.rule_id}` is lowered or removed; " + (
            "what it does to patients is measured over the episodes below"
            if impact.timeline is not None else
            "no episode was compared, so it counts as a lower level"))
    if impact.timeline is not None:
        lines += ["", "### Timeline episodes", ""]
        lines += _moves_markdown(impact.timeline, "episode", "####")
    return "\n".join(lines) + "\n"


def _moves_markdown(impact: Impact, what: str, heading: str) -> list[str]:
    lines = [f"{heading} Level changes", ""]
    transitions = impact.sorted_transitions()
    if transitions:
        lines += [f"| transition | {what}s | why | smallest example |", "|---|---:|---|---|"]
        for t in transitions:
            for cause in sorted(t.causes.values(), key=lambda c: (-c.count, c.added, c.removed)):
                lines.append(f"| {t.old} → {t.new} | {cause.count:,} | {cause.describe()} | "
                             f"`{example_json(cause.example)}` |")
    else:
        lines.append(f"No {what} changes level.")
    lines += ["", f"{heading} Rules whose firing changed", ""]
    firing = firing_sorted(impact)
    if firing:
        lines += [f"| rule | fires for more {what}s | fires for fewer {what}s |",
                  "|---|---:|---:|"]
        lines += [f"| `{r.rule_id}` | {r.more:,} | {r.fewer:,} |" for r in firing]
    else:
        lines.append("None.")
    lines += ["", f"{heading} Text-only changes (same level, same rules)", ""]
    text = counted_text(impact)
    if text:
        lines += [f"| rule | part | locale | {what}s | was | now |", "|---|---|---|---:|---|---|"]
        lines += [f"| `{c.rule_id}` | {c.part} | {c.locale} | {c.count:,} | {_cell(c.old_text)} "
                  f"| {_cell(c.new_text)} |" for c in text]
    else:
        lines.append("None.")
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def impact_json(impact: Impact) -> str:
    """The whole impact as JSON (stable key order); ``timeline`` holds the episodes'
    comparison (null when the timelines were not compared)."""
    data: dict[str, Any] = {
        "old": impact.old,
        "new": impact.new,
        "reports": _sources_json(impact),
        "lower": impact.lower,
        "higher": impact.higher,
        "exit_code": impact.exit_code,
        **_moves_json(impact),
        "definitions": [
            {"rule_id": d.rule_id, "kind": d.kind, "parts": list(d.parts),
             "old_level": None if d.old_level is None else str(d.old_level),
             "new_level": None if d.new_level is None else str(d.new_level),
             "detail": d.detail}
            for d in impact.definitions
        ],
        "timeline": None if impact.timeline is None else {
            "episodes": _sources_json(impact.timeline),
            "lower": impact.timeline.lower,
            "higher": impact.timeline.higher,
            **_moves_json(impact.timeline),
        },
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _sources_json(impact: Impact) -> dict[str, Any]:
    return {"total": impact.total, "invalid": impact.invalid,
            "sources": [{"label": label, "count": count} for label, count in impact.sources]}


def _moves_json(impact: Impact) -> dict[str, Any]:
    return {
        "transitions": [
            {"old": str(t.old), "new": str(t.new), "steps": t.steps, "count": t.count,
             "causes": [{"rules_added": list(c.added), "rules_removed": list(c.removed),
                         "rules_relevelled": list(c.relevelled), "count": c.count,
                         "example": c.example}
                        for c in sorted(t.causes.values(),
                                        key=lambda c: (-c.count, c.added, c.removed))]}
            for t in impact.sorted_transitions()
        ],
        "rules": [{"rule_id": r.rule_id, "more": r.more, "fewer": r.fewer}
                  for r in firing_sorted(impact)],
        "text_changes": [
            {"rule_id": c.rule_id, "part": c.part, "locale": c.locale, "count": c.count,
             "old": c.old_text, "new": c.new_text, "example": c.example}
            for c in counted_text(impact)
        ],
    }
