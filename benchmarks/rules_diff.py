"""`make bench` (part): how long `marrow-triage rules diff` takes to compare 100,000 reports,
and the episodes of check-ins a timeline change is judged over.

    python benchmarks/rules_diff.py [--samples 100000] [--workers 2] [--episodes 5000]
                                    [--change fever|action|rule-added]

The change compared is a realistic one: the packaged pack against a copy whose fever
threshold moved from 38.3 to 38.4 °C (explanation kept consistent), so many findings
differ and the comparison does its full work. The report space is the two packs'
boundary classes pairwise plus the seeded sample, as the command builds it, with the
wording compared in every locale both packs have (the command's default). Target: the
whole comparison (report generation, both packs' evaluations, the results built where
they can differ, grouping) under 20 s wall time on a 2-core machine
(``rules_diff_seconds=… target=20 …``). ``--change action`` rewords the urgent action
instead, which every urgent result shows; ``--change rule-added`` adds a rule, after which
every rule's rank and every result's questions must be worked out in both packs.

The timeline part compares the packaged pack with a copy whose ``fever-sustained`` rule
fires after 45 rather than 60 minutes over the command's episode space (the report
classes as first check-ins, the history classes pairwise with the report's, and the
seeded episodes), one process, as the command does. Target: under 15 s for the default
5,000 sampled episodes, so that a timeline change, reports included, is judged in under
a minute (``rules_diff_timeline_seconds=… target=15 …``).
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

from marrow_triage import RulePack, TriageEngine
from marrow_triage.change import compare_engines, report_batches
from marrow_triage.change.impact import (
    EPISODE_SAMPLES,
    compare_timelines,
    counts_line,
    episode_batches,
)
from marrow_triage.pack.loader import default_rules_path

TARGET_SECONDS = 20.0
TARGET_EPISODE_SECONDS = 15.0


def moved_fever_pack(target: Path) -> Path:
    """A copy of the packaged pack with the fever threshold one tenth higher."""
    shutil.copytree(default_rules_path(), target)
    # The threshold is the pack's `fever_c` parameter: its explanation shows {fever_c}.
    path = target / "pack.yaml"
    text = path.read_text(encoding="utf-8")
    moved = text.replace("  fever_c:\n    value: 38.3\n", "  fever_c:\n    value: 38.4\n")
    if moved == text:
        raise SystemExit("the fever rule is not written as expected; update this benchmark")
    path.write_text(moved, encoding="utf-8")
    return target


def reworded_action_pack(target: Path) -> Path:
    """A copy of the packaged pack whose urgent action is worded differently: a text every
    urgent result shows, so no result can be skipped (``--change action``)."""
    shutil.copytree(default_rules_path(), target)
    path = target / "pack.yaml"
    text = path.read_text(encoding="utf-8")
    was = "      action: Call {care_team_24h} now, day or night.\n"
    if was not in text:
        raise SystemExit("the urgent action is not written as expected; update this benchmark")
    path.write_text(text.replace(was, "      action: Call {care_team_24h} straight away, day "
                                      "or night.\n"), encoding="utf-8")
    return target


def added_rule_pack(target: Path) -> Path:
    """A copy of the packaged pack with one more rule (``--change rule-added``): a cough
    that is urgent, not soon. The rules' ranks and the questions' reach differ, so every
    report's questions are worked out in both packs."""
    shutil.copytree(default_rules_path(), target)
    path = target / "other-symptoms.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    cough = next(rule for rule in data["rules"] if rule["id"] == "cough")
    data["rules"].append({**copy.deepcopy(cough), "id": "cough-urgent", "level": "urgent",
                          "title": "Cough (urgent)"})
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return target


CHANGES = {"fever": moved_fever_pack, "action": reworded_action_pack,
           "rule-added": added_rule_pack}


def sooner_sustained_fever_pack(target: Path) -> Path:
    """A copy of the packaged pack whose fever-sustained rule needs 45 minutes, not 60."""
    shutil.copytree(default_rules_path(), target)
    path = target / "timeline.yaml"
    text = path.read_text(encoding="utf-8")
    for was, now in (("raised_temperature_minutes: {at_least: 60}",
                      "raised_temperature_minutes: {at_least: 45}"),
                     ("minutes, at least 60 minutes", "minutes, at least 45 minutes")):
        if was not in text:
            raise SystemExit("fever-sustained is not written as expected; update this "
                             "benchmark")
        text = text.replace(was, now, 1)
    path.write_text(text, encoding="utf-8")
    return target


def timeline_part(episodes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        old = TriageEngine(RulePack.default())
        new = TriageEngine.from_path(sooner_sustained_fever_pack(Path(tmp) / "rules"))
        started = time.perf_counter()
        batches = episode_batches([old.pack, new.pack], samples=episodes)
        impact = compare_timelines(old, new, batches)
        seconds = time.perf_counter() - started
    print(counts_line(impact, "episodes"))
    print(f"wall {seconds:.2f} s, {impact.total / seconds:,.0f} episodes/s; "
          f"{impact.lower:,} episodes lower, {impact.higher:,} higher")
    status = "met" if seconds < TARGET_EPISODE_SECONDS * max(1, episodes / EPISODE_SAMPLES) \
        else "MISSED"
    print(f"rules_diff_timeline_seconds={seconds:.2f} episodes={impact.total} "
          f"target={TARGET_EPISODE_SECONDS:.0f}s {status}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--episodes", type=int, default=EPISODE_SAMPLES)
    parser.add_argument("--change", choices=sorted(CHANGES), default="fever",
                        help="fever: fever_c 38.3 -> 38.4 (the target's change); action: "
                             "the urgent action reworded; rule-added: one more rule (every "
                             "result's questions compared)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = TriageEngine(RulePack.default())
        new = TriageEngine.from_path(CHANGES[args.change](Path(tmp) / "rules"))
        started, cpu = time.perf_counter(), time.process_time()
        # As the command does by default: wording in English and every locale both have.
        locales = [loc for loc in new.pack.locales if loc in old.pack.locales and loc != "en"]
        batches = report_batches([old.pack, new.pack], samples=args.samples)
        impact = compare_engines(old, new, batches, workers=args.workers, locales=locales)
        seconds = time.perf_counter() - started
        cpu_parent = time.process_time() - cpu
    children = os.times()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.workers} worker(s), "
          f"wording compared in en, {', '.join(locales)}")
    print(counts_line(impact))
    print(f"wall {seconds:.2f} s, {impact.total / seconds:,.0f} reports/s; CPU: parent "
          f"{cpu_parent:.2f} s, workers {children.children_user + children.children_system:.2f} s")
    print(f"{impact.lower:,} reports lower, {impact.higher:,} higher (exit {impact.exit_code})")
    status = "met" if seconds < TARGET_SECONDS * impact.total / 100_000 else "MISSED"
    print(f"rules_diff_seconds={seconds:.2f} reports={impact.total} target={TARGET_SECONDS:.0f}"
          f"s_per_100k {status}")
    timeline_part(args.episodes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
