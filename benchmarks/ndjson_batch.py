"""`marrow-triage check --ndjson` end to end: a nurse line's batch file through the command.

    python benchmarks/ndjson_batch.py [--reports 20000] [--runs 3]

Writes the report mix (benchmarks/mix.py) as NDJSON, one line in ten with a fault (a
field out of range, a duplicated key, not JSON: so error lines are part of the work), then
runs the installed command on it as a user would, output to a file. Each run is a new
process (interpreter start, imports, pack load and compile, reading, validation, triage,
writing): the figure is lines per second of wall time, and per CPU-second of the child
(this shared machine's waiting for a core is not the command's cost). The median of the
runs is reported; the last line is ``ndjson_reports_per_s=… ndjson_vs_target=…``.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from mix import mixed_reports  # noqa: E402

TARGET_PER_S = 10_000.0
SCRIPT = Path(sys.executable).with_name("marrow-triage")
FAULTS = (
    '{"hours_since_procedure": 20, "site_pain": 11}',
    '{"hours_since_procedure": 30, "temperature": {"value": 38.5, "unit": "C"}, '
    '"temperature": {"value": 36.5, "unit": "C"}}',
    "{not json",
)


def write_calls(path: Path, count: int, seed: int) -> int:
    """The NDJSON input; returns how many lines are faulty."""
    rng = random.Random(seed)
    faulty = 0
    with path.open("w", encoding="utf-8") as out:
        for report in mixed_reports(count, seed):
            if rng.random() < 0.1:
                out.write(rng.choice(FAULTS) + "\n")
                faulty += 1
            else:
                out.write(json.dumps(report) + "\n")
    return faulty


def run_once(source: Path, target: Path) -> tuple[float, float, int]:
    """Wall seconds, child CPU seconds and exit status of one run of the command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with target.open("wb") as out:
        status = subprocess.run([str(SCRIPT), "check", "--ndjson", str(source)], stdout=out,
                                stderr=subprocess.DEVNULL, check=False).returncode
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, status


def measure(count: int = 20_000, runs: int = 3, seed: int = 20261125) -> dict[str, float]:
    """Lines per second (wall and per child CPU-second), median of ``runs`` runs."""
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "calls.ndjson", Path(tmp) / "results.ndjson"
        faulty = write_calls(source, count, seed)
        walls, cpus = [], []
        for _ in range(runs):
            wall, cpu, status = run_once(source, target)
            lines = target.read_text("utf-8").splitlines()
            errors = sum(line.startswith('{"line": ') for line in lines)
            # The command's contract, checked on every run: one line out per line in,
            # exit 2 because some lines were faulty, each faulty line an error line.
            if status != 2 or len(lines) != count or errors != faulty:
                raise SystemExit(f"check --ndjson misbehaved: exit {status}, {len(lines)} "
                                 f"lines for {count}, {errors} error lines for {faulty}")
            walls.append(wall)
            cpus.append(cpu)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    return {"reports": count, "faulty": faulty, "wall_s": wall, "cpu_s": cpu,
            "per_s": count / wall, "per_cpu_s": count / cpu}


def report(figures: dict[str, float]) -> str:
    """Lines for the benchmark output."""
    per_s, per_cpu_s = figures["per_s"], figures["per_cpu_s"]
    return "\n".join([
        f"check --ndjson, {figures['reports']:,.0f} lines ({figures['faulty']:,.0f} faulty), "
        f"new process per run: {figures['wall_s']:.2f} s wall, {figures['cpu_s']:.2f} s CPU",
        f"  {per_s:,.0f} reports/s wall, {per_cpu_s:,.0f} per CPU-second; target >= "
        f"{TARGET_PER_S:,.0f}/s: {'ok' if per_s >= TARGET_PER_S else 'MISSED'} "
        f"({per_s / TARGET_PER_S:.2f}x the target)",
        f"ndjson_reports_per_s={per_s:.0f} ndjson_per_cpu_s={per_cpu_s:.0f} "
        f"ndjson_vs_target={per_s / TARGET_PER_S:.2f}",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(report(measure(args.reports, args.runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
