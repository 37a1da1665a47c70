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

_VERDICTS = {
    0: "No report changes level.",
    1: "Some reports get a higher level; none gets a lower one.",
    3: "AT LEAST ONE REPORT NOW GETS A LOWER LEVEL (possible under-triage): review each "
       "downward transition before release.",
}


def _pack_line(side: dict[str, str]) -> str:
    return f"{side['label']} ({side['name']} {side['version']}, sha256 {side['sha256'][:12]})"


def _transition_title(t: Transition) -> str:
    direction = "down" if t.steps < 0 else "up"
    steps = abs(t.steps)
    return (f"{t.old} → {t.new}: {t.count:,} report{'s' if t.count != 1 else ''} "
            f"({steps} level{'s' if steps != 1 else ''} {direction})")


def _share(count: int, total: int) -> str:
    return f"{100 * count / total:.2f} %" if total else "0 %"


def impact_text(impact: Impact) -> str:
    """A readable summary for a terminal."""
    lines = [f"Rule change: {_pack_line(impact.old)} → {_pack_line(impact.new)}",
             counts_line(impact), ""]
    moved = impact.lower + impact.higher
    lines.append(f"Level changes: {moved:,} reports ({_share(moved, impact.total)}): "
                 f"{impact.lower:,} lower, {impact.higher:,} higher")
    for t in impact.sorted_transitions():
        lines.append(f"  {_transition_title(t)}")
        for cause in sorted(t.causes.values(), key=lambda c: (-c.count, c.added, c.removed)):
            lines.append(f"    {cause.count:>9,}  {cause.describe()}")
            lines.append(f"               e.g. {example_json(cause.example)}")
    lines += ["", "Rules whose firing changed:"]
    firing = firing_sorted(impact)
    lines += [f"  {r.rule_id}: fires for {r.more:,} more and {r.fewer:,} fewer reports"
              for r in firing] or ["  none"]
    lines += ["", "Text-only changes (same level, same rules):"]
    text = counted_text(impact)
    for change in text:
        lines.append(f"  {change.rule_id} {change.part} [{change.locale}]: "
                     f"{change.count:,} reports")
        lines.append(f"    was: {change.old_text}")
        lines.append(f"    now: {change.new_text}")
        lines.append(f"    e.g. {example_json(change.example)}")
    if not text:
        lines.append("  none")
    lines += ["", "Rule definitions changed:"]
    lines += [f"  {d.kind} {d.rule_id}: {d.detail}" for d in impact.definitions] or ["  none"]
    for d in impact.unevaluated_lowering:
        lines.append(f"  ! timeline rule {d.rule_id} is lowered or removed: its effect shows "
                     "only across check-ins, so it counts as a lower level")
    lines += ["", f"{_VERDICTS[impact.exit_code]} (exit {impact.exit_code})"]
    return "\n".join(lines) + "\n"


def impact_markdown(impact: Impact) -> str:
    """Markdown to paste into a change request."""
    lines = [
        "## Impact of the rule change",
        "",
        f"- **From**: {_pack_line(impact.old)}",
        f"- **To**: {_pack_line(impact.new)}",
        f"- **Reports compared**: {counts_line(impact)}",
        f"- **Verdict**: {_VERDICTS[impact.exit_code]}",
        "",
        "### Level changes",
        "",
    ]
    transitions = impact.sorted_transitions()
    if transitions:
        lines += ["| transition | reports | why | smallest example |", "|---|---:|---|---|"]
        for t in transitions:
            for cause in sorted(t.causes.values(), key=lambda c: (-c.count, c.added, c.removed)):
                lines.append(f"| {t.old} → {t.new} | {cause.count:,} | {cause.describe()} | "
                             f"`{example_json(cause.example)}` |")
    else:
        lines.append("No report changes level.")
    lines += ["", "### Rules whose firing changed", ""]
    firing = firing_sorted(impact)
    if firing:
        lines += ["| rule | fires for more reports | fires for fewer reports |", "|---|---:|---:|"]
        lines += [f"| `{r.rule_id}` | {r.more:,} | {r.fewer:,} |" for r in firing]
    else:
        lines.append("None.")
    lines += ["", "### Text-only changes (same level, same rules)", ""]
    text = counted_text(impact)
    if text:
        lines += ["| rule | part | locale | reports | was | now |", "|---|---|---|---:|---|---|"]
        lines += [f"| `{c.rule_id}` | {c.part} | {c.locale} | {c.count:,} | {_cell(c.old_text)} "
                  f"| {_cell(c.new_text)} |" for c in text]
    else:
        lines.append("None.")
    lines += ["", "### Rule definitions changed", ""]
    lines += [f"- {d.kind} `{d.rule_id}`: {d.detail}" for d in impact.definitions] or ["None."]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def impact_json(impact: Impact) -> str:
    """The whole impact as JSON (stable key order)."""
    data: dict[str, Any] = {
        "old": impact.old,
        "new": impact.new,
        "reports": {"total": impact.total, "invalid": impact.invalid,
                    "sources": [{"label": label, "count": count}
                                for label, count in impact.sources]},
        "lower": impact.lower,
        "higher": impact.higher,
        "exit_code": impact.exit_code,
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
        "definitions": [
            {"rule_id": d.rule_id, "kind": d.kind, "parts": list(d.parts),
             "old_level": None if d.old_level is None else str(d.old_level),
             "new_level": None if d.new_level is None else str(d.new_level),
             "detail": d.detail}
            for d in impact.definitions
        ],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
